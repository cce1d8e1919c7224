"""Issue 25: the provider's operators and sensors take their inputs as (templated) arguments, read no XCom by
task id themselves, and document each parameter, as the Amazon provider's do."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "sagemaker_retrain"
MODULES = sorted(p for folder in ("operators", "sensors") for p in (PACKAGE / folder).glob("*.py")
                 if p.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_operator_pulls_an_xcom_by_task_id(path):
    calls = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "xcom_pull"]
    assert calls == [], f"{path.name} pulls XComs itself (lines {calls}): take them as templated arguments"


def _operator_classes():
    from airflow.sdk import BaseOperator

    for path in MODULES:
        module = importlib.import_module(f"sagemaker_retrain.{path.parent.name}.{path.stem}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseOperator) and cls.__module__ == module.__name__:
                yield cls


@pytest.mark.parametrize("cls", list(_operator_classes()), ids=lambda c: c.__name__)
def test_each_parameter_is_documented(cls):
    own = [name for name, p in inspect.signature(cls.__init__).parameters.items()
           if name != "self" and p.kind is p.KEYWORD_ONLY]
    missing = [name for name in own if f":param {name}:" not in (cls.__doc__ or "")]
    assert missing == [], f"{cls.__name__}'s docstring does not list {missing}"
