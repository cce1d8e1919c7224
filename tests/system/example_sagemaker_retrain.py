"""System test: the whole retraining pipeline, as a user runs it, on the emulator or on real AWS.

The Amazon provider's system-test shape: an *env-id* (``SYSTEM_TESTS_ENV_ID``, else generated) that
suffixes every resource; a **set_up** (the bundled data set ``include/data/housing.csv`` put under
``s3://BUCKET/system-tests/ENV_ID/``); the **test body**, the project's own DAG ``sagemaker_retrain``
run with ``airflow dags test sagemaker_retrain -c CONF`` (conf: ``endpoint_name`` suffixed by the env-id,
``mode`` ephemeral unless ``SAGEMAKER_RETRAIN_SYSTEM_MODE`` says persistent, ``dataset_uri`` the uploaded
object); a **tear_down** that always runs and deletes the prefix and everything else carrying the env-id
that the pipeline's tags say is ours; a **watcher** so a failed task fails the run; and ``test_run`` for
pytest.

Why a module that runs the real DAG rather than a system-test DAG that contains the steps, as the
provider's example DAGs do: the pipeline *is* a DAG already, with its own setups, teardowns
(``restore``, ``teardown``) and watcher (``watcher``, ``trigger_rule=one_failed`` below every task but the
setups, as ``tests_common.test_utils.watcher``). What a user must be able to trust is that DAG, run the way
they will first run it, so the body is exactly ``airflow dags test sagemaker_retrain -c …`` on
``dags/sagemaker_retrain.py``, not a copy of its tasks, with the project's defaults (no deployment
speed-up, no short watch before deferring; only the poll interval is 1 s on the emulator). Wrapping it in an outer DAG would not work
under ``airflow dags test`` (no scheduler): ``TriggerDagRunOperator(wait_for_completion=True)`` waits
for a scheduler that never comes, and a task running a second ``dags test`` would share (and lock) the
outer run's SQLite database. So set_up and tear_down are plain functions around that command, and the
run's state (and its exit code: a first ``dags test`` must end 0 after a successful run) is asserted
here, as ``get_test_run`` asserts the state of an example DAG's run. The watcher is the DAG's own: it
must be in the run and skipped (no task failed).

Run it: ``.venv/bin/pytest tests/system`` (emulator, part of ``make test``). Against real AWS, set
``SAGEMAKER_RETRAIN_SYSTEM_ROLE_ARN`` and ``SAGEMAKER_RETRAIN_SYSTEM_BUCKET`` (README, *System test on
your AWS account*).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from offline_aws.airflow_run import DagRunResult, airflow_env, dags_test
from sagemaker_retrain.config import TAG_ENDPOINT, TAG_PROJECT

PROJECT_DIR = Path(__file__).resolve().parents[2]
DAG_ID = "sagemaker_retrain"
ENV_ID_KEY = "SYSTEM_TESTS_ENV_ID"
PROJECT_TAG_VALUE = "sagemaker-retrain"
# The env-id is lower-case letters and digits: valid in S3 keys, SageMaker names and alarm names alike.
ENV_ID_PATTERN = re.compile(r"^[a-z][a-z0-9]{2,11}$")
# SageMaker cuts a resource name's base to fit the run's slug; the scoring jobs' names leave the
# endpoint name 29 characters (naming.resource_name), so a longer one would lose the env-id there.
MAX_ENDPOINT_NAME = 29
DATA_SET = PROJECT_DIR / "include" / "data" / "housing.csv"
# Seconds the whole `dags test` may take: the emulator ends jobs at once; on AWS training, the batch
# transform and the endpoint each take minutes.
EMULATOR_TIMEOUT, AWS_TIMEOUT = 900, 3 * 3600


@dataclass(frozen=True)
class SystemTestContext:
    """What ``SystemTestContextBuilder`` gives an example DAG: the env-id and the external variables."""

    env_id: str
    endpoint_name: str
    s3_prefix: str  # the pipeline's Variable sagemaker_retrain_prefix: all it writes goes there
    mode: str

    @property
    def dataset_key(self) -> str:
        return f"{self.s3_prefix}/data/{DATA_SET.name}"


def build_context() -> SystemTestContext:
    env_id = os.environ.get(ENV_ID_KEY, "").strip() or f"st{secrets.token_hex(3)}"
    if not ENV_ID_PATTERN.match(env_id):
        raise ValueError(f"{ENV_ID_KEY}={env_id!r}: 3-12 lower-case letters and digits, starting with a letter")
    name_prefix = os.environ.get("SAGEMAKER_RETRAIN_SYSTEM_NAME_PREFIX", "sm-retrain-sys").strip()
    endpoint_name = f"{name_prefix}-{env_id}"
    if len(endpoint_name) > MAX_ENDPOINT_NAME:
        raise ValueError(f"endpoint name {endpoint_name!r} is longer than {MAX_ENDPOINT_NAME} characters: SageMaker "
                         "names would lose the env-id; shorten SAGEMAKER_RETRAIN_SYSTEM_NAME_PREFIX or the env-id")
    base = os.environ.get("SAGEMAKER_RETRAIN_SYSTEM_S3_PREFIX", "system-tests").strip("/ ")
    mode = os.environ.get("SAGEMAKER_RETRAIN_SYSTEM_MODE", "ephemeral").strip()
    if mode not in ("ephemeral", "persistent"):
        raise ValueError(f"SAGEMAKER_RETRAIN_SYSTEM_MODE={mode!r}: ephemeral or persistent")
    return SystemTestContext(env_id, endpoint_name, f"{base}/{env_id}", mode)


# --- TEST SETUP ----------------------------------------------------------------------------------

def set_up(ctx: SystemTestContext, aws) -> str:
    """Put the bundled data set under the env-id's prefix; return its URI (the run's ``dataset_uri``)."""
    aws.client("s3").put_object(Bucket=aws.bucket, Key=ctx.dataset_key, Body=DATA_SET.read_bytes())
    return f"s3://{aws.bucket}/{ctx.dataset_key}"


# --- TEST BODY -----------------------------------------------------------------------------------

def run_pipeline(ctx: SystemTestContext, aws, dataset_uri: str, home: Path) -> DagRunResult:
    """``airflow dags test sagemaker_retrain -c CONF`` in a fresh AIRFLOW_HOME (SQLite)."""
    env = airflow_env(
        PROJECT_DIR, home, aws.aws_env, aws.bucket, role_arn=aws.role_arn,
        # The DAG's defaults (defer at once; 30 s between checks on AWS), but 1 s on the emulator, whose
        # jobs end at once.
        poll_seconds=30 if aws.real else 1, short_wait_seconds=0,
        extra={"AIRFLOW_VAR_SAGEMAKER_RETRAIN_PREFIX": ctx.s3_prefix,
               "AIRFLOW_VAR_SAGEMAKER_RETRAIN_REGION": aws.region,
               # As a user's first `dags test`: none of the deployments' opt-in speed-ups (airflow_deployment).
               "AIRFLOW__AWS__SESSION_FACTORY": ""})
    conf = {"endpoint_name": ctx.endpoint_name, "mode": ctx.mode, "dataset_uri": dataset_uri}
    return dags_test(env, DAG_ID, conf=conf, timeout=AWS_TIMEOUT if aws.real else EMULATOR_TIMEOUT)


# --- TEST TEARDOWN -------------------------------------------------------------------------------

def _tags(sm, arn: str) -> dict[str, str]:
    from sagemaker_retrain.ownership import tags_of

    return tags_of(sm, arn)


def _ours(tags: dict[str, str], ctx: SystemTestContext) -> bool:
    """The pipeline tagged it, for an endpoint of this env-id."""
    return tags.get(TAG_PROJECT) == PROJECT_TAG_VALUE and ctx.env_id in tags.get(TAG_ENDPOINT, "")


def _pages(client, op: str, key: str, **kwargs) -> list[dict]:
    return [item for page in client.get_paginator(op).paginate(**kwargs) for item in page.get(key, [])]


def _gone(call) -> None:
    try:
        call()
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("ValidationException", "ResourceNotFound", "ResourceNotFoundException"):
            raise


def _alarm_prefix(ctx: SystemTestContext) -> str:
    """The pipeline names its alarms after its S3 prefix (``config.alarm_names``), which holds the env-id."""
    return ctx.s3_prefix.replace("/", "-")


def leftovers(ctx: SystemTestContext, aws) -> dict[str, list[str]]:
    """Everything carrying the env-id that still exists (finished jobs excepted: SageMaker keeps those)."""
    sm, env_id = aws.client("sagemaker"), ctx.env_id
    found = {
        # An endpoint being deleted is gone for this purpose (on AWS it stays listed for a few minutes).
        "endpoints": [e["EndpointName"] for e in _pages(sm, "list_endpoints", "Endpoints", NameContains=env_id)
                      if e["EndpointStatus"] != "Deleting"],
        "endpoint_configs": [c["EndpointConfigName"] for c in _pages(
            sm, "list_endpoint_configs", "EndpointConfigs", NameContains=env_id)],
        "models": [m["ModelName"] for m in _pages(sm, "list_models", "Models", NameContains=env_id)],
        "model_package_groups": [g["ModelPackageGroupName"] for g in _pages(
            sm, "list_model_package_groups", "ModelPackageGroupSummaryList", NameContains=env_id)],
        "running_jobs": [j["TrainingJobName"] for j in _pages(
            sm, "list_training_jobs", "TrainingJobSummaries", NameContains=env_id, StatusEquals="InProgress")]
        + [j["TransformJobName"] for j in _pages(
            sm, "list_transform_jobs", "TransformJobSummaries", NameContains=env_id, StatusEquals="InProgress")],
        "alarms": [a["AlarmName"] for a in _pages(aws.client("cloudwatch"), "describe_alarms", "MetricAlarms",
                                                  AlarmNamePrefix=_alarm_prefix(ctx)) if env_id in a["AlarmName"]],
        "s3_objects": [o["Key"] for o in _pages(aws.client("s3"), "list_objects_v2", "Contents",
                                                Bucket=aws.bucket, Prefix=f"{ctx.s3_prefix}/")],
    }
    return {kind: names for kind, names in found.items() if names}


def tear_down(ctx: SystemTestContext, aws) -> list[str]:
    """Delete the env-id's prefix and every resource left with the env-id that carries the pipeline's tags.

    Runs whatever the body did (``finally``). A resource with the env-id in its name but without the
    project's tags is left alone (and shows in ``leftovers``): it is not the pipeline's.
    """
    sm, cloudwatch, logs, s3 = (aws.client(s) for s in ("sagemaker", "cloudwatch", "logs", "s3"))
    env_id, removed = ctx.env_id, []
    jobs = [(j["TrainingJobName"], j["TrainingJobArn"], "/aws/sagemaker/TrainingJobs")
            for j in _pages(sm, "list_training_jobs", "TrainingJobSummaries", NameContains=env_id)]
    jobs += [(j["TransformJobName"], j["TransformJobArn"], "/aws/sagemaker/TransformJobs")
             for j in _pages(sm, "list_transform_jobs", "TransformJobSummaries", NameContains=env_id)]
    for name, arn, log_group in jobs:
        if not _ours(_tags(sm, arn), ctx):
            continue
        if "TrainingJobs" in log_group:
            status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
            if status == "InProgress":
                _gone(lambda name=name: sm.stop_training_job(TrainingJobName=name))
                removed.append(f"stopped training job {name}")
        else:
            status = sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"]
            if status == "InProgress":
                _gone(lambda name=name: sm.stop_transform_job(TransformJobName=name))
                removed.append(f"stopped transform job {name}")
        # The jobs' logs (CloudWatch keeps them forever by default); the jobs themselves cannot be deleted.
        try:
            streams = _pages(logs, "describe_log_streams", "logStreams", logGroupName=log_group,
                             logStreamNamePrefix=f"{name}/")
        except ClientError:
            streams = []
        for stream in streams:
            _gone(lambda s=stream, g=log_group: logs.delete_log_stream(logGroupName=g, logStreamName=s["logStreamName"]))
            removed.append(f"log stream {log_group}/{stream['logStreamName']}")

    deleted_endpoints = []
    for endpoint in _pages(sm, "list_endpoints", "Endpoints", NameContains=env_id):
        name = endpoint["EndpointName"]
        if _ours(_tags(sm, endpoint["EndpointArn"]), ctx):
            _gone(lambda name=name: sm.delete_endpoint(EndpointName=name))
            deleted_endpoints.append(name)
            removed.append(f"endpoint {name}")
    for config in _pages(sm, "list_endpoint_configs", "EndpointConfigs", NameContains=env_id):
        name = config["EndpointConfigName"]
        if _ours(_tags(sm, config["EndpointConfigArn"]), ctx):
            _gone(lambda name=name: sm.delete_endpoint_config(EndpointConfigName=name))
            removed.append(f"endpoint config {name}")
    for model in _pages(sm, "list_models", "Models", NameContains=env_id):
        name = model["ModelName"]
        if _ours(_tags(sm, model["ModelArn"]), ctx):
            _gone(lambda name=name: sm.delete_model(ModelName=name))
            removed.append(f"model {name}")
    for group in _pages(sm, "list_model_package_groups", "ModelPackageGroupSummaryList", NameContains=env_id):
        name = group["ModelPackageGroupName"]
        if not _ours(_tags(sm, group["ModelPackageGroupArn"]), ctx):
            continue
        for package in _pages(sm, "list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=name):
            _gone(lambda arn=package["ModelPackageArn"]: sm.delete_model_package(ModelPackageName=arn))
            removed.append(f"model package {package['ModelPackageArn']}")
        _gone(lambda name=name: sm.delete_model_package_group(ModelPackageGroupName=name))
        removed.append(f"model package group {name}")
    for alarm in _pages(cloudwatch, "describe_alarms", "MetricAlarms", AlarmNamePrefix=_alarm_prefix(ctx)):
        if env_id not in alarm["AlarmName"]:
            continue
        tags = {t["Key"]: t["Value"] for t in cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]}
        if _ours(tags, ctx):
            cloudwatch.delete_alarms(AlarmNames=[alarm["AlarmName"]])
            removed.append(f"alarm {alarm['AlarmName']}")
    for name in deleted_endpoints:  # an endpoint is Deleting for a while on AWS
        _gone(lambda name=name: sm.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": 15 if aws.real else 0.2, "MaxAttempts": 80}))
        for group in (f"/aws/sagemaker/Endpoints/{name}",):
            _gone(lambda group=group: logs.delete_log_group(logGroupName=group))
    keys = [o["Key"] for o in _pages(s3, "list_objects_v2", "Contents", Bucket=aws.bucket, Prefix=f"{ctx.s3_prefix}/")]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=aws.bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                     "Quiet": True})
    if keys:
        removed.append(f"{len(keys)} objects under s3://{aws.bucket}/{ctx.s3_prefix}/")
    return removed


# --- pytest --------------------------------------------------------------------------------------

def _plan(result: DagRunResult) -> dict:
    """``prepare``'s return value: the whole plan."""
    return result.xcoms["prepare"]


@pytest.mark.slow
@pytest.mark.timeout(AWS_TIMEOUT + 1800)
def test_run(system_aws, tmp_path):
    ctx = build_context()
    started = time.monotonic()
    removed: list[str] = []
    try:
        dataset_uri = set_up(ctx, system_aws)
        result = run_pipeline(ctx, system_aws, dataset_uri, tmp_path / "airflow-home")
        print(f"env-id {ctx.env_id}: run {result.run_id} {result.state} (exit {result.returncode}) in "
              f"{time.monotonic() - started:.0f} s on {'AWS' if system_aws.real else 'the emulator'}")
        assert result.state == "success", result.output[-8000:]
        assert result.returncode == 0, result.output[-4000:]
        # The watcher ran its rule and found no failed task.
        assert result.states.get("watcher") == "skipped", result.states
        assert result.states.get("teardown") == "success", result.states
        plan = _plan(result)
        assert plan["names"] and all(ctx.env_id in name for name in plan["names"].values()), plan["names"]
        assert plan["dataset_uri"] == dataset_uri
        if ctx.mode == "ephemeral":
            # The pipeline deleted its own endpoint, config and model: only its registry entry is left.
            left = leftovers(ctx, system_aws)
            assert set(left) <= {"model_package_groups", "alarms", "s3_objects"}, left
    finally:
        removed = tear_down(ctx, system_aws)
        print(f"tear_down removed: {removed}")
    assert leftovers(ctx, system_aws) == {}
