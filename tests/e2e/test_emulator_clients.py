"""Real clients against a running offline AWS: boto3, the Amazon provider, the AWS CLI, raw HTTP.

One emulator (time scale 0) on a free port serves the whole module, as ``offline-aws`` would.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "emulator"))
from emu_helpers import IMAGE, ROLE, housing_split, shape_problems, to_csv  # noqa: E402

from offline_aws.admin_client import call_admin
from offline_aws.server import start_emulator  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BUCKET = "e2e-bucket"
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def clients(emulator):
    kw = dict(endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    return {name: boto3.client(name, **kw) for name in ("s3", "sagemaker", "sagemaker-runtime", "logs")} | {
        "sagemaker-no-retry": boto3.client("sagemaker", config=NO_RETRY, **kw),
        "runtime-no-retry": boto3.client("sagemaker-runtime", config=NO_RETRY, **kw),
    }


@pytest.fixture(scope="module")
def data(clients):
    s3 = clients["s3"]
    s3.create_bucket(Bucket=BUCKET)
    (ytr, Xtr), (yva, Xva), (y, X) = housing_split()
    s3.put_object(Bucket=BUCKET, Key="housing/train/part-0.csv", Body=to_csv(ytr[:300], Xtr[:300]))
    s3.put_object(Bucket=BUCKET, Key="housing/train/part-1.csv", Body=to_csv(ytr[300:], Xtr[300:]))
    s3.put_object(Bucket=BUCKET, Key="housing/validation/part-0.csv", Body=to_csv(yva, Xva))
    return ",".join(repr(float(v)) for v in X[0])


def training_config(name: str, content_type: str = "text/csv") -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"predictor_type": "regressor", "mini_batch_size": "30", "feature_dim": "12"},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "ContentType": content_type,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/housing/{channel}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def wait_training(sm, name: str) -> dict:
    """Poll until the job ends, whatever the outcome (boto3's waiter raises on Failed)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        desc = sm.describe_training_job(TrainingJobName=name)
        if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return desc
        time.sleep(0.05)
    raise AssertionError(f"training job {name} did not end")


def admin(emulator, route: str, body: dict | None = None, method: str | None = None) -> dict:
    return call_admin(emulator.url, route, body, method)


@pytest.fixture(scope="module")
def trained(clients, data):
    sm = clients["sagemaker"]
    sm.create_training_job(**training_config("e2e-housing"))
    return wait_training(sm, "e2e-housing")


# --- boto3 ---------------------------------------------------------------------------------
def test_boto3_train_deploy_predict_update_delete(clients, data, trained):
    sm, rt = clients["sagemaker"], clients["sagemaker-runtime"]
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    assert shape_problems("DescribeTrainingJob", trained) == []
    metrics = {m["MetricName"]: m["Value"] for m in trained["FinalMetricDataList"]}
    assert metrics["validation:rmse"] <= 3.9
    artifact = trained["ModelArtifacts"]["S3ModelArtifacts"]
    assert clients["s3"].head_object(Bucket=BUCKET, Key="output/e2e-housing/output/model.tar.gz")

    sm.create_model(ModelName="e2e-m1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact})
    for config in ("e2e-c1", "e2e-c2"):
        sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": "e2e-m1", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
            ],
        )
    sm.create_endpoint(EndpointName="e2e-ep", EndpointConfigName="e2e-c1", Tags=[{"Key": "owner", "Value": "e2e"}])
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-ep", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    desc = sm.describe_endpoint(EndpointName="e2e-ep")
    assert shape_problems("DescribeEndpoint", desc) == []
    assert sm.list_tags(ResourceArn=desc["EndpointArn"])["Tags"] == [{"Key": "owner", "Value": "e2e"}]

    response = rt.invoke_endpoint(EndpointName="e2e-ep", ContentType="text/csv", Accept="application/json", Body=data)
    assert response["ContentType"].startswith("application/json")
    assert response["InvokedProductionVariant"] == "AllTraffic"
    score = json.loads(response["Body"].read())["predictions"][0]["score"]
    assert abs(score - 29.99) <= 1.5

    sm.update_endpoint(EndpointName="e2e-ep", EndpointConfigName="e2e-c2")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-ep", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert sm.describe_endpoint(EndpointName="e2e-ep")["EndpointConfigName"] == "e2e-c2"

    with pytest.raises(ClientError) as err:
        sm.create_endpoint(EndpointName="e2e-ep", EndpointConfigName="e2e-c1")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith("Cannot create already existing endpoint")

    sm.delete_endpoint(EndpointName="e2e-ep")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="e2e-ep", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    for operation, params in (
        ("ListTrainingJobs", {}),
        ("ListModels", {}),
        ("ListEndpointConfigs", {}),
        ("ListEndpoints", {}),
        ("DescribeModel", {"ModelName": "e2e-m1"}),
        ("DescribeEndpointConfig", {"EndpointConfigName": "e2e-c1"}),
    ):
        method = getattr(sm, "_".join(w.lower() for w in __import__("re").findall("[A-Z][a-z]+", operation)))
        assert shape_problems(operation, method(**params)) == [], operation


def test_boto3_errors_parse_as_aws_errors(clients, data, trained):
    sm, rt = clients["sagemaker"], clients["runtime-no-retry"]
    with pytest.raises(ClientError) as err:
        sm.describe_training_job(TrainingJobName="never-created")
    assert (err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]) == (
        "ValidationException",
        "Requested resource not found.",
    )
    bad = training_config("e2e-bad-type")
    bad["ResourceConfig"]["InstanceType"] = "ml.nope"
    with pytest.raises(ClientError, match="at 'resourceConfig.instanceType' failed to satisfy constraint"):
        sm.create_training_job(**bad)

    with pytest.raises(rt.exceptions.ValidationError, match="Endpoint missing-ep of account 123456789012 not found"):
        rt.invoke_endpoint(EndpointName="missing-ep", ContentType="text/csv", Body=data)

    sm.create_model(
        ModelName="e2e-err-m",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    sm.create_endpoint_config(
        EndpointConfigName="e2e-err-c",
        ProductionVariants=[
            {"VariantName": "v1", "ModelName": "e2e-err-m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sm.create_endpoint(EndpointName="e2e-err-ep", EndpointConfigName="e2e-err-c")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-err-ep", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    with pytest.raises(rt.exceptions.ModelError) as err:
        rt.invoke_endpoint(EndpointName="e2e-err-ep", ContentType="text/csv", Body="1,2,3")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err.value.response["OriginalStatusCode"] == 400
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="e2e-err-ep", ContentType="text/csv", Body=b"1" * (6 * 1024 * 1024 + 1))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "payload size exceeds" in err.value.response["Error"]["Message"]


def test_wire_timestamps_are_epoch_numbers(emulator, trained):
    request = urllib.request.Request(
        emulator.url,
        data=json.dumps({"TrainingJobName": "e2e-housing"}).encode(),
        headers={"X-Amz-Target": "SageMaker.DescribeTrainingJob", "Content-Type": "application/x-amz-json-1.1"},
    )
    with urllib.request.urlopen(request) as response:
        body = json.loads(response.read())
    assert isinstance(body["CreationTime"], float)
    assert isinstance(body["SecondaryStatusTransitions"][0]["StartTime"], float)
    request.headers["X-amz-target"] = "SageMaker.CreateTrainingJob"
    request.data = json.dumps({"TrainingJobName": "x"}).encode()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert err.value.code == 400
    assert json.loads(err.value.read())["__type"] == "ValidationException"


# --- fault injection over HTTP ---------------------------------------------------------------
def test_throttling_and_server_errors(emulator, clients, trained):
    admin(emulator, "faults", {"throttle": {"share": 1.0, "operations": ["DescribeTrainingJob"]}})
    try:
        with pytest.raises(ClientError) as err:
            clients["sagemaker-no-retry"].describe_training_job(TrainingJobName="e2e-housing")
        assert err.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    finally:
        admin(emulator, "faults", method="DELETE")

    admin(emulator, "faults", {"throttle": {"share": 0.5, "operations": ["DescribeTrainingJob"]}})
    try:  # every second call is throttled: boto3's retry absorbs it
        for _ in range(4):
            assert clients["sagemaker"].describe_training_job(TrainingJobName="e2e-housing")["TrainingJobStatus"]
    finally:
        admin(emulator, "faults", method="DELETE")

    admin(emulator, "faults", {"server_error": {"count": 1, "status": 503}})
    response = clients["sagemaker"].list_training_jobs()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    admin(emulator, "faults", {"server_error": {"count": 1}})
    with pytest.raises(ClientError) as err:
        clients["sagemaker-no-retry"].list_models()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert err.value.response["Error"]["Code"] == "InternalFailure"


def test_latency_and_call_counter(emulator, clients, trained):
    before = admin(emulator, "calls")
    admin(emulator, "faults", {"latency": {"seconds": 0.3, "operations": ["ListEndpoints"]}})
    try:
        started = time.monotonic()
        clients["sagemaker"].list_endpoints()
        assert time.monotonic() - started >= 0.3
    finally:
        admin(emulator, "faults", method="DELETE")
    clients["s3"].list_buckets()  # S3 is moto's: not a SageMaker call
    after = admin(emulator, "calls")
    assert after["ListEndpoints"] == before.get("ListEndpoints", 0) + 1
    assert sum(after.values()) == sum(before.values()) + 1


def test_injected_failures_through_admin(emulator, clients, trained):
    sm = clients["sagemaker"]
    admin(emulator, "faults", {"fail_next_training_job": "CapacityError: injected"})
    sm.create_training_job(**training_config("e2e-injected"))
    desc = wait_training(sm, "e2e-injected")
    assert (desc["TrainingJobStatus"], desc["FailureReason"]) == ("Failed", "CapacityError: injected")
    state = admin(emulator, "state")
    assert state["sagemaker"]["us-east-1"]["training_jobs"]["e2e-injected"]["status"] == "Failed"
    assert state["time_scale"] == 0


def test_csv_content_type_fails_the_job_with_aws_reason(clients, data):
    sm = clients["sagemaker"]
    sm.create_training_job(**training_config("e2e-csv", content_type="csv"))
    desc = wait_training(sm, "e2e-csv")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "No iterator has been registered for ContentType ('csv', '1.0')" in desc["FailureReason"]



# --- deployment guardrails ------------------------------------------------------------------
def _fleet(clients, name: str, bias: float) -> None:
    """A model that answers ``bias`` for any 2-feature record, and a 4-instance config serving it."""
    from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz

    model = LinearLearnerModel("regressor", np.zeros(2), np.array([bias]), loss="squared_loss")
    clients["s3"].put_object(Bucket=BUCKET, Key=f"guardrails/{name}/model.tar.gz", Body=write_model_tar_gz(model))
    sm = clients["sagemaker"]
    sm.create_model(ModelName=f"e2e-bg-{name}", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/guardrails/{name}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=f"e2e-bg-{name}", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": f"e2e-bg-{name}", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 4}])


def _fleets_answering(rt, endpoint: str, n: int) -> dict[str, int]:
    out = {"blue": 0, "green": 0}
    for _ in range(n):
        response = rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"1,1")
        assert response["InvokedProductionVariant"] == "AllTraffic"
        score = json.loads(response["Body"].read())["predictions"][0]["score"]
        out[{1.0: "blue", 2.0: "green"}[score]] += 1
    return out


def test_canary_deployment_rolled_back_by_an_alarm(emulator, clients, data):
    import threading

    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.exceptions import WaiterError

    sm, rt = clients["sagemaker"], clients["sagemaker-runtime"]
    kw = dict(endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    cloudwatch = boto3.client("cloudwatch", **kw)
    cloudwatch.put_metric_alarm(AlarmName="e2e-bg-5xx", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    _fleet(clients, "blue", 1.0)
    _fleet(clients, "green", 2.0)
    sm.create_endpoint(EndpointName="e2e-bg", EndpointConfigName="e2e-bg-blue")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-bg", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    deployment_config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 3600,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
            "TerminationWaitInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 7200,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "e2e-bg-5xx"}]},
    }

    hook = SageMakerHook(aws_conn_id=None)
    outcome: dict = {}

    def deploy() -> None:  # the provider's update, waiting through its endpoint_non_terminal_states
        try:
            outcome["response"] = hook.update_endpoint(
                {"EndpointName": "e2e-bg", "EndpointConfigName": "e2e-bg-green", "DeploymentConfig": deployment_config},
                wait_for_completion=True, check_interval=1, max_ingestion_time=60)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    admin(emulator, "config", {"time_scale": 0.01})  # the 3600 s canary bake lasts 36 s
    try:
        thread = threading.Thread(target=deploy)
        thread.start()
        deadline = time.monotonic() + 20
        while True:
            desc = sm.describe_endpoint(EndpointName="e2e-bg")
            pending = desc.get("PendingDeploymentSummary", {}).get("ProductionVariants", [{}])[0]
            if pending.get("VariantStatus", [{}])[0].get("Status") == "Baking":
                break
            assert time.monotonic() < deadline, desc
            time.sleep(0.05)
        assert desc["EndpointStatus"] == "Updating"
        assert desc["PendingDeploymentSummary"]["EndpointConfigName"] == "e2e-bg-green"
        assert pending["CurrentWeight"] == pytest.approx(0.1)
        assert shape_problems("DescribeEndpoint", desc) == []
        assert _fleets_answering(rt, "e2e-bg", 20) == {"blue": 18, "green": 2}
        with pytest.raises(WaiterError, match="Max attempts exceeded"):  # not a failure: still in progress
            sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-bg", WaiterConfig={"Delay": 1, "MaxAttempts": 1})

        cloudwatch.set_alarm_state(AlarmName="e2e-bg-5xx", StateValue="ALARM", StateReason="canary 5xx")
        thread.join(timeout=30)
        assert not thread.is_alive() and "error" not in outcome, outcome
    finally:
        admin(emulator, "config", {"time_scale": 0})
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-bg", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    desc = sm.describe_endpoint(EndpointName="e2e-bg")
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "e2e-bg-blue")
    assert "e2e-bg-5xx" in desc["FailureReason"] and "ALARM" in desc["FailureReason"]
    assert "PendingDeploymentSummary" not in desc
    assert desc["LastDeploymentConfig"] == deployment_config
    assert shape_problems("DescribeEndpoint", desc) == []
    assert _fleets_answering(rt, "e2e-bg", 20) == {"blue": 20, "green": 0}

    # The same rollback from the admin fault, with no timing at all (time scale 0).
    cloudwatch.set_alarm_state(AlarmName="e2e-bg-5xx", StateValue="OK", StateReason="recovered")
    admin(emulator, "faults", {"alarm_during_next_bake": "e2e-bg-5xx"})
    sm.update_endpoint(EndpointName="e2e-bg", EndpointConfigName="e2e-bg-green", DeploymentConfig=deployment_config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e2e-bg", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    desc = sm.describe_endpoint(EndpointName="e2e-bg")
    assert (desc["EndpointConfigName"], "e2e-bg-5xx" in desc["FailureReason"]) == ("e2e-bg-blue", True)

    # Validation errors parse as AWS's.
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName="e2e-bg", EndpointConfigName="e2e-bg-green", DeploymentConfig={
            "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "LINEAR", "WaitIntervalInSeconds": 60}}})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "LinearStepSize must be specified" in err.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName="e2e-bg")


# --- the Amazon provider -----------------------------------------------------------------------
def test_provider_training_operator_and_log_printing(emulator, data, caplog, capsys):
    from airflow.providers.amazon.aws.hooks.sagemaker import LogState, SageMakerHook
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

    train = SageMakerTrainingOperator(
        task_id="train",
        config=training_config("e2e-provider"),
        aws_conn_id=None,
        wait_for_completion=True,
        print_log=False,
        check_interval=0,
    )
    result = train.execute({})
    assert result["Training"]["TrainingJobStatus"] == "Completed"
    assert result["Training"]["ModelArtifacts"]["S3ModelArtifacts"].endswith("e2e-provider/output/model.tar.gz")

    hook = SageMakerHook(aws_conn_id=None)
    assert hook.list_training_jobs(name_contains="e2e-provider")[0]["TrainingJobName"] == "e2e-provider"
    description = hook.describe_training_job("e2e-provider")
    with caplog.at_level(logging.INFO):
        hook.describe_training_job_with_log(
            "e2e-provider", {}, [], 1, LogState.COMPLETE, description, time.monotonic()
        )
    printed = caplog.text + capsys.readouterr().out  # Airflow's structlog may print rather than propagate
    assert "Docker entrypoint called with argument(s): train" in printed
    assert "validation rmse" in printed

    train_bad = SageMakerTrainingOperator(
        task_id="train_bad",
        config=training_config("e2e-provider-bad", content_type="csv"),
        aws_conn_id=None,
        print_log=False,
        check_interval=0,
    )
    with pytest.raises(Exception, match="No iterator has been registered"):
        train_bad.execute({})


def test_provider_endpoint_operator_creates_then_updates(emulator, trained):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator

    artifact = trained["ModelArtifacts"]["S3ModelArtifacts"]

    def config(suffix: str) -> dict:
        return {
            "Model": {
                "ModelName": f"e2e-op-model-{suffix}",
                "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": artifact},
                "ExecutionRoleArn": ROLE,
            },
            "EndpointConfig": {
                "EndpointConfigName": f"e2e-op-config-{suffix}",
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": f"e2e-op-model-{suffix}",
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.large",
                    }
                ],
            },
            "Endpoint": {"EndpointName": "e2e-op-endpoint", "EndpointConfigName": f"e2e-op-config-{suffix}"},
        }

    for suffix in ("a", "b"):  # the second run hits "Cannot create already existing endpoint" -> update
        result = SageMakerEndpointOperator(
            task_id=f"deploy-{suffix}", config=config(suffix), aws_conn_id=None, check_interval=1
        ).execute({})
        assert result["Endpoint"]["EndpointStatus"] == "InService"
        assert result["Endpoint"]["EndpointConfigName"] == f"e2e-op-config-{suffix}"


# --- the AWS CLI -----------------------------------------------------------------------------
def _aws(emulator, tmp_path, *args: str) -> str:
    env = {
        **os.environ,
        **emulator.env(),
        "AWS_CONFIG_FILE": str(tmp_path / "none-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none-credentials"),
    }
    done = subprocess.run(
        [str(VENV_BIN / "aws"), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_aws_cli(emulator, clients, trained, tmp_path):
    local = tmp_path / "rows.csv"
    local.write_text("1,2,3\n")
    _aws(emulator, tmp_path, "s3", "cp", str(local), f"s3://{BUCKET}/cli/rows.csv")
    assert clients["s3"].get_object(Bucket=BUCKET, Key="cli/rows.csv")["Body"].read() == b"1,2,3\n"
    listed = json.loads(_aws(emulator, tmp_path, "sagemaker", "list-training-jobs", "--name-contains", "e2e-housing"))
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == ["e2e-housing"]
    described = json.loads(
        _aws(emulator, tmp_path, "sagemaker", "describe-training-job", "--training-job-name", "e2e-housing")
    )
    assert described["TrainingJobStatus"] == "Completed"
    assert any(m["MetricName"] == "validation:rmse" for m in described["FinalMetricDataList"])


# --- the command -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start ``python -m offline_aws`` and read its export lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "offline_aws", *args],
        env={**os.environ, "OFFLINE_AWS_TIME_SCALE": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    while not lines or not lines[-1].startswith("# offline AWS listening"):
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise AssertionError(process.stderr.read())
        lines.append(line.strip())
    return process, dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, process.stderr.read()


def _client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def test_command_prints_exports_and_stops_on_sigterm():
    port = _free_port()
    process, exports = _launch("--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
            assert exports[key] == url
        assert exports["AWS_DEFAULT_REGION"] == "us-east-1"
        assert _client("sts", url).get_caller_identity()["Account"] == "123456789012"
        assert _client("sagemaker", url).list_training_jobs()["TrainingJobSummaries"] == []
    finally:
        _stop(process)


def test_state_dir_keeps_resources_across_restarts(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    (ytr, Xtr), (yva, Xva), (_, X) = housing_split()
    row = ",".join(repr(float(v)) for v in X[0])
    process, _ = _launch("--port", str(port), "--state-dir", str(tmp_path / "state"))
    try:
        s3, sm, rt = _client("s3", url), _client("sagemaker", url), _client("sagemaker-runtime", url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="housing/train/part-0.csv", Body=to_csv(ytr, Xtr))
        s3.put_object(Bucket=BUCKET, Key="housing/validation/part-0.csv", Body=to_csv(yva, Xva))
        sm.create_training_job(**training_config("kept"))
        artifact = wait_training(sm, "kept")["ModelArtifacts"]["S3ModelArtifacts"]
        sm.create_model(ModelName="kept", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact})
        sm.create_endpoint_config(
            EndpointConfigName="kept",
            ProductionVariants=[{"VariantName": "v", "ModelName": "kept", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        )
        sm.create_endpoint(EndpointName="kept", EndpointConfigName="kept")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="kept", WaiterConfig={"Delay": 1})
        before = rt.invoke_endpoint(EndpointName="kept", ContentType="text/csv", Body=row)["Body"].read()
    finally:
        _stop(process)
    process, _ = _launch("--port", str(port), "--state-dir", str(tmp_path / "state"))
    try:
        sm, rt = _client("sagemaker", url), _client("sagemaker-runtime", url)
        assert sm.describe_training_job(TrainingJobName="kept")["TrainingJobStatus"] == "Completed"
        assert sm.describe_endpoint(EndpointName="kept")["EndpointStatus"] == "InService"
        assert rt.invoke_endpoint(EndpointName="kept", ContentType="text/csv", Body=row)["Body"].read() == before
    finally:
        _stop(process)


def test_admin_reset_forgets_sagemaker_state():
    emu = start_emulator(time_scale=0)
    try:
        sm = boto3.client("sagemaker", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        sm.create_model(ModelName="to-forget", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE)
        assert admin(emu, "calls") == {"CreateModel": 1}
        admin(emu, "reset", {"moto": False})
        assert admin(emu, "calls") == {}
        assert sm.list_models()["Models"] == []
        assert admin(emu, "config", {"time_scale": 0.5}) == {"time_scale": 0.5}
    finally:
        emu.stop()


def test_numpy_helpers_match_reference_split():
    (ytr, _), (yva, _), _ = housing_split()
    assert (len(ytr), len(yva)) == (455, 51)
    assert np.isfinite(ytr).all()
