"""Trust by tags: a foreign endpoint is refused; teardown deletes only the project's leftovers."""

from __future__ import annotations

import time

import boto3
import numpy as np
import pytest

from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
from offline_aws.server import start_emulator
from sagemaker_retrain import cleanup
from sagemaker_retrain.config import tags
from sagemaker_retrain.images import linear_learner_image
from sagemaker_retrain.ownership import ForeignResourceError, require_owned_endpoint

ROLE = "arn:aws:iam::123456789012:role/R"


@pytest.fixture(scope="module")
def sm():
    emulator = start_emulator(time_scale=0)
    kwargs = {"endpoint_url": emulator.url, "region_name": "us-east-1", "aws_access_key_id": "t",
              "aws_secret_access_key": "t"}
    s3 = boto3.client("s3", **kwargs)
    s3.create_bucket(Bucket="ownership-bucket")
    model = LinearLearnerModel("regressor", np.zeros(3), np.array([1.0]), loss="squared_loss")
    s3.put_object(Bucket="ownership-bucket", Key="k/model.tar.gz", Body=write_model_tar_gz(model))
    try:
        yield boto3.client("sagemaker", endpoint_url=emulator.url, region_name="us-east-1",
                           aws_access_key_id="t", aws_secret_access_key="t")
    finally:
        emulator.stop()


def _model(sm, name: str, resource_tags: list[dict] | None) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Tags=resource_tags or [], PrimaryContainer={
        "Image": linear_learner_image("us-east-1"), "ModelDataUrl": "s3://ownership-bucket/k/model.tar.gz"})


def _config(sm, name: str, model: str, resource_tags: list[dict] | None) -> None:
    sm.create_endpoint_config(EndpointConfigName=name, Tags=resource_tags or [], ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])


def test_missing_endpoint_is_none_and_foreign_one_is_refused(sm):
    assert require_owned_endpoint(sm, "nothing-here") is None
    _model(sm, "theirs", None)
    _config(sm, "theirs", "theirs", None)
    sm.create_endpoint(EndpointName="theirs", EndpointConfigName="theirs")
    with pytest.raises(ForeignResourceError, match="no sagemaker-retrain:endpoint tag"):
        require_owned_endpoint(sm, "theirs")
    # A tag naming another endpoint is not ownership either.
    sm.add_tags(ResourceArn=sm.describe_endpoint(EndpointName="theirs")["EndpointArn"],
                Tags=[{"Key": "sagemaker-retrain:endpoint", "Value": "other"}])
    with pytest.raises(ForeignResourceError, match="'other'"):
        require_owned_endpoint(sm, "theirs")
    # Teardown of that name touches nothing of it.
    assert cleanup.teardown_persistent(sm, endpoint_name="theirs") == []
    assert sm.describe_endpoint(EndpointName="theirs")["EndpointStatus"] in ("Creating", "InService")


def test_teardown_keeps_serving_and_in_flight_runs_deletes_finished_leftovers(sm):
    ep = "ours"
    _model(sm, "ours-serving", tags(ep, "run-1"))
    _config(sm, "ours-serving", "ours-serving", tags(ep, "run-1"))
    sm.create_endpoint(EndpointName=ep, EndpointConfigName="ours-serving", Tags=tags(ep, "run-1"))
    for _ in range(100):
        if sm.describe_endpoint(EndpointName=ep)["EndpointStatus"] == "InService":
            break
        time.sleep(0.05)
    _model(sm, "ours-lost", tags(ep, "run-2"))          # a finished run's losing challenger
    _model(sm, "ours-in-flight", tags(ep, "run-3"))     # another run, still scoring its challenger
    _model(sm, "ours-untagged", None)                   # not ours: never deleted
    removed = cleanup.teardown_persistent(sm, endpoint_name=ep, run_id="run-2",
                                          is_active=lambda run_id: run_id == "run-3")
    assert removed == ["model ours-lost"]
    left = {m["ModelName"] for m in sm.list_models(NameContains=ep)["Models"]}
    assert {"ours-serving", "ours-in-flight", "ours-untagged"} <= left and "ours-lost" not in left


def test_ephemeral_teardown_deletes_only_what_carries_the_projects_tags(sm):
    ep = "eph-tags"
    _model(sm, f"{ep}-run", tags(ep, "run-1"))
    _config(sm, f"{ep}-run", f"{ep}-run", tags(ep, "run-1"))
    _model(sm, f"{ep}-theirs", None)
    _config(sm, f"{ep}-theirs", f"{ep}-theirs", None)
    removed = cleanup.teardown_ephemeral(sm, endpoint_name=ep, config_name=f"{ep}-run", model_name=f"{ep}-run")
    assert removed == [f"endpoint config {ep}-run", f"model {ep}-run"]
    # same names, no tags: someone else's, left alone
    assert cleanup.teardown_ephemeral(sm, endpoint_name=ep, config_name=f"{ep}-theirs",
                                      model_name=f"{ep}-theirs") == []
    assert sm.describe_model(ModelName=f"{ep}-theirs")["ModelName"] == f"{ep}-theirs"
