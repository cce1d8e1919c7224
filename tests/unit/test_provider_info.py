"""provider_info is complete and true: everything it names exists, and it names everything there is."""

from __future__ import annotations

import importlib
from pathlib import Path

from airflow.sdk import BaseOperatorLink

from sagemaker_retrain import __version__
from sagemaker_retrain.provider_info import INTEGRATION, get_provider_info

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "sagemaker_retrain"
INFO = get_provider_info()


def _modules(kind: str) -> set[str]:
    return {m for entry in INFO[kind] for m in entry["python-modules"]}


def test_own_integration_and_version():
    assert [i["integration-name"] for i in INFO["integrations"]] == [INTEGRATION]
    assert "Amazon" not in INTEGRATION
    for kind in ("operators", "sensors", "triggers"):
        assert {entry["integration-name"] for entry in INFO[kind]} == {INTEGRATION}
    assert INFO["versions"] == [__version__]


def test_every_operator_sensor_and_trigger_module_is_listed_and_imports():
    for kind in ("operators", "sensors", "triggers"):
        on_disk = {f"sagemaker_retrain.{kind}.{p.stem}" for p in (PACKAGE / kind).glob("*.py") if p.stem != "__init__"}
        assert _modules(kind) == on_disk, kind
        for module in on_disk:
            importlib.import_module(module)


def test_extra_links_are_operator_links():
    for path in INFO["extra-links"]:
        module, _, name = path.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), name), BaseOperatorLink)


def test_each_config_option_is_read_by_the_package():
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "provider_info.py")
    for section, spec in INFO["config"].items():
        for option in spec["options"]:
            assert f'"{section}", "{option}"' in source, (section, option)


def test_the_entry_point_names_this_function():
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group="apache_airflow_provider")
                if p.value.startswith("sagemaker_retrain.")]
    assert point.load() is get_provider_info
