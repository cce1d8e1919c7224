"""Admin limits: instance types, counts, run time, gate floor and dataset_uri, refused in prepare."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sagemaker_retrain import limits
from sagemaker_retrain.params import build_params

PROJECT_DIR = Path(__file__).resolve().parents[2]
BUCKET, PREFIX = "ml-bucket", "sagemaker-retrain"
SECRET = "s3cr3t-Adm1n-pw"


def defaults(**overrides) -> dict:
    params = {k: v.value for k, v in build_params().items()}
    params.update(overrides)
    return params


def variables(**values):
    """A Variable lookup with the pipeline's own bucket/prefix and the given Variables (JSON-encoded)."""
    store = {"sagemaker_retrain_bucket": BUCKET, "sagemaker_retrain_prefix": PREFIX}
    store.update({f"sagemaker_retrain_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})
    return store.get


def refused(params: dict, project_dir: Path = PROJECT_DIR, **variable_values) -> str:
    with pytest.raises(ValueError) as raised:
        limits.check_params(params, project_dir, variables(**variable_values))
    return str(raised.value)


def test_defaults_pass():
    limits.check_params(defaults(), PROJECT_DIR, variables())
    limits.check_params(defaults(dataset_uri=f"s3://{BUCKET}/{PREFIX}/data/x.csv"), PROJECT_DIR, variables())


def test_default_instance_types_exist_in_botocore_for_training_and_hosting():
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    training = model.shape_for("TrainingInstanceType").enum
    hosting = model.shape_for("ProductionVariantInstanceType").enum
    assert all(t in training and t in hosting for t in limits.DEFAULT_INSTANCE_TYPES)
    assert not any(".p" in t or ".g" in t for t in limits.DEFAULT_INSTANCE_TYPES)  # no GPUs by default


@pytest.mark.parametrize("name", limits.INSTANCE_TYPE_PARAMS)
def test_form_enum_refuses_a_gpu_type(name):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        build_params()[name].resolve(value="ml.p5.48xlarge")


@pytest.mark.parametrize("name", limits.INSTANCE_TYPE_PARAMS)
def test_instance_type_outside_the_variable_refused_even_if_the_form_allowed_it(name):
    message = refused(defaults(**{name: "ml.c5.2xlarge"}), allowed_instance_types=["ml.m5.large"])
    assert f"Param {name}='ml.c5.2xlarge'" in message and "sagemaker_retrain_allowed_instance_types" in message
    assert "ml.p5.48xlarge" in refused(defaults(**{name: "ml.p5.48xlarge"}))
    limits.check_params(defaults(**{name: "ml.c5.2xlarge"}), PROJECT_DIR,
                        variables(allowed_instance_types=["ml.m5.large", "ml.c5.2xlarge"]))


@pytest.mark.parametrize(("name", "limit_key", "over"), [
    ("training_instance_count", "max_training_instance_count", 20),
    ("max_runtime_seconds", "max_runtime_seconds", 432000),
    ("endpoint_instance_count", "max_endpoint_instance_count", 10),
])
def test_counts_and_run_time_over_the_limits_refused(name, limit_key, over):
    message = refused(defaults(**{name: over}))
    assert f"Param {name}={over}" in message and f"{limit_key}={limits.DEFAULT_LIMITS[limit_key]}" in message
    assert "sagemaker_retrain_limits" in message
    lower = limits.DEFAULT_LIMITS[limit_key] - 1 if name != "max_runtime_seconds" else 600
    assert f"{limit_key}={lower}" in refused(defaults(**{name: lower + 1}), limits={limit_key: lower})
    limits.check_params(defaults(**{name: over}), PROJECT_DIR, variables(limits={limit_key: over}))


def test_malformed_limit_variables_fail_closed():
    assert "not valid JSON" in refused(defaults(), limits="{max_")
    assert "unknown key" in refused(defaults(), limits={"max_gpus": 1})
    assert "positive integer" in refused(defaults(), limits={"max_training_instance_count": -1})
    assert "JSON list" in refused(defaults(), allowed_instance_types={"a": 1})


@pytest.mark.parametrize(("metric", "floor", "looser", "tighter"), [
    ("test:mse", 8.0, 9.0, 7.5),      # lower is better: may only go lower
    ("test:binary_f_beta", 0.6, 0.5, 0.7),  # higher is better: may only go higher
    ("test:binary_classification_accuracy", 0.8, 0.79, 0.9),
])
def test_gate_threshold_may_only_tighten_the_admin_floor(metric, floor, looser, tighter):
    short = metric.split(":", 1)[1]
    for key in (metric, short):
        message = refused(defaults(gate_metric=metric, gate_threshold=looser), gate_floors={key: floor})
        assert "Param gate_threshold" in message and str(floor) in message and "sagemaker_retrain_gate_floors" in message
        limits.check_params(defaults(gate_metric=metric, gate_threshold=tighter), PROJECT_DIR,
                            variables(gate_floors={key: floor}))
        limits.check_params(defaults(gate_metric=metric, gate_threshold=floor), PROJECT_DIR,
                            variables(gate_floors={key: floor}))


@pytest.mark.parametrize(("metric", "loose"), [
    ("test:mse", 1e308), ("test:absolute_loss", 101.0), ("test:roc_auc_score", 0.4),
    ("test:binary_classification_accuracy", 0.0), ("test:multiclass_accuracy", 0.49), ("test:macro_f_beta", 0.0),
])
def test_without_an_admin_floor_the_default_floor_holds(metric, loose):
    """No Variable set: gate_threshold=1e308 (a gate any model passes) is refused by the shipped floor."""
    floor = limits.DEFAULT_GATE_FLOORS[metric]
    message = refused(defaults(gate_metric=metric, gate_threshold=loose))
    assert message.startswith(f"Param gate_threshold={loose!r} for {metric} must be")
    assert f"the floor {floor} (the default floor; an admin may set another in Variable sagemaker_retrain_gate_floors)" \
        in message
    limits.check_params(defaults(gate_metric=metric, gate_threshold=floor), PROJECT_DIR, variables())
    looser = loose if limits.GATE_METRICS[metric] else 0.0  # an admin's floor for this metric replaces the default
    limits.check_params(defaults(gate_metric=metric, gate_threshold=looser), PROJECT_DIR,
                        variables(gate_floors={metric: looser}))
    assert set(limits.DEFAULT_GATE_FLOORS) == set(limits.GATE_METRICS)


# ------------------------------------------------------------------------------------------------ dataset_uri
@pytest.fixture()
def project(tmp_path):
    """A project with include/data/good.csv, a password file beside it, and links in and out."""
    root = tmp_path / "project"
    data = root / "include" / "data"
    data.mkdir(parents=True)
    (data / "good.csv").write_text("a,b,y\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(30)))
    config = root / "config"
    config.mkdir()
    (config / "simple_auth_manager_passwords.json").write_text(json.dumps({"admin": SECRET}))
    (data / "out.csv").symlink_to(config / "simple_auth_manager_passwords.json")
    (data / "in.csv").symlink_to(data / "good.csv")
    return root


@pytest.mark.parametrize(("uri", "why"), [
    ("config/simple_auth_manager_passwords.json", "not a file under an allowed location"),
    ("{project}/config/simple_auth_manager_passwords.json", "not a file under an allowed location"),
    ("/etc/passwd", "not a file under an allowed location"),
    ("include/data/../../config/simple_auth_manager_passwords.json", "must not contain '..'"),
    ("include/data/out.csv", "not a file under an allowed location"),  # symlink out of include/data
    (f"s3://other-bucket/{PREFIX}/x.csv", "not under an allowed prefix"),
    (f"s3://{BUCKET}/elsewhere/x.csv", "not under an allowed prefix"),
    (f"s3://{BUCKET}/{PREFIX}-evil/x.csv", "not under an allowed prefix"),
    (f"s3://{BUCKET}/{PREFIX}/../secrets/x.csv", "no '.' or '..' segments"),
    ("file:///etc/passwd", "only s3:// URIs"),
    ("include/data/" + "a" * 2000, "1 to 1024 characters"),
])
def test_dataset_uri_outside_the_allowed_places_refused_without_reading_it(project, uri, why):
    message = refused(defaults(dataset_uri=uri.format(project=project)), project)
    assert why in message and "Param dataset_uri" in message
    assert SECRET not in message


def test_dataset_uri_allowed_places(project):
    for uri in ("include/data/good.csv", "include/data/in.csv", f"{project}/include/data/good.csv",
                f"s3://{BUCKET}/{PREFIX}/input.csv"):
        limits.check_params(defaults(dataset_uri=uri), project, variables())
    allowed = variables(allowed_data_prefixes=["s3://shared-data/housing", str(project / "config")])
    limits.check_params(defaults(dataset_uri="s3://shared-data/housing/2026/x.csv"), project, allowed)
    # the Variable replaces the default prefix
    assert "not under an allowed prefix" in refused(defaults(dataset_uri=f"s3://{BUCKET}/{PREFIX}/x.csv"),
                                                    project, allowed_data_prefixes=["s3://shared-data/"])
    assert "JSON list of s3://" in refused(defaults(), project, allowed_data_prefixes=["https://x"])


def test_oversized_local_file_refused(project):
    message = refused(defaults(dataset_uri="include/data/good.csv"), project, limits={"max_dataset_bytes": 10})
    assert "max_dataset_bytes=10" in message and "Param dataset_uri" in message


def test_password_file_in_an_allowed_place_is_not_echoed_by_data_validation(project, tmp_path):
    """Even if an admin allowed the directory, an error about a non-CSV file never shows its content."""
    from sagemaker_retrain.data_prep.errors import DataValidationError
    from sagemaker_retrain.data_prep.prepare import prepare_dataset
    from sagemaker_retrain.data_prep.source import open_source

    for content in (json.dumps({"admin": SECRET}), json.dumps({"admin": SECRET}, indent=2),
                    f"admin;{SECRET}\n", f"admin\t{SECRET}\nx\ty\n", f"admin:{SECRET}\n"):
        path = tmp_path / "secret.json"
        path.write_text(content)
        with pytest.raises(DataValidationError) as raised, open_source(str(path)) as stream:
            prepare_dataset(stream, target_column="medv", predictor_type="regressor", validation_fraction=0.1,
                            test_fraction=0.1, seed=1, workdir=tmp_path / "w")
        assert SECRET not in str(raised.value), (content, str(raised.value))


# ------------------------------------------------------------------------- through pipeline.prepare
@pytest.fixture()
def no_aws(monkeypatch):
    """Deployment Variables in the environment; any AWS client made would fail the test."""
    from sagemaker_retrain import pipeline

    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_ROLE_ARN", "arn:aws:iam::123456789012:role/x")
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_REGION", "us-east-1")
    for name in [k for k in os.environ if k.startswith("AIRFLOW_VAR_SAGEMAKER_RETRAIN_") and
                 k[len("AIRFLOW_VAR_SAGEMAKER_RETRAIN_"):] not in ("BUCKET", "ROLE_ARN", "REGION")]:
        monkeypatch.delenv(name)

    def boom(self):
        raise AssertionError("an AWS client was made before the limits were checked")

    monkeypatch.setattr(pipeline.Clients, "s3", property(boom))
    monkeypatch.setattr(pipeline.Clients, "sagemaker", property(boom))


@pytest.mark.parametrize("overrides", [
    {"training_instance_type": "ml.p5.48xlarge"},
    {"training_instance_count": 20},
    {"max_runtime_seconds": 432000},
    {"endpoint_instance_count": 10},
    {"dataset_uri": "config/simple_auth_manager_passwords.json"},
    {"dataset_uri": "s3://someone-elses-bucket/data.csv"},
])
def test_prepare_refuses_before_any_aws_call(no_aws, overrides):
    from airflow.sdk.exceptions import AirflowFailException

    from sagemaker_retrain import pipeline

    with pytest.raises(AirflowFailException) as raised:
        pipeline.prepare(defaults(**overrides), "manual__limits", datetime.now(UTC), PROJECT_DIR, None)
    name = next(iter(overrides))
    assert f"Param {name}" in str(raised.value)


def test_prepare_reads_the_variables_at_run_time(no_aws, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from sagemaker_retrain import pipeline

    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_ALLOWED_INSTANCE_TYPES", '["ml.c5.xlarge"]')
    with pytest.raises(AirflowFailException, match="Param training_instance_type='ml.m5.large'"):
        pipeline.prepare(defaults(), "manual__limits", datetime.now(UTC), PROJECT_DIR, None)


# --- the requests themselves, re-checked by the task that sends them (issue 24, finding 1) ------------
def _requests(**overrides) -> dict:
    """The three requests the pipeline sends, built by its own config builders from the default Params."""
    from sagemaker_retrain import algorithms, config

    params = defaults(**overrides)
    algorithm = algorithms.of_params(params)
    tags = config.tags("ep", "run-1")
    return {
        "training": config.build_training_config(
            algorithm=algorithm, job_name="j", image="img", role_arn="arn:aws:iam::123456789012:role/R",
            channel_uris={c: f"s3://b/in/{c}/" for c in ("train", "validation", "test")}, output_uri="s3://b/out",
            params=params, feature_dim=3, resource_tags=tags),
        "deploy": config.build_endpoint_config_config(config_name="c", model_name="m", params=params,
                                                      resource_tags=tags),
        "transform": config.build_transform_config(
            algorithm=algorithm, job_name="t", model_name="m", input_uri="s3://b/in/test/", output_uri="s3://b/out/", params=params,
            resource_tags=tags),
    }


CHECKS = {"training": limits.check_training_config, "deploy": limits.check_deploy_config,
          "transform": limits.check_transform_config}


def _refused_request(kind: str, request: dict, **variable_values) -> str:
    with pytest.raises(limits.LimitExceeded) as raised:
        CHECKS[kind](request, variables(**variable_values))
    return str(raised.value)


def test_the_pipelines_own_requests_pass():
    for kind, request in _requests().items():
        CHECKS[kind](request, variables())


def _set(request: dict, path: str, value) -> dict:
    import copy

    request = copy.deepcopy(request)
    *parents, last = path.split(".")
    node = request
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return request


@pytest.mark.parametrize(("kind", "path", "value", "says"), [
    ("training", "ResourceConfig.InstanceType", "ml.p5.48xlarge", "ResourceConfig.InstanceType='ml.p5.48xlarge'"),
    ("training", "ResourceConfig.InstanceCount", 3, "max_training_instance_count=2"),
    ("training", "ResourceConfig.InstanceCount", 0, "ResourceConfig.InstanceCount=0"),
    ("training", "ResourceConfig.InstanceCount", "1", "ResourceConfig.InstanceCount='1'"),
    ("training", "ResourceConfig.InstanceGroups", [{"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                    "InstanceGroupName": "g"}], "InstanceGroups"),
    ("training", "StoppingCondition.MaxRuntimeInSeconds", 14401, "max_runtime_seconds=14400"),
    ("training", "StoppingCondition.MaxRuntimeInSeconds", ..., "MaxRuntimeInSeconds=None"),
    ("training", "StoppingCondition.MaxWaitTimeInSeconds", 86400, "MaxWaitTimeInSeconds=86400"),
    ("training", "StoppingCondition", ..., "no StoppingCondition"),
    ("training", "ResourceConfig", ..., "no ResourceConfig"),
    ("deploy", "ProductionVariants.0.InstanceType", "ml.p5.48xlarge", "ProductionVariants[0].InstanceType"),
    ("deploy", "ProductionVariants.0.InitialInstanceCount", 3, "max_endpoint_instance_count=2"),
    ("deploy", "ProductionVariants.0.InitialInstanceCount", True, "InitialInstanceCount=True"),
    ("deploy", "ProductionVariants.0.InstanceType", ..., "InstanceType=None"),
    ("deploy", "ProductionVariants.0.ServerlessConfig", {"MemorySizeInMB": 6144, "MaxConcurrency": 200},
     "ServerlessConfig"),
    ("deploy", "ProductionVariants.0.ManagedInstanceScaling", {"Status": "ENABLED", "MinInstanceCount": 1,
                                                               "MaxInstanceCount": 50}, "MaxInstanceCount=50"),
    ("deploy", "ShadowProductionVariants", [{"VariantName": "s", "ModelName": "m", "InstanceType": "ml.p5.48xlarge",
                                             "InitialInstanceCount": 1}], "ShadowProductionVariants"),
    ("deploy", "ProductionVariants", [], "no ProductionVariants"),
    ("transform", "TransformResources.InstanceType", "ml.p5.48xlarge", "TransformResources.InstanceType"),
    ("transform", "TransformResources.InstanceCount", 5, "max_transform_instance_count=2"),
    ("transform", "TransformResources", ..., "no TransformResources"),
])
def test_a_request_beyond_the_limits_is_refused(kind, path, value, says):
    message = _refused_request(kind, _set(_requests()[kind], path, value))
    assert says in message
    assert message.startswith({"training": "CreateTrainingJob", "deploy": "CreateEndpointConfig",
                               "transform": "CreateTransformJob"}[kind] + " refused: ")


def test_a_second_variant_is_checked_too():
    request = _requests()["deploy"]
    extra = {**request["ProductionVariants"][0], "VariantName": "B", "InstanceType": "ml.g5.48xlarge"}
    message = _refused_request("deploy", {**request, "ProductionVariants": [request["ProductionVariants"][0], extra]})
    assert "ProductionVariants[1].InstanceType='ml.g5.48xlarge'" in message


def test_request_checks_follow_the_variables_read_now():
    requests = _requests(training_instance_type="ml.c5.xlarge", endpoint_instance_type="ml.c5.xlarge",
                         transform_instance_type="ml.c5.xlarge")
    for kind in CHECKS:  # allowed by default, refused once the admins narrow the list
        CHECKS[kind](requests[kind], variables())
        assert "ml.c5.xlarge" in _refused_request(kind, requests[kind], allowed_instance_types=["ml.m5.large"])
    wide = variables(allowed_instance_types=["ml.p5.48xlarge"], limits={"max_runtime_seconds": 86400,
                                                                        "max_transform_instance_count": 4})
    limits.check_transform_config(_set(_set(requests["transform"], "TransformResources.InstanceType",
                                            "ml.p5.48xlarge"), "TransformResources.InstanceCount", 4), wide)
    limits.check_training_config(_set(_set(requests["training"], "ResourceConfig.InstanceType", "ml.p5.48xlarge"),
                                      "StoppingCondition.MaxRuntimeInSeconds", 86400), wide)
    with pytest.raises(ValueError, match="not valid JSON"):
        limits.check_deploy_config(requests["deploy"], variables(limits="{oops"))


def test_transform_instance_type_param_is_checked_in_prepare_too():
    assert "transform_instance_type" in refused(defaults(transform_instance_type="ml.p5.48xlarge"))
