"""The model catalog's loader: each rule, the error text (file, field, rule), the share rule, immutability."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sagemaker_retrain.catalog import CatalogError, ModelSpec, load_catalog
from sagemaker_retrain.params import build_params

PROJECT_DIR = Path(__file__).resolve().parents[2]
MODELS = PROJECT_DIR / "include" / "models"
HOUSING = yaml.safe_load((MODELS / "housing.yaml").read_text())


def _write(directory: Path, name: str, document) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def _entry(model: str = "model_a", endpoint: str | None = None, **changes) -> dict:
    document = json.loads(json.dumps(HOUSING))
    document.update(name=model)
    document.pop("dag_id")
    document.pop("settings")  # housing's history path is its own
    document["promotion"]["endpoint_name"] = endpoint or model.replace("_", "-")
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = document
        for key in parents:
            node = node.setdefault(key, {})
        if value is _DELETE:
            node.pop(leaf)
        else:
            node[leaf] = value
    return document


_DELETE = object()


def _errors(tmp_path: Path, *documents: tuple[str, object]) -> list[str]:
    for name, document in documents:
        _write(tmp_path, name, document)
    return [str(e) for e in load_catalog(tmp_path, root=tmp_path.parent).errors]


def test_the_shipped_catalog_loads_with_no_error():
    catalog = load_catalog(MODELS, root=PROJECT_DIR)
    assert catalog.errors == ()
    by_name = {spec.name: spec for spec in catalog.specs}
    assert by_name["housing"].dag_id == "sagemaker_retrain"  # the walkthrough's DAG keeps its id
    assert by_name["housing"].file == "include/models/housing.yaml"
    assert by_name["housing_lstat"].dag_id == "retrain_housing_lstat"  # the default: retrain_<name>
    assert by_name["housing"].endpoint_name != by_name["housing_lstat"].endpoint_name


def test_housing_sets_exactly_todays_defaults():
    (housing,) = [s for s in load_catalog(MODELS).specs if s.name == "housing"]
    today = {name: param.value for name, param in build_params().items()}
    model = {name: param.value for name, param in build_params(defaults=housing.param_defaults()).items()}
    assert model == today


def test_defaults_keep_each_params_schema_and_order():
    base = build_params()
    changed = build_params(defaults={"epochs": 20, "target_column": "lstat"})
    assert list(changed) == list(base)
    assert changed["epochs"].value == 20 and changed["epochs"].schema == base["epochs"].schema
    with pytest.raises(ValueError, match="no Param 'epoch'"):
        build_params(defaults={"epoch": 3})


def test_the_error_names_file_field_and_rule(tmp_path):
    catalog_dir = tmp_path / "models"
    catalog_dir.mkdir()
    errors = _errors(catalog_dir, ("x", _entry("x", gate__threshold=-1)))
    assert errors == ["models/x.yaml: gate.threshold: -1 is less than the minimum of 0"]


@pytest.mark.parametrize("changes, expected", [
    ({"data__target": _DELETE}, "x.yaml: data.target: is required"),
    ({"owners": []}, "x.yaml: owners: [] should be non-empty"),
    ({"problem_type": "clustering"}, "x.yaml: problem_type: 'clustering' is not one of regression"),
    ({"algorithm__name": "random-forest"}, "x.yaml: algorithm.name: 'random-forest' is not one of linear-learner"),
    ({"algorithm__hyperparameters__max_depth": 3},
     "x.yaml: algorithm.hyperparameters.max_depth: unknown field (allowed: early_stopping_patience, epochs"),
    ({"algorithm__hyperparameters__xgboost_max_depth": 3},
     "x.yaml: algorithm.hyperparameters.xgboost_max_depth: not a hyperparameter of linear-learner (its: "),
    ({"algorithm__hyperparameters__epochs": 0},
     "x.yaml: algorithm.hyperparameters.epochs: 0 is less than the minimum of 1"),
    ({"algorithm__hyperparameters__epochs": "ten"}, "x.yaml: algorithm.hyperparameters.epochs: 'ten' is not of type"),
    ({"gate__metric": "accuracy"}, "x.yaml: gate.metric: 'accuracy' is not one of test:mse"),
    ({"gate__metric": "test:roc_auc_score"},
     "x.yaml: gate.metric: 'test:roc_auc_score' does not suit problem_type 'regression'"),
    ({"problem_type": "multiclass_classification", "gate__metric": "test:multiclass_accuracy"},
     "x.yaml: num_classes: required for multiclass_classification"),
    ({"promotion__endpoint_name": "bad name!"}, "x.yaml: promotion.endpoint_name: 'bad name!' does not match"),
    ({"promotion__canary_percent": 80}, "x.yaml: promotion.canary_percent: 80 is greater than the maximum of 50"),
    ({"promotion__mode": "forever"}, "x.yaml: promotion.mode: 'forever' is not one of persistent, ephemeral"),
    ({"instances__training": "ml.p3.2xlarge"}, "x.yaml: instances.training: 'ml.p3.2xlarge' is not one of"),
    ({"instances__gpu": "ml.p3.2xlarge"}, "x.yaml: instances.gpu: unknown field"),
    ({"watch_prefix": "https://bucket/x/"}, "x.yaml: watch_prefix: 'https://bucket/x/' does not match"),
    ({"schedule": 5}, "x.yaml: schedule: 5 is not of type 'string', 'null'"),
    ({"colour": "blue"}, "x.yaml: colour: unknown field (allowed: algorithm, approval, dag_id"),
    ({"name": "y"}, "x.yaml: name: 'y' must be the file's name ('x')"),
    ({"dag_id": "my dag"}, "x.yaml: dag_id: 'my dag' does not match"),
    ({"shares_endpoint_with": ["nobody"]}, "x.yaml: shares_endpoint_with: no model 'nobody' in the catalog"),
    ({"approval__required": "sometimes"}, "x.yaml: approval.required: 'sometimes' is not of type 'boolean'"),
    ({"approval__approvers": ["alice, bob"]}, "x.yaml: approval.approvers.0: 'alice, bob' does not match"),
    ({"approval__approvers": [":bob"]}, "x.yaml: approval.approvers.0: ':bob' does not match"),
    ({"approval__approvers": ["alice", "alice"]}, "x.yaml: approval.approvers: ['alice', 'alice'] has non-unique"),
    ({"approval__by": ["alice"]}, "x.yaml: approval.by: unknown field (allowed: approvers, required)"),
])
def test_each_rule_refuses_with_its_field(tmp_path, changes, expected):
    errors = _errors(tmp_path, ("x", _entry("x", **changes)))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{tmp_path.name}/{expected}"), errors[0]


@pytest.mark.parametrize("text, expected", [
    ("name: x\nowners: [a\n", "x.yaml: line 3, column 1: not valid YAML"),
    ("- just\n- a list\n", "x.yaml: must be a mapping of fields, not list"),
    ("", "x.yaml: must be a mapping of fields, not NoneType"),
])
def test_a_file_that_is_not_a_mapping_of_fields(tmp_path, text, expected):
    errors = _errors(tmp_path, ("x", text))
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path.name}/{expected}"), errors


def test_every_problem_of_a_file_is_listed(tmp_path):
    errors = _errors(tmp_path, ("x", _entry("x", gate__threshold=-1, data__target=_DELETE)))
    (error,) = errors
    assert "data.target: is required" in error and "gate.threshold: -1 is less than the minimum of 0" in error


def test_yaml_yes_and_no_mean_the_params_yes_and_no(tmp_path):
    _write(tmp_path, "x", "\n".join([yaml.safe_dump(_entry("x"), sort_keys=False).replace(
        "require_approval: policy", "require_approval: yes")]))
    (spec,) = load_catalog(tmp_path).specs
    assert spec.promotion["require_approval"] == "yes"
    assert spec.param_defaults()["require_approval"] == "yes"


def test_a_model_names_its_approval_policy_and_approvers(tmp_path):
    """Not Params (a person triggering a run cannot change them): fields of the spec the DAG gives the approval step."""
    catalog = _load(tmp_path, ("strict", _entry("strict", approval__required=True,
                                                approval__approvers=["alice", "7:bob"])),
                    ("plain", _entry("plain")))
    plain, strict = catalog.specs
    assert (strict.approval_required, strict.approvers) == (True, ("alice", "7:bob"))
    assert (plain.approval_required, plain.approvers) == (False, ())
    assert not {"approval", "approvers", "approval_required"} & set(strict.param_defaults())


def test_a_bad_file_does_not_refuse_the_good_ones(tmp_path):
    catalog = _load(tmp_path, ("good", _entry("good")), ("bad", _entry("bad", gate__threshold=-1)))
    assert [s.name for s in catalog.specs] == ["good"]
    assert [Path(e.file).name for e in catalog.errors] == ["bad.yaml"]


def _load(tmp_path, *documents):
    for name, document in documents:
        _write(tmp_path, name, document)
    return load_catalog(tmp_path)


def test_an_undeclared_share_of_an_endpoint_refuses_both_naming_both_files(tmp_path):
    catalog = _load(tmp_path, ("a", _entry("a", endpoint="shared")), ("b", _entry("b", endpoint="shared")))
    assert catalog.specs == ()
    a, b = (str(e) for e in catalog.errors)
    for text, own, other in ((a, "a.yaml", "b.yaml"), (b, "b.yaml", "a.yaml")):
        assert f"{own}: promotion.endpoint_name: 'shared' is also the endpoint of " in text
        assert other in text and "shares_endpoint_with" in text


def test_a_share_declared_on_one_side_only_refuses_the_other_side(tmp_path):
    catalog = _load(tmp_path, ("a", _entry("a", endpoint="shared", shares_endpoint_with=["b"])),
                    ("b", _entry("b", endpoint="shared")))
    assert [s.name for s in catalog.specs] == ["a"]
    (error,) = catalog.errors
    assert str(error).startswith(str(tmp_path / "b.yaml")) and str(tmp_path / "a.yaml") in str(error)
    assert "does not list 'a'" in str(error)


def test_a_share_both_declare_loads_both_on_one_pool(tmp_path):
    catalog = _load(tmp_path, ("a", _entry("a", endpoint="shared", shares_endpoint_with=["b"])),
                    ("b", _entry("b", endpoint="shared", shares_endpoint_with=["a"])))
    assert catalog.errors == ()
    assert {s.pool for s in catalog.specs} == {"sagemaker_endpoint_shared"}
    assert catalog.pools() == {"sagemaker_endpoint_shared": {
        "slots": 1, "include_deferred": True, "description": "Runs that change SageMaker endpoint shared"}}


def test_a_declared_share_must_name_a_model_of_the_same_endpoint(tmp_path):
    catalog = _load(tmp_path, ("a", _entry("a", shares_endpoint_with=["b"])), ("b", _entry("b")))
    assert [s.name for s in catalog.specs] == ["b"]
    assert "shares_endpoint_with: 'b' (" in str(catalog.errors[0]) and "deploys to 'b', not to 'a'" in str(
        catalog.errors[0])


def test_two_files_with_one_dag_id_are_both_refused(tmp_path):
    catalog = _load(tmp_path, ("a", _entry("a", dag_id="same")), ("b", _entry("b", dag_id="same")))
    assert catalog.specs == ()
    assert all("dag_id: 'same' is also the dag_id of" in str(e) for e in catalog.errors)


def test_the_spec_is_immutable():
    spec = load_catalog(MODELS).specs[0]
    assert isinstance(spec, ModelSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dag_id = "other"  # type: ignore[misc]
    for mapping in (spec.hyperparameters, spec.promotion, spec.instances):
        with pytest.raises(TypeError):
            mapping["epochs"] = 1  # type: ignore[index]
    assert isinstance(spec.owners, tuple) and isinstance(spec.tags, tuple)


def test_catalog_error_is_a_value_error_with_file_and_problems():
    error = CatalogError("include/models/x.yaml", [("gate.threshold", "-1 is less than the minimum of 0")])
    assert isinstance(error, ValueError)
    assert error.problems == (("gate.threshold", "-1 is less than the minimum of 0"),)


def test_the_pools_command_prints_the_pools_even_with_a_broken_file(tmp_path):
    shutil.copy(MODELS / "housing.yaml", tmp_path / "housing.yaml")
    _write(tmp_path, "broken", "gate: [")
    out = subprocess.run([sys.executable, "-m", "sagemaker_retrain.catalog", str(tmp_path), "--pools"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"sagemaker_endpoint_linear-learner-housing": {
        "slots": 1, "include_deferred": True,
        "description": "Runs that change SageMaker endpoint linear-learner-housing"}}
    assert "broken.yaml" in out.stderr
    check = subprocess.run([sys.executable, "-m", "sagemaker_retrain.catalog", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 1 and "broken.yaml: line" in check.stderr


def test_a_missing_catalog_directory_is_an_error_not_silence(tmp_path):
    catalog = load_catalog(tmp_path / "nowhere", root=tmp_path)
    assert catalog.specs == ()
    assert [str(e) for e in catalog.errors] == ["nowhere: the catalog directory does not exist"]


# --- per-model settings ---------------------------------------------------------------------------------
def test_each_model_keeps_its_history_in_a_place_of_its_own(tmp_path):
    by_name = {s.name: s for s in load_catalog(MODELS, root=PROJECT_DIR).specs}
    assert by_name["housing"].history_path == "history"  # where the walkthrough's records have always been
    assert by_name["housing_lstat"].history_path == "model-history/housing_lstat"
    assert by_name["housing_lstat"].run_settings() == {"variables_prefix": None, "history_path": "model-history/housing_lstat"}
    specs = _load(tmp_path, ("model_a", _entry("model_a", settings={"variables_prefix": "team_a_",
                                                                    "alert_emails": ["a@example.com"]}))).specs
    assert (specs[0].variables_prefix, specs[0].alert_emails) == ("team_a_", ("a@example.com",))


@pytest.mark.parametrize(("settings", "expected"), [
    ({"history_path": "runs/x"}, "settings.history_path: 'runs/x' is inside the runs' own files"),
    ({"history_path": "../up"}, "settings.history_path: '../up' does not match"),
    ({"variables_prefix": "Team-A"}, "settings.variables_prefix:"),
    ({"alert_emails": ["{{ var.value.x }}@x.com"]}, "settings.alert_emails.0:"),
    ({"alert_emails": ["a@x.com, b@x.com"]}, "settings.alert_emails.0:"),
    ({"variables": "x_"}, "settings.variables: unknown field (allowed: alert_emails, history_path, variables_prefix)"),
])
def test_settings_rules(tmp_path, settings, expected):
    errors = _errors(tmp_path, ("model_a", _entry("model_a", settings=settings)))
    assert len(errors) == 1 and expected in errors[0], errors


def test_two_models_whose_history_paths_overlap_are_both_refused(tmp_path):
    errors = _errors(tmp_path, ("model_a", _entry("model_a", settings={"history_path": "teams/a"})),
                     ("model_b", _entry("model_b", settings={"history_path": "teams/a/b"})),
                     ("model_c", _entry("model_c", settings={"history_path": "teams/ab"})))
    assert len(errors) == 2 and all("overlap" in e for e in errors)
    assert "model_b.yaml's 'teams/a/b'" in errors[0] and "model_a.yaml's 'teams/a'" in errors[1]


def test_the_readmes_catalog_example_loads_with_its_approval_policy(tmp_path):
    """The README's annotated entry is a valid file (its comments name every section, `approval:` included)."""
    import re

    example = re.search(r"```yaml\n(name: housing_lstat .*?)```", (PROJECT_DIR / "README.md").read_text(), re.S)
    assert example, "README.md lost its catalog example"
    (tmp_path / "housing_lstat.yaml").write_text(example.group(1))
    catalog = load_catalog(tmp_path)
    assert catalog.errors == ()
    (spec,) = catalog.specs
    assert (spec.approval_required, spec.approvers) == (True, ("alice", "7:bob"))
