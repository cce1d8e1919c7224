"""Undo, names and the pinned champion decide from what SageMaker says now, never from an old XCom.

Against the emulator's SageMaker (time scale 0): the undo rule of ``undo.decide_undo`` for every
case it names, the generation of a cleared run's names from its tagged training jobs, the champion
pinned (and waited for while the endpoint changes), and ``deploy`` refusing before any mutating
call when the endpoint no longer serves the champion the gate compared or the package is not Approved.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from unittest import mock

import boto3
import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
from offline_aws.server import start_emulator
from sagemaker_retrain import naming, undo
from sagemaker_retrain.config import TAG_PREVIOUS_CONFIG, TAG_VERIFIED, tags
from sagemaker_retrain.images import linear_learner_image
from sagemaker_retrain.operators.champion import PinChampionOperator, pin
from sagemaker_retrain.operators.endpoint import SageMakerDeployOperator

ROLE = "arn:aws:iam::123456789012:role/R"
BUCKET = "undo-bucket"
RUN = "manual__2026-12-06T00:00:00+00:00"


@pytest.fixture(scope="module")
def emulator():
    emulator = start_emulator(time_scale=0)
    kwargs = {"endpoint_url": emulator.url, "region_name": "us-east-1", "aws_access_key_id": "t",
              "aws_secret_access_key": "t"}
    s3 = boto3.client("s3", **kwargs)
    s3.create_bucket(Bucket=BUCKET)
    model = LinearLearnerModel("regressor", np.zeros(3), np.array([1.0]), loss="squared_loss")
    s3.put_object(Bucket=BUCKET, Key="k/model.tar.gz", Body=write_model_tar_gz(model))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def sm(emulator):
    return boto3.client("sagemaker", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id="t",
                        aws_secret_access_key="t")


def _config(sm, endpoint: str, name: str, run: str, **extra: str) -> str:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Tags=tags(endpoint, run), PrimaryContainer={
        "Image": linear_learner_image("us-east-1"), "ModelDataUrl": f"s3://{BUCKET}/k/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, Tags=tags(endpoint, run) + [
        {"Key": k, "Value": v} for k, v in extra.items()], ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
    return name


def _settle(sm, endpoint: str) -> dict:
    for _ in range(200):
        description = sm.describe_endpoint(EndpointName=endpoint)
        if description["EndpointStatus"] not in undo.TRANSITIONAL:
            return description
        time.sleep(0.05)
    raise AssertionError(f"{endpoint} never settled")


def _endpoint(sm, endpoint: str, config: str, run: str) -> None:
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config, Tags=tags(endpoint, run))
    _settle(sm, endpoint)


def _switch(sm, endpoint: str, config: str) -> None:
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    _settle(sm, endpoint)


# --- the undo rule ---------------------------------------------------------------------------
def test_unverified_config_of_this_run_goes_back_to_the_one_it_replaced(sm):
    ep = "undo-switch"
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-old", "run-old"), "run-old")
    _switch(sm, ep, _config(sm, ep, f"{ep}-new", RUN, **{TAG_PREVIOUS_CONFIG: f"{ep}-old"}))
    decision = undo.decide_undo(sm, ep, RUN)
    assert (decision.action, decision.config) == (undo.SWITCH_BACK, f"{ep}-old")


def test_verified_config_of_this_run_stays_even_for_a_later_pass(sm):
    """Clear of a promoted run: the second pass kept that first-pass model; nothing may put the older one back."""
    ep = "undo-verified"
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-old", "run-old"), "run-old")
    _switch(sm, ep, _config(sm, ep, f"{ep}-first-pass", RUN, **{TAG_PREVIOUS_CONFIG: f"{ep}-old",
                                                                  TAG_VERIFIED: "2026-12-06 by run"}))
    assert undo.decide_undo(sm, ep, RUN).action == undo.NONE


def test_another_runs_config_or_a_sagemaker_rollback_is_left_as_is(sm):
    ep = "undo-foreign-run"
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-other", "run-other"), "run-other")
    decision = undo.decide_undo(sm, ep, RUN)
    assert decision.action == undo.NONE and "not a config of this run" in decision.message


def test_first_deployment_never_verified_is_deleted_and_a_missing_endpoint_is_nothing(sm):
    ep = "undo-first"
    assert undo.decide_undo(sm, ep, RUN).action == undo.NONE
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-c", RUN), RUN)
    assert undo.decide_undo(sm, ep, RUN).action == undo.DELETE_ENDPOINT


def test_unknown_replaced_config_is_refused_not_guessed(sm):
    ep = "undo-unknown"
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-old", "run-old"), "run-old")
    _switch(sm, ep, _config(sm, ep, f"{ep}-new", RUN, **{TAG_PREVIOUS_CONFIG: f"{ep}-gone"}))
    decision = undo.decide_undo(sm, ep, RUN)
    assert decision.action == undo.REFUSE and f"{ep}-gone" in decision.message


def test_a_changing_endpoint_is_waited_for(sm, emulator):
    ep = "undo-wait"
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-old", "run-old"), "run-old")
    emulator.clock.time_scale = 1000.0  # hold the update
    try:
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=_config(sm, ep, f"{ep}-new", RUN))
        decision = undo.decide_undo(sm, ep, RUN)
        assert (decision.action, decision.config) == (undo.WAIT, f"{ep}-new")
        # and the champion is not pinned on a changing endpoint: the pin defers
        op = PinChampionOperator(task_id="pin_champion", endpoint_name=ep, poll_interval=0.1, aws_conn_id=None,
                                 region_name="us-east-1")
        with _conn(sm), pytest.raises(TaskDeferred):
            op.execute({})
    finally:
        emulator.clock.time_scale = 0.0
    _settle(sm, ep)


# --- names --------------------------------------------------------------------------------------
def test_generation_comes_from_the_runs_tagged_jobs_and_whether_train_runs_again():
    base = naming.run_slug(RUN, datetime(2026, 12, 6, tzinfo=UTC))
    assert naming.generation_of(f"ep-{base}", base) == 0
    assert naming.generation_of(f"ep-{base}-c3", base) == 3
    assert naming.generation_of(f"ep-{base}x", base) is None
    assert naming.next_generation([], retrain=True) == 0  # first pass
    assert naming.next_generation([0], retrain=True) == 1  # whole-run Clear: train runs again
    assert naming.next_generation([0], retrain=False) == 0  # clear of gate/deploy/wait: same names
    assert naming.next_generation([0, 1], retrain=False) == 1


# --- the pinned champion and deploy's refusals ---------------------------------------------------
class _conn:
    """Point the operators' hooks at the emulator's client."""

    def __init__(self, sm):
        self.hook = mock.MagicMock(conn=sm)
        self.patches = [mock.patch.object(cls, "hook", new_callable=mock.PropertyMock, return_value=self.hook)
                        for cls in (PinChampionOperator, SageMakerDeployOperator)]

    def __enter__(self):
        for p in self.patches:
            p.start()
        return self.hook

    def __exit__(self, *exc):
        for p in self.patches:
            p.stop()


def test_pin_records_config_model_and_package(sm):
    ep = "pin-exact"
    assert pin(sm, ep)["endpoint_config"] is None
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-c", "run-old"), "run-old")
    pinned = pin(sm, ep)
    assert (pinned["endpoint_config"], pinned["model"], pinned["package"]) == (f"{ep}-c", f"{ep}-c", None)


def _deploy_config(ep: str, wanted: str, champion: str | None) -> dict:
    return {"EndpointConfig": {"EndpointConfigName": wanted, "Tags": tags(ep, RUN), "ProductionVariants": [{
                "ModelName": wanted, "VariantName": "AllTraffic", "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1}]},
            "Endpoint": {"EndpointName": ep, "EndpointConfigName": wanted, "Tags": tags(ep, RUN)},
            "DeploymentConfig": None, "Alarms": [], "MaxWaitSeconds": 60,
            "Champion": {"EndpointConfigName": champion}, "ModelPackageArn": None}


def test_deploy_refuses_an_endpoint_that_no_longer_serves_the_pinned_champion(sm, emulator):
    ep = "deploy-moved"
    _endpoint(sm, ep, _config(sm, ep, f"{ep}-champion", "run-old"), "run-old")
    _switch(sm, ep, _config(sm, ep, f"{ep}-other-run", "run-other"))  # another run promoted in between
    _config(sm, ep, f"{ep}-mine", RUN)
    op = SageMakerDeployOperator(task_id="deploy", config=_deploy_config(ep, f"{ep}-mine", f"{ep}-champion"),
                                 aws_conn_id=None, region_name="us-east-1")
    before = emulator.faults.call_counts().get("UpdateEndpoint", 0)
    with _conn(sm) as hook, pytest.raises(AirflowFailException) as err:
        hook.describe_endpoint_config.side_effect = lambda n: sm.describe_endpoint_config(EndpointConfigName=n)
        op.execute({})
    assert f"serves {ep}-other-run" in str(err.value) and f"{ep}-champion" in str(err.value)
    assert emulator.faults.call_counts().get("UpdateEndpoint", 0) == before
    assert sm.describe_endpoint(EndpointName=ep)["EndpointConfigName"] == f"{ep}-other-run"


def test_deploy_refuses_a_package_that_is_not_approved(sm):
    ep = "deploy-unapproved"
    sm.create_model_package_group(ModelPackageGroupName=ep)
    arn = sm.create_model_package(
        ModelPackageGroupName=ep, ModelApprovalStatus="PendingManualApproval", InferenceSpecification={
            "Containers": [{"Image": linear_learner_image("us-east-1"),
                            "ModelDataUrl": f"s3://{BUCKET}/k/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["application/json"]})[
        "ModelPackageArn"]
    config = {**_deploy_config(ep, f"{ep}-mine", None), "ModelPackageArn": arn}
    op = SageMakerDeployOperator(task_id="deploy", config=config, aws_conn_id=None, region_name="us-east-1")
    with _conn(sm), pytest.raises(AirflowFailException, match="PendingManualApproval, not Approved"):
        op.execute({})
    assert sm.list_endpoints(NameContains=ep)["Endpoints"] == []
