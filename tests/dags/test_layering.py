"""Dependencies run one way: the DAG and the provider never import the emulator, nor it them;
inside the emulator and inside the provider package, imports form no cycle. Read from the source with ``ast`` (nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
INCLUDE = PROJECT / "include"


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of the modules one file imports (relative imports resolved against ``package``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(INCLUDE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _sources(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*.py"))]


def test_dags_and_provider_do_not_import_the_emulator():
    offenders = [
        f"{path.relative_to(PROJECT)} imports {name}"
        for path in _sources(PROJECT / "dags", INCLUDE / "sagemaker_retrain", PROJECT / "plugins")
        for name in _imports(path, _package_of(path) if INCLUDE in path.parents else None)
        if name == "offline_aws" or name.startswith("offline_aws.")
    ]
    assert not offenders, offenders


def test_emulator_does_not_import_the_provider():
    offenders = [
        f"{path.relative_to(PROJECT)} imports {name}"
        for path in _sources(INCLUDE / "offline_aws")
        for name in _imports(path, _package_of(path))
        if name == "sagemaker_retrain" or name.startswith("sagemaker_retrain.")
    ]
    assert not offenders, offenders


def _package_graph(root: str) -> dict[str, set[str]]:
    files = _sources(INCLUDE / root)
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, _package_of(path)):
            # "from .x import y" names either module x.y or attribute y of x: keep the modules that exist
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)  # a package's __init__ importing its parent is not a cycle
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycle_inside_the_emulator():
    assert not _cycles(_package_graph("offline_aws")), _cycles(_package_graph("offline_aws"))


def test_no_import_cycle_inside_the_provider_package():
    graph = _package_graph("sagemaker_retrain")
    assert len([name for name in graph if name.startswith("sagemaker_retrain.data_prep.")]) > 5, sorted(graph)
    assert not _cycles(graph), _cycles(graph)


def test_the_cycle_check_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert not _cycles({"a": {"b"}, "b": {"c"}, "c": set()})
