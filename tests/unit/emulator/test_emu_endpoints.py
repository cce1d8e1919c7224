"""Models, endpoint configs and endpoints in the backend: rules, state machine, rollback, invocations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from emu_helpers import (
    BUCKET,
    IMAGE,
    ROLE,
    housing_split,
    to_csv,
    training_request,
    wait_endpoint,
    wait_for,
    wait_job,
)

from offline_aws.sagemaker.exceptions import SageMakerError, ValidationException
from offline_aws.sagemaker.hosting import ModelErrorResponse


def _row0() -> str:
    _, _, (y, X) = housing_split()
    return ",".join(repr(float(v)) for v in X[0])


@pytest.fixture
def trained(backend):
    backend.create_training_job(training_request("ll"))
    desc = wait_job(backend, "ll")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return desc["ModelArtifacts"]["S3ModelArtifacts"]


def _model(backend, name, url, image=IMAGE):
    backend.create_model(
        ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": image, "ModelDataUrl": url}
    )


def _config(backend, name, model, instance_type="ml.m5.large"):
    backend.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InstanceType": instance_type, "InitialInstanceCount": 1}
        ],
    )


def _predict(backend, name, body=None, accept="application/json"):
    payload, content_type, variant = backend.invoke_endpoint(name, (body or _row0()).encode(), "text/csv", accept)
    return json.loads(payload)["predictions"][0]["score"]


@pytest.fixture
def live(backend, trained):
    _model(backend, "m1", trained)
    _config(backend, "c1", "m1")
    backend.create_endpoint(EndpointName="ep", EndpointConfigName="c1")
    assert wait_endpoint(backend, "ep")["EndpointStatus"] == "InService"
    return trained


def test_endpoint_creating_then_in_service_and_predicts(backend, trained):
    backend.clock.time_scale = 1000
    _model(backend, "m1", trained)
    _config(backend, "c1", "m1")
    backend.create_endpoint(EndpointName="ep", EndpointConfigName="c1")
    assert backend.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Creating"
    with pytest.raises(SageMakerError, match="Endpoint ep of account 123456789012 not found."):
        _predict(backend, "ep")
    backend.clock.time_scale = 0
    desc = wait_endpoint(backend, "ep")
    assert desc["EndpointStatus"] == "InService"
    assert desc["ProductionVariants"][0]["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    assert abs(_predict(backend, "ep") - 29.99) <= 1.5


def test_duplicate_names_use_aws_wording(backend, live):
    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    with pytest.raises(ValidationException) as err:
        _model(backend, "m1", live)
    assert err.value.message == f'Cannot create already existing model "{arn}:model/m1".'
    with pytest.raises(ValidationException) as err:
        _config(backend, "c1", "m1")
    assert err.value.message == f'Cannot create already existing endpoint configuration "{arn}:endpoint-config/c1".'
    with pytest.raises(ValidationException) as err:
        backend.create_endpoint(EndpointName="ep", EndpointConfigName="c1")
    assert err.value.message.startswith("Cannot create already existing endpoint")
    assert err.value.message == f'Cannot create already existing endpoint "{arn}:endpoint/ep".'


def test_unknown_resources(backend):
    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    with pytest.raises(ValidationException, match=f'Could not find model "{arn}:model/nope"'):
        backend.describe_model(ModelName="nope")
    with pytest.raises(ValidationException, match=f'Could not find model "{arn}:model/nope"'):
        _config(backend, "c-missing", "nope")
    with pytest.raises(ValidationException, match="Could not find endpoint configuration"):
        backend.create_endpoint(EndpointName="ep", EndpointConfigName="nope")
    with pytest.raises(ValidationException, match=f'Could not find endpoint "{arn}:endpoint/nope"'):
        backend.describe_endpoint(EndpointName="nope")
    with pytest.raises(ValidationException, match="Could not find endpoint"):
        backend.delete_endpoint(EndpointName="nope")
    with pytest.raises(ValidationException, match="Could not find endpoint configuration"):
        backend.delete_endpoint_config(EndpointConfigName="nope")


def test_update_switches_config_and_old_model_serves_meanwhile(backend, live, aws):
    before = _predict(backend, "ep")
    # A second model that predicts differently: train on a shifted label.
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    aws.put_object(Bucket=BUCKET, Key="shifted/train/a.csv", Body=to_csv(ytr + 100, Xtr))
    req = training_request("shifted", channels=("train",))
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/shifted/train"
    backend.create_training_job(req)
    url = wait_job(backend, "shifted")["ModelArtifacts"]["S3ModelArtifacts"]
    _model(backend, "m2", url)
    _config(backend, "c2", "m2")

    backend.clock.time_scale = 1000
    backend.update_endpoint(EndpointName="ep", EndpointConfigName="c2")
    desc = backend.describe_endpoint(EndpointName="ep")
    assert desc["EndpointStatus"] == "Updating"
    assert desc["PendingDeploymentSummary"]["EndpointConfigName"] == "c2"
    with pytest.raises(ValidationException, match="Cannot update in-progress endpoint"):
        backend.update_endpoint(EndpointName="ep", EndpointConfigName="c1")
    assert _predict(backend, "ep") == pytest.approx(before)  # old model still serves
    backend.clock.time_scale = 0
    desc = wait_endpoint(backend, "ep")
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c2")
    assert "FailureReason" not in desc
    assert _predict(backend, "ep") > before + 50


@pytest.mark.parametrize("how", ["missing-artifact", "corrupt-artifact", "injected"])
def test_failed_update_rolls_back_to_previous_config(backend, live, aws, how):
    before = _predict(backend, "ep")
    if how == "missing-artifact":
        _model(backend, "m-bad", f"s3://{BUCKET}/nowhere/model.tar.gz")
    elif how == "corrupt-artifact":
        aws.put_object(Bucket=BUCKET, Key="corrupt/model.tar.gz", Body=b"not a tarball")
        _model(backend, "m-bad", f"s3://{BUCKET}/corrupt/model.tar.gz")
    else:
        _model(backend, "m-bad", live)
        backend.faults.configure({"fail_next_endpoint_update": "injected update failure"})
    _config(backend, "c-bad", "m-bad")
    backend.update_endpoint(EndpointName="ep", EndpointConfigName="c-bad")
    desc = wait_for(
        lambda: (d := backend.describe_endpoint(EndpointName="ep"))["EndpointStatus"] != "Updating" and d
    )
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == "c1"
    assert desc["FailureReason"]
    if how == "injected":
        assert desc["FailureReason"] == "injected update failure"
    assert _predict(backend, "ep") == pytest.approx(before)


@pytest.mark.parametrize("how", ["missing-artifact", "corrupt-artifact", "injected", "foreign-image"])
def test_failed_create_ends_failed(backend, trained, aws, how):
    url, image = trained, IMAGE
    if how == "missing-artifact":
        url = f"s3://{BUCKET}/nowhere/model.tar.gz"
    elif how == "corrupt-artifact":
        aws.put_object(Bucket=BUCKET, Key="corrupt/model.tar.gz", Body=b"garbage")
        url = f"s3://{BUCKET}/corrupt/model.tar.gz"
    elif how == "injected":
        backend.faults.configure({"fail_next_endpoint_create": "injected create failure"})
    else:
        image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"
    _model(backend, "m", url, image)
    _config(backend, "c", "m")
    backend.create_endpoint(EndpointName="ep", EndpointConfigName="c")
    desc = wait_endpoint(backend, "ep")
    assert desc["EndpointStatus"] == "Failed"
    expected = {
        "missing-artifact": "Failed to download model data",
        "corrupt-artifact": "did not pass the ping health check",
        "injected": "injected create failure",
        "foreign-image": "The image '123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1' does not exist",
    }[how]
    assert expected in desc["FailureReason"]
    with pytest.raises(ValidationException, match="Cannot update failed endpoint"):
        backend.update_endpoint(EndpointName="ep", EndpointConfigName="c")


def test_delete_goes_deleting_then_gone(backend, live):
    backend.clock.time_scale = 1000
    backend.delete_endpoint(EndpointName="ep")
    assert backend.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Deleting"
    backend.clock.time_scale = 0
    wait_for(lambda: not backend.list_endpoints()["Endpoints"])
    with pytest.raises(ValidationException, match="Could not find endpoint"):
        backend.describe_endpoint(EndpointName="ep")
    backend.delete_endpoint_config(EndpointConfigName="c1")
    backend.delete_model(ModelName="m1")
    assert backend.list_models()["Models"] == [] and backend.list_endpoint_configs()["EndpointConfigs"] == []


def test_invocation_errors(backend, live):
    with pytest.raises(ModelErrorResponse) as err:
        _predict(backend, "ep", body="1,2,3")
    assert err.value.status == 424 and err.value.original_status == 400
    with pytest.raises(SageMakerError) as err:
        backend.invoke_endpoint("ep", b"1" * (6 * 1024 * 1024 + 1), "text/csv", None)
    assert err.value.code == "ValidationError" and err.value.status == 413
    with pytest.raises(SageMakerError, match="Endpoint other of account 123456789012 not found."):
        backend.invoke_endpoint("other", b"1", "text/csv", None)


def test_responses_in_every_format(backend, live):
    for accept, content_type in (
        ("application/json", "application/json"),
        ("application/jsonlines", "application/jsonlines"),
        ("text/csv", "text/csv"),
    ):
        payload, got, _ = backend.invoke_endpoint("ep", _row0().encode(), "text/csv", accept)
        assert got.startswith(content_type)
        assert payload


def test_tags_at_create_and_through_the_tag_api(backend, trained):
    backend.create_model(
        ModelName="tagged", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": trained},
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    arn = backend.describe_model(ModelName="tagged")["ModelArn"]
    backend.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    assert backend.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "ml"},
        {"Key": "stage", "Value": "dev"},
    ]
    backend.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert backend.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    with pytest.raises(ValidationException):
        backend.list_tags(ResourceArn="arn:aws:sagemaker:us-east-1:123456789012:model/ghost")


def test_binary_classifier_end_to_end_is_accurate(backend, aws):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 4))
    y = (X @ np.array([1.5, -2.0, 0.5, 1.0]) > 0).astype(float)
    aws.put_object(Bucket=BUCKET, Key="binary/train/a.csv", Body=to_csv(y[:500], X[:500]))
    req = training_request(
        "binary",
        channels=("train",),
        hyperparameters={"predictor_type": "binary_classifier", "feature_dim": "4", "mini_batch_size": "50"},
    )
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/binary/train"
    backend.create_training_job(req)
    desc = wait_job(backend, "binary")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    _model(backend, "mb", desc["ModelArtifacts"]["S3ModelArtifacts"])
    _config(backend, "cb", "mb")
    backend.create_endpoint(EndpointName="eb", EndpointConfigName="cb")
    wait_endpoint(backend, "eb")
    body = "\n".join(",".join(map(str, row)) for row in X[500:]).encode()
    payload, _, _ = backend.invoke_endpoint("eb", body, "text/csv", "application/json")
    predictions = json.loads(payload)["predictions"]
    labels = np.array([p["predicted_label"] for p in predictions])
    assert all(0.0 <= p["score"] <= 1.0 for p in predictions)
    assert (labels == y[500:]).mean() >= 0.95
