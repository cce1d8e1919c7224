"""Keep the provider's how-to pages (docs/provider/*.md) showing the example code as it is.

A page includes a region of tested code the way Airflow's ``exampleinclude`` directive does: the
source marks it with ``# [START name]`` / ``# [END name]`` comments, and the page holds

    <!-- snippet: dags/sagemaker_retrain.py#name -->
    ```python
    ...the lines between the markers, dedented...
    ```
    <!-- /snippet -->

``python scripts/provider_docs.py`` rewrites every such block from its markers; ``--check`` only
says which pages are out of date (exit 1), as tests/docs/test_provider_docs.py does.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PAGES_DIR = PROJECT_DIR / "docs" / "provider"
SNIPPET = re.compile(r"(<!-- snippet: (?P<path>[^#\s]+)#(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /snippet -->)", re.S)
MARKER = re.compile(r"^\s*# \[(?P<kind>START|END) (?P<name>[\w.-]+)\]\s*$")


class SnippetError(ValueError):
    pass


def regions(path: Path) -> dict[str, str]:
    """Every marked region of a source file: name -> the dedented lines between its markers."""
    found: dict[str, str] = {}
    open_name, start = None, 0
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        match = MARKER.match(line)
        if not match:
            continue
        kind, name = match["kind"], match["name"]
        if kind == "START":
            if open_name is not None:
                raise SnippetError(f"{path}:{number}: [START {name}] inside [START {open_name}]")
            if name in found:
                raise SnippetError(f"{path}:{number}: region {name} marked twice")
            open_name, start = name, number
        else:
            if name != open_name:
                raise SnippetError(f"{path}:{number}: [END {name}] without its [START {name}]")
            body = textwrap.dedent("\n".join(lines[start:number - 1])).strip("\n")
            if not body:
                raise SnippetError(f"{path}:{number}: region {name} is empty")
            found[name] = body + "\n"
            open_name = None
    if open_name is not None:
        raise SnippetError(f"{path}: [START {open_name}] is never closed")
    return found


def render(page: Path) -> str:
    """The page with every snippet block filled from its source's markers."""
    cache: dict[str, dict[str, str]] = {}

    def fill(match: re.Match) -> str:
        source = match["path"]
        if source not in cache:
            file = PROJECT_DIR / source
            if not file.is_file():
                raise SnippetError(f"{page.name}: snippet source {source} does not exist")
            cache[source] = regions(file)
        if match["name"] not in cache[source]:
            raise SnippetError(f"{page.name}: {source} has no region {match['name']} "
                               f"(it has {sorted(cache[source])})")
        return f"{match[1]}```python\n{cache[source][match['name']]}```\n{match[5]}"

    return SNIPPET.sub(fill, page.read_text())


def referenced(pages: list[Path] | None = None) -> set[tuple[str, str]]:
    """(source, region) of every snippet the pages include."""
    return {(m["path"], m["name"]) for page in pages or sorted(PAGES_DIR.glob("*.md"))
            for m in SNIPPET.finditer(page.read_text())}


def out_of_date() -> list[str]:
    return [page.name for page in sorted(PAGES_DIR.glob("*.md")) if render(page) != page.read_text()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = out_of_date()
        if stale:
            print(f"out of date (run python scripts/provider_docs.py): {', '.join(stale)}")
            return 1
        print("docs/provider: every snippet matches its source")
        return 0
    for page in sorted(PAGES_DIR.glob("*.md")):
        text = render(page)
        if text != page.read_text():
            page.write_text(text)
            print(f"updated {page.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
