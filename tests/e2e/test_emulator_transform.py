"""Batch Transform against a running offline AWS: boto3, the provider's operator (sync and deferred), waiters.

The transform's ``.out`` must hold, row for row, what InvokeEndpoint answers for the same rows
with the same trained artifact.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "emulator"))
from emu_helpers import IMAGE, ROLE, housing_split, shape_problems, to_csv  # noqa: E402

from offline_aws.admin_client import call_admin  # noqa: E402

BUCKET = "e2e-transform"
TEST_KEY = "transform/input/test.csv"


def _in_own_loop(coroutine):
    """Run a trigger's coroutine on a fresh loop in its own thread, as a triggerer does.

    The browser tests of the same session leave Playwright's loop on the main thread, where
    ``asyncio.run`` would refuse to start.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def clients(emulator):
    kw = dict(endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id="test",
              aws_secret_access_key="test")
    return {name: boto3.client(name, **kw) for name in ("s3", "sagemaker", "sagemaker-runtime")}


@pytest.fixture(scope="module")
def model(clients):
    """A model from a really trained artifact, and the test split (features only) as CSV in S3."""
    s3, sm = clients["s3"], clients["sagemaker"]
    s3.create_bucket(Bucket=BUCKET)
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    s3.put_object(Bucket=BUCKET, Key="housing/train/part-0.csv", Body=to_csv(ytr, Xtr))
    s3.put_object(Bucket=BUCKET, Key="housing/validation/part-0.csv", Body=to_csv(yva, Xva))
    features = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in Xva)
    s3.put_object(Bucket=BUCKET, Key=TEST_KEY, Body=features.encode())
    sm.create_training_job(
        TrainingJobName="tr-housing",
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"predictor_type": "regressor", "mini_batch_size": "30", "feature_dim": "12"},
        InputDataConfig=[
            {"ChannelName": c, "ContentType": "text/csv",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/housing/{c}/"}}}
            for c in ("train", "validation")
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="tr-housing",
                                                           WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    artifact = sm.describe_training_job(TrainingJobName="tr-housing")["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(ModelName="tr-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact})
    return {"name": "tr-model", "artifact": artifact, "rows": features, "n": len(Xva)}


@pytest.fixture(scope="module")
def invoked(clients, model):
    """InvokeEndpoint's text/csv answer for the whole test split, one line per row."""
    sm, rt = clients["sagemaker"], clients["sagemaker-runtime"]
    sm.create_endpoint_config(EndpointConfigName="tr-config", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model["name"], "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="tr-endpoint", EndpointConfigName="tr-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="tr-endpoint", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    body = rt.invoke_endpoint(EndpointName="tr-endpoint", ContentType="text/csv", Accept="text/csv",
                              Body=model["rows"])["Body"].read().decode()
    return body.splitlines()


def transform_config(name: str, model_name: str = "tr-model", **extra) -> dict:
    config = {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/transform/input/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/transform/output/{name}", "Accept": "text/csv",
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    config.update(extra)
    return config


def read_out(clients, name: str) -> list[str]:
    key = f"transform/output/{name}/test.csv.out"
    return clients["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()


# --- boto3 -----------------------------------------------------------------------------------
def test_boto3_transform_matches_invoke_endpoint(clients, model, invoked):
    sm = clients["sagemaker"]
    arn = sm.create_transform_job(**transform_config("tr-boto3", Tags=[{"Key": "owner", "Value": "e2e"}]))[
        "TransformJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:transform-job/tr-boto3"
    started = time.monotonic()
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="tr-boto3",
                                                            WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    desc = sm.describe_transform_job(TransformJobName="tr-boto3")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert time.monotonic() - started < 10
    assert shape_problems("DescribeTransformJob", desc) == []
    assert desc["TransformInput"]["SplitType"] == "Line" and desc["TransformOutput"]["Accept"] == "text/csv"
    out = read_out(clients, "tr-boto3")
    assert len(out) == model["n"] == len(invoked)
    assert out == invoked
    assert np.isfinite([float(v) for v in out]).all()

    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "owner", "Value": "e2e"}]
    listed = sm.list_transform_jobs(NameContains="tr-boto3")
    assert shape_problems("ListTransformJobs", listed) == []
    assert [s["TransformJobName"] for s in listed["TransformJobSummaries"]] == ["tr-boto3"]

    with pytest.raises(ClientError) as err:
        sm.create_transform_job(**transform_config("tr-boto3"))
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "a job with this name already exists" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match='Could not find model "arn:aws:sagemaker'):
        sm.create_transform_job(**transform_config("tr-nomodel", model_name="nope"))
    bad = transform_config("tr-badtype")
    bad["TransformResources"]["InstanceType"] = "ml.t2.nano"
    with pytest.raises(ClientError, match="at 'transformResources.instanceType' failed to satisfy constraint"):
        sm.create_transform_job(**bad)
    with pytest.raises(ClientError) as err:
        sm.describe_transform_job(TransformJobName="tr-never")
    assert err.value.response["Error"] == {"Code": "ValidationException",
                                           "Message": "Could not find requested job with name tr-never"}


def test_single_record_json_output_and_join(clients, model, invoked):
    sm = clients["sagemaker"]
    sm.create_transform_job(**transform_config(
        "tr-join", BatchStrategy="SingleRecord", DataProcessing={"JoinSource": "Input", "OutputFilter": "$[-1]"}))
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="tr-join", WaiterConfig={"Delay": 1})
    # one row per request: the same numbers up to the last bit of a 1-row vs n-row matrix product
    assert np.allclose([float(v) for v in read_out(clients, "tr-join")], [float(v) for v in invoked], rtol=1e-12)


def test_injected_failure_and_stop_over_http(emulator, clients, model):
    sm = clients["sagemaker"]
    call_admin(emulator.url, "faults", {"fail_next_transform_job": "InternalServerError: injected"})
    sm.create_transform_job(**transform_config("tr-fault"))
    with pytest.raises(Exception, match="Waiter TransformJobCompletedOrStopped failed"):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="tr-fault",
                                                                WaiterConfig={"Delay": 1})
    desc = sm.describe_transform_job(TransformJobName="tr-fault")
    assert (desc["TransformJobStatus"], desc["FailureReason"]) == ("Failed", "InternalServerError: injected")
    state = call_admin(emulator.url, "state")
    assert state["sagemaker"]["us-east-1"]["transform_jobs"]["tr-fault"]["status"] == "Failed"

    call_admin(emulator.url, "config", {"time_scale": 1000})
    try:
        sm.create_transform_job(**transform_config("tr-stop"))
        sm.stop_transform_job(TransformJobName="tr-stop")
    finally:
        call_admin(emulator.url, "config", {"time_scale": 0})
    for _ in range(100):
        desc = sm.describe_transform_job(TransformJobName="tr-stop")
        if desc["TransformJobStatus"] == "Stopped":
            break
        time.sleep(0.05)
    assert desc["TransformJobStatus"] == "Stopped"


# --- the Amazon provider -------------------------------------------------------------------------
def test_provider_transform_operator_creates_model_and_waits(emulator, model, invoked, clients):
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

    config = {
        "Model": {"ModelName": "tr-op-model", "ExecutionRoleArn": ROLE,
                  "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": model["artifact"]}},
        "Transform": transform_config("tr-op", model_name="tr-op-model"),
    }
    result = SageMakerTransformOperator(task_id="transform", config=config, aws_conn_id=None, check_interval=1,
                                        deferrable=False).execute({})
    assert result["Transform"]["TransformJobStatus"] == "Completed"
    assert result["Model"]["ModelName"] == "tr-op-model"
    assert read_out(clients, "tr-op") == invoked
    hook = SageMakerHook(aws_conn_id=None)
    hook.get_waiter("TransformJobComplete").wait(TransformJobName="tr-op", WaiterConfig={"Delay": 1})


def test_provider_transform_operator_deferrable(emulator, model, invoked, clients):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator
    from airflow.sdk.exceptions import TaskDeferred

    transform_deferred = SageMakerTransformOperator(
        task_id="transform_deferred", config=transform_config("tr-deferred"), aws_conn_id=None, check_interval=1,
        deferrable=True,
    )
    call_admin(emulator.url, "config", {"time_scale": 1000})  # hold the job InProgress so the task defers
    try:
        with pytest.raises(TaskDeferred) as deferred:
            transform_deferred.execute({})
    finally:
        call_admin(emulator.url, "config", {"time_scale": 0})
    trigger = deferred.value.trigger

    async def first_event():
        async for event in trigger.run():
            return event

    event = _in_own_loop(first_event())
    assert event.payload["status"] == "success", event.payload
    result = getattr(transform_deferred, deferred.value.method_name)({}, event.payload)
    assert result["Transform"]["TransformJobStatus"] == "Completed"
    assert read_out(clients, "tr-deferred") == invoked


def test_provider_deferred_trigger_reports_failure(emulator, model):
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    call_admin(emulator.url, "faults", {"fail_next_transform_job": "ClientError: injected for the trigger"})
    boto3.client("sagemaker", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_transform_job(**transform_config("tr-trigger-fail"))
    trigger = SageMakerTrigger(job_name="tr-trigger-fail", job_type="Transform", waiter_delay=1,
                               waiter_max_attempts=30, aws_conn_id=None)

    async def first_event():
        async for event in trigger.run():
            return event

    event = _in_own_loop(first_event())
    assert event.payload["status"] == "failed"
    assert event.payload["message"] == "ClientError: injected for the trigger"
    assert json.dumps(event.payload)


# --- short jobs end on the worker (sagemaker_retrain.operators.short_waits) ----------------------
def test_short_wait_operator_watches_a_short_job_to_its_end_without_deferring(emulator, model, invoked, clients):
    from sagemaker_retrain.operators.short_waits import SageMakerShortWaitTransformOperator

    operator = SageMakerShortWaitTransformOperator(
        task_id="score", config=transform_config("tr-short"), aws_conn_id=None, check_interval=0.1, deferrable=True,
        short_wait_seconds=30)
    # InProgress at the first check, done in about 0.4 s; the watch ends when the trigger fires, so its 30 s
    # bound only matters on a loaded machine (the first async client of a process takes seconds to build).
    call_admin(emulator.url, "config", {"time_scale": 0.1})
    try:
        result = operator.execute({})  # a deferral would raise TaskDeferred
    finally:
        call_admin(emulator.url, "config", {"time_scale": 0})
    assert result["Transform"]["TransformJobStatus"] == "Completed"
    assert read_out(clients, "tr-short") == invoked


def test_short_wait_operator_defers_a_job_that_outlasts_the_watch(emulator, model):
    from airflow.sdk.exceptions import TaskDeferred

    from sagemaker_retrain.operators.short_waits import SageMakerShortWaitTransformOperator

    operator = SageMakerShortWaitTransformOperator(
        task_id="score", config=transform_config("tr-long"), aws_conn_id=None, check_interval=0.1, deferrable=True,
        short_wait_seconds=0.3)
    call_admin(emulator.url, "config", {"time_scale": 1000})
    try:
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute({})
    finally:
        call_admin(emulator.url, "config", {"time_scale": 0})
    assert deferred.value.trigger.job_name == "tr-long"


def test_short_wait_hands_on_the_event_the_trigger_would_send(emulator, model):
    """A job that fails while watched ends the task exactly as the provider's trigger would have."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.sdk.exceptions import AirflowException

    from sagemaker_retrain.operators.short_waits import SageMakerShortWaitTransformOperator

    call_admin(emulator.url, "faults", {"fail_next_transform_job": "InternalServerError: injected while watched"})
    operator = SageMakerShortWaitTransformOperator(
        task_id="score", config=transform_config("tr-watch-fail"), aws_conn_id=None, check_interval=0.1,
        deferrable=True, short_wait_seconds=30)
    call_admin(emulator.url, "config", {"time_scale": 0.1})
    try:
        # The provider raises from execute when the job is Failed at its first check, from execute_complete
        # (RuntimeError) when the watched trigger reports it: which one depends on the machine's pace.
        with pytest.raises((RuntimeError, AirflowException), match="InternalServerError: injected while watched"):
            operator.execute({})
    finally:
        call_admin(emulator.url, "config", {"time_scale": 0})
    trigger = SageMakerTrigger(job_name="tr-watch-fail", job_type="Transform", waiter_delay=1,
                               waiter_max_attempts=30, aws_conn_id=None)

    async def first_event():
        async for event in trigger.run():
            return event

    assert operator.watch_on_worker(trigger).payload == _in_own_loop(first_event()).payload
