"""The provider's how-to pages (docs/provider/) show the tested example code exactly, and all of it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("provider_docs", PROJECT_DIR / "scripts" / "provider_docs.py")
provider_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(provider_docs)

PAGES = sorted(provider_docs.PAGES_DIR.glob("*.md"))
OPERATOR_PAGES = [p for p in PAGES if p.name not in ("index.md", "CHANGELOG.md")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_shows_its_snippets_as_the_code_is(page):
    """Every snippet a page references exists between its markers, and the page shows that very text."""
    assert provider_docs.render(page) == page.read_text(), (
        f"{page.name} differs from the marked code: run python scripts/provider_docs.py")


@pytest.mark.parametrize("page", OPERATOR_PAGES, ids=lambda p: p.name)
def test_every_how_to_page_includes_tested_code(page):
    assert provider_docs.referenced([page]), f"{page.name} includes no example from tested code"


def test_every_marked_region_is_shown_and_every_page_is_indexed():
    sources = {source for source, _ in provider_docs.referenced()}
    marked = {(source, name) for source in sources for name in provider_docs.regions(PROJECT_DIR / source)}
    assert marked == provider_docs.referenced(), "a marked region no page shows, or a page shows an unmarked one"
    index = (provider_docs.PAGES_DIR / "index.md").read_text()
    assert all(f"({page.name})" in index for page in OPERATOR_PAGES)


def test_every_operator_and_sensor_of_the_provider_has_a_page():
    import inspect

    from sagemaker_retrain.provider_info import get_provider_info

    text = "\n".join(page.read_text() for page in OPERATOR_PAGES)
    info = get_provider_info()
    modules = [m for kind in ("operators", "sensors") for entry in info[kind] for m in entry["python-modules"]]
    modules.append("sagemaker_retrain.operators.champion")
    missing = []
    for module in modules:
        for name, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if cls.__module__ == module and name.endswith(("Operator", "Sensor")) and f"`{name}`" not in text:
                missing.append(f"{module}.{name}")
    assert missing == []


@pytest.mark.parametrize("broken, message", [
    ("# [START a]\nx = 1\n", "never closed"),
    ("# [END a]\n", "without its"),
    ("# [START a]\n# [END a]\n", "empty"),
    ("# [START a]\nx = 1\n# [END a]\n# [START a]\ny = 2\n# [END a]\n", "marked twice"),
])
def test_marker_mistakes_are_reported(tmp_path, broken, message):
    source = tmp_path / "example.py"
    source.write_text(broken)
    with pytest.raises(provider_docs.SnippetError, match=message):
        provider_docs.regions(source)


def test_a_missing_region_is_reported(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("<!-- snippet: dags/sagemaker_retrain.py#no_such_region -->\n<!-- /snippet -->\n")
    with pytest.raises(provider_docs.SnippetError, match="has no region no_such_region"):
        provider_docs.render(page)


def test_provider_info_lists_the_how_to_pages():
    from sagemaker_retrain.provider_info import get_provider_info

    (integration,) = get_provider_info()["integrations"]
    listed = {PROJECT_DIR / path.lstrip("/") for path in integration["how-to-guide"]}
    assert listed == set(OPERATOR_PAGES)
    # Airflow's own schema for provider_info (how-to paths start with /docs/).
    import json
    from importlib.resources import files

    import jsonschema

    jsonschema.validate(get_provider_info(), json.loads((files("airflow") / "provider_info.schema.json").read_text()))
