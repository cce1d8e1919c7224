"""The provider package uses only public names of Airflow, its providers, boto3 and botocore.

Every module of include/sagemaker_retrain is parsed (not imported) and each import, attribute access
and assignment is checked:

* no imported module path or name with a leading underscore (``botocore.loaders._x``,
  ``from airflow.x import _y``), outside the package itself;
* Airflow: only the Task SDK (``airflow.sdk``, ``airflow.sdk.exceptions``) and the public modules of
  providers (hooks, operators, sensors, triggers, links, notifications, exceptions); any other
  ``airflow.*`` module is an internal one;
* no ``obj._private`` attribute read or written, except on ``self``/``cls``/``super()`` (a class's own);
* no attribute assigned on, and no ``setattr`` of, anything imported from outside the package
  (a monkeypatch of framework code).

Exceptions are listed in ALLOWED below, each with the reason it may stay. Speed-ups that need private
code live in include/airflow_deployment/ (the deployment's configuration), not here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "sagemaker_retrain"
OWN = "sagemaker_retrain"
SDK_MODULES = {"airflow.sdk", "airflow.sdk.exceptions"}
PUBLIC_PROVIDER_PARTS = {"hooks", "operators", "sensors", "triggers", "links", "notifications", "exceptions"}

# (module file relative to the package, the imported module or the attribute) -> why it may stay
ALLOWED: dict[tuple[str, str], str] = {
    ("triggers/endpoint.py", "airflow.triggers.base"):
        "BaseTrigger and TriggerEvent: Airflow 3.3's Task SDK does not export them; this is their documented "
        "public location (Airflow's 'Public Interface': triggers), the one the Amazon provider's triggers import.",
    ("sensors/endpoint.py", "airflow.triggers.base"):
        "StartTriggerArgs (start_from_trigger): Airflow 3.3's Task SDK does not export it; its public location, "
        "beside BaseTrigger, the one the standard provider's start_from_trigger sensors import.",
    ("history_view.py", "airflow.api_fastapi.core_api.security"):
        "get_user: the way a plugin's FastAPI app (the model history page) authenticates a request as Airflow's "
        "own routes do, as Airflow's plugin docs show; imported lazily, in the API server only.",
    ("history_access.py", "airflow.api_fastapi.app"):
        "get_auth_manager: how code outside the auth manager asks it a question (Airflow's auth manager docs); "
        "the model history page asks it per model's DAG; imported lazily, in the API server only.",
    ("history_access.py", "airflow.api_fastapi.auth.managers.models.resource_details"):
        "DagAccessEntity / DagDetails: the arguments of the auth manager's public is_authorized_dag.",
    ("history_access.py", "airflow.models.dag"):
        "DagModel.get_dag_id_to_team_name_mapping: a DAG's team, looked up as Airflow's own routes look it up "
        "before asking the auth manager (multi-team deployments only); API server only.",
    **{(module, "airflow.providers.amazon.aws.utils.mixins"):
       "aws_template_fields: the helper every Amazon provider operator and sensor uses to declare its "
       "templated fields together with aws_conn_id/region_name/verify/botocore_config."
       for module in ("sensors/endpoint.py", "operators/champion.py", "operators/restore.py")},
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_problems(module: str) -> str | None:
    parts = module.split(".")
    if module == OWN or module.startswith(OWN + "."):
        return None
    if any(part.startswith("_") for part in parts) and module != "__future__":
        return "private module"
    if parts[0] != "airflow":
        return None
    if module in SDK_MODULES:
        return None
    if parts[1:2] == ["providers"] and len(parts) > 3 and (set(parts[3:]) & PUBLIC_PROVIDER_PARTS):
        return None
    return "Airflow internal module (not airflow.sdk nor a provider's public module)"


def _problems(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    foreign: set[str] = set()  # names bound to things imported from outside the package

    def report(line: int, what: str, why: str) -> None:
        if (rel, what) not in ALLOWED:
            found.append(f"{rel}:{line}: {what}: {why}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if why := _module_problems(alias.name):
                    report(node.lineno, alias.name, why)
                if not alias.name.startswith(OWN):
                    foreign.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: the package itself
                continue
            module = node.module or ""
            if why := _module_problems(module):
                report(node.lineno, module, why)
            own = module == OWN or module.startswith(OWN + ".")
            for alias in node.names:
                if not own and alias.name.startswith("_"):
                    report(node.lineno, f"{module}.{alias.name}", "private name")
                if not own:
                    foreign.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            is_own_object = (isinstance(base, ast.Name) and base.id in ("self", "cls")) or (
                isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super")
            if not is_own_object:
                report(node.lineno, ast.unparse(node), "private attribute of another object")
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute):
                root = target.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in foreign:
                    report(node.lineno, ast.unparse(target), "assigns to an imported object (monkeypatch)")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in foreign):
            report(node.lineno, f"setattr({node.args[0].id}, ...)", "patches an imported object")
    return found


def test_the_package_has_modules():
    assert len(_modules()) > 20


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_private_or_internal_name(path):
    assert _problems(path) == []


def test_every_allowed_exception_is_still_used_and_has_a_reason():
    """An entry that no longer matches anything is removed, so the list stays the true list of exceptions."""
    for (rel, what), reason in ALLOWED.items():
        assert len(reason) > 40, (rel, what)
        assert what in (PACKAGE / rel).read_text(), f"{rel} no longer uses {what}: drop it from ALLOWED"


@pytest.mark.parametrize("source, problem", [
    ("from botocore.loaders import _x", "private"),
    ("import airflow.models.dagrun", "internal"),
    ("from airflow.utils.session import create_session", "internal"),
    ("from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook\nAwsGenericHook.f = 1", "monkeypatch"),
    ("import boto3\nx = boto3.Session()._session", "private attribute"),
    ("from airflow.providers.amazon.aws.hooks import base_aws\nsetattr(base_aws, 'x', 1)", "patches"),
])
def test_the_checker_catches(tmp_path, monkeypatch, source, problem):
    module = tmp_path / "probe.py"
    module.write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "PACKAGE", tmp_path)
    found = _problems(module)
    assert found and problem in " ".join(found), found
