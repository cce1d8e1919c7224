"""The custom trigger and sensor: every endpoint status (stubbed), then for real against the emulator."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import boto3
import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
from offline_aws.server import start_emulator
from sagemaker_retrain.sensors.endpoint import EndpointDeployedSensor
from sagemaker_retrain.smoke import SmokeTestError, check_predictions
from sagemaker_retrain.triggers.endpoint import EndpointDeployedTrigger, classify

WANTED = "cfg-new"


def _describe(status, config=WANTED, reason=None):
    out = {"EndpointName": "ep", "EndpointStatus": status, "EndpointConfigName": config}
    if reason:
        out["FailureReason"] = reason
    return out


@pytest.mark.parametrize(
    ("description", "verdict", "words"),
    [
        (_describe("InService"), "success", "InService on cfg-new"),
        (_describe("InService", "cfg-old", "ModelError: bad artifact"), "failure", "rolled back: ModelError"),
        (_describe("InService", "cfg-old"), "failure", "not on cfg-new"),
        (_describe("Failed", reason="capacity"), "failure", "Failed: capacity"),
        (_describe("OutOfService"), "failure", "OutOfService"),
        (_describe("Deleting"), "failure", "Deleting"),
        (_describe("UpdateRollbackFailed"), "failure", "UpdateRollbackFailed"),
        (_describe("Creating"), "wait", "Creating"),
        (_describe("Updating", "cfg-old"), "wait", "Updating"),
        (_describe("SystemUpdating"), "wait", "SystemUpdating"),
        (_describe("RollingBack"), "wait", "RollingBack"),
    ],
)
def test_classify_every_status(description, verdict, words):
    got, message = classify(description, WANTED)
    assert got == verdict
    assert words in message


class _StubTrigger(EndpointDeployedTrigger):
    """The real run() loop, fed a scripted sequence of DescribeEndpoint answers."""

    answers: list

    def _hook(self):
        trigger = self

        class Client:
            async def describe_endpoint(self, EndpointName):
                answer = trigger.answers.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer

        class Hook:
            async def get_async_conn(self):
                @asynccontextmanager
                async def conn():
                    yield Client()

                return conn()

        return Hook()


def _run(trigger):
    """The trigger's first event, from a fresh event loop in its own thread (as on a triggerer).

    A thread keeps this independent of any loop the test process already runs (Playwright's
    sync API, used by the browser tests in the same session, keeps one on the main thread).
    """

    async def first_event():
        async for event in trigger.run():
            return event.payload

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, first_event()).result()


def _stub(answers, max_attempts=10):
    trigger = _StubTrigger("ep", WANTED, poll_interval=0, max_attempts=max_attempts)
    trigger.answers = list(answers)
    return trigger


def test_trigger_waits_through_updating_then_succeeds():
    event = _run(_stub([_describe("Creating"), _describe("Updating"), _describe("InService")]))
    assert event["status"] == "success"


def test_trigger_fails_at_once_on_rollback_with_reason():
    trigger = _stub([_describe("Updating", "cfg-old"), _describe("InService", "cfg-old", "health check failed")])
    event = _run(trigger)
    assert event["status"] == "failure"
    assert "health check failed" in event["message"]


def test_trigger_retries_throttling_and_times_out():
    from botocore.exceptions import ClientError

    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeEndpoint")
    assert _run(_stub([throttled, _describe("InService")]))["status"] == "success"
    assert _run(_stub([_describe("Creating")] * 3, max_attempts=3))["status"] == "timeout"


def test_trigger_reports_missing_endpoint():
    from botocore.exceptions import ClientError

    missing = ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find endpoint"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeEndpoint")
    event = _run(_stub([missing]))
    assert event["status"] == "failure" and "Could not find endpoint" in event["message"]


def test_trigger_serialises_round_trip():
    trigger = EndpointDeployedTrigger("ep", WANTED, poll_interval=2, max_attempts=7, aws_conn_id=None,
                                      region_name="eu-west-1")
    path, kwargs = trigger.serialize()
    assert path == "sagemaker_retrain.triggers.endpoint.EndpointDeployedTrigger"
    assert EndpointDeployedTrigger(**kwargs).serialize() == (path, kwargs)


def test_smoke_check_refuses_garbage():
    assert check_predictions([{"score": 1.5}, {"score": 2.0}], 2) == [1.5, 2.0]
    with pytest.raises(SmokeTestError, match="Sent 3 rows, got 2"):
        check_predictions([{"score": 1.5}, {"score": 2.0}], 3)
    with pytest.raises(SmokeTestError, match="no finite score"):
        check_predictions([{"score": float("nan")}], 1)
    with pytest.raises(SmokeTestError, match="no finite score"):
        check_predictions([{"label": 1}], 1)



@pytest.mark.parametrize(("predictor_type", "passes"), [("binary_classifier", True), (None, False)])
def test_smoke_reads_a_classifiers_probabilities_as_its_predictor_type(monkeypatch, predictor_type, passes):
    """A script-mode classifier answers both classes' probabilities: one row is two numbers, not a regressor's one."""
    import io

    from airflow.sdk.exceptions import AirflowFailException

    from sagemaker_retrain.sensors import endpoint

    class Hook:
        def __init__(self, **kwargs):
            self.conn = self

        def invoke_endpoint(self, **kwargs):
            return {"Body": io.BytesIO(b"[[0.2, 0.8], [0.9, 0.1]]")}

    monkeypatch.setattr(endpoint, "AwsBaseHook", Hook)
    sensor = EndpointDeployedSensor(task_id="w", endpoint_name="ep", endpoint_config_name=WANTED,
                                    smoke_rows=[[1.0], [2.0]], algorithm="sklearn", predictor_type=predictor_type)
    if passes:
        assert sensor._smoke()["smoke_scores"] == [0.8, 0.1]
    else:
        with pytest.raises(AirflowFailException, match="Prediction 0 of a regressor has 2 values"):
            sensor._smoke()


# --- against the emulator -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aws(monkeypatch_module):
    emulator = start_emulator(time_scale=0)
    for key, value in emulator.env().items():
        monkeypatch_module.setenv(key, value)
    kwargs = {"endpoint_url": emulator.url, "region_name": "us-east-1"}
    s3, sm = boto3.client("s3", **kwargs), boto3.client("sagemaker", **kwargs)
    s3.create_bucket(Bucket="models")
    weights = np.arange(1, 4, dtype=float).reshape(3, 1)
    model = LinearLearnerModel("regressor", weights, np.array([0.5]), loss="squared_loss")
    s3.put_object(Bucket="models", Key="m/model.tar.gz", Body=write_model_tar_gz(model))
    image = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
    for name in ("m1", "m2"):
        sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/R",
                        PrimaryContainer={"Image": image, "ModelDataUrl": "s3://models/m/model.tar.gz"})
        sm.create_endpoint_config(EndpointConfigName=f"c-{name}", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large"}])
    yield emulator, sm
    emulator.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _wait_stable(sm, name):
    for _ in range(200):
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status in ("InService", "Failed"):
            return
        time.sleep(0.05)


def test_trigger_and_sensor_against_emulator(aws):
    emulator, sm = aws
    sm.create_endpoint(EndpointName="live", EndpointConfigName="c-m1")
    event = _run(EndpointDeployedTrigger("live", "c-m1", poll_interval=0.05, max_attempts=200, aws_conn_id=None))
    assert event["status"] == "success", event
    sensor = EndpointDeployedSensor(task_id="s", endpoint_name="live", endpoint_config_name="c-m1",
                                    smoke_rows=[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], aws_conn_id=None,
                                    poll_interval=0.05, deferrable=True)
    result = sensor.execute(context={})
    assert result["smoke_scores"] == pytest.approx([6.5, 0.5])


def test_rolled_back_update_fails_trigger_and_sensor_with_reason(aws):
    emulator, sm = aws
    _wait_stable(sm, "live")
    emulator.faults.configure({"fail_next_endpoint_update": "Injected: the new container failed its health check"})
    sm.update_endpoint(EndpointName="live", EndpointConfigName="c-m2")
    event = _run(EndpointDeployedTrigger("live", "c-m2", poll_interval=0.05, max_attempts=400, aws_conn_id=None))
    assert event["status"] == "failure"
    assert "failed its health check" in event["message"]
    assert sm.describe_endpoint(EndpointName="live")["EndpointConfigName"] == "c-m1"
    sensor = EndpointDeployedSensor(task_id="s", endpoint_name="live", endpoint_config_name="c-m2",
                                    aws_conn_id=None, poll_interval=0.05, deferrable=True)
    with pytest.raises(AirflowException, match="rolled back"):
        sensor.execute(context={})


def test_sensor_defers_while_updating(aws):
    emulator, sm = aws
    _wait_stable(sm, "live")
    emulator.clock.time_scale = 1.0
    try:
        sm.update_endpoint(EndpointName="live", EndpointConfigName="c-m2")
        sensor = EndpointDeployedSensor(task_id="s", endpoint_name="live", endpoint_config_name="c-m2",
                                        aws_conn_id=None, poll_interval=0.05, deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context={})
        assert isinstance(deferred.value.trigger, EndpointDeployedTrigger)
        assert deferred.value.method_name == "execute_complete"
    finally:
        emulator.clock.time_scale = 0.0
    _wait_stable(sm, "live")
    with pytest.raises(AirflowException, match="boom"):
        sensor.execute_complete(context={}, event={"status": "failure", "message": "boom"})


def test_sensor_wait_has_one_total_cap_across_retries(aws):
    """The deadline comes from the deploy step: a retry waits only for what is left, and none after it."""
    from datetime import UTC, datetime, timedelta

    emulator, sm = aws
    _wait_stable(sm, "live")
    emulator.clock.time_scale = 1.0
    try:
        sm.update_endpoint(EndpointName="live", EndpointConfigName="c-m1")
        left = datetime.now(UTC) + timedelta(seconds=120)
        sensor = EndpointDeployedSensor(task_id="s", endpoint_name="live", endpoint_config_name="c-m1",
                                        deadline=left.isoformat(), aws_conn_id=None, poll_interval=0.5,
                                        deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context={})
        assert 110 <= deferred.value.timeout.total_seconds() <= 120
        assert deferred.value.trigger.max_attempts <= 240
        passed = EndpointDeployedSensor(task_id="s", endpoint_name="live", endpoint_config_name="c-m1",
                                        deadline=(datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
                                        aws_conn_id=None, poll_interval=0.5)
        with pytest.raises(AirflowException, match="time limit passed"):
            passed.execute(context={})
    finally:
        emulator.clock.time_scale = 0.0
    _wait_stable(sm, "live")


def test_sensor_is_a_provider_style_aws_sensor():
    """AwsBaseSensor[SageMakerHook]: the connection fields are the base's, templated with the sensor's own."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor

    sensor = EndpointDeployedSensor(task_id="s", endpoint_name="e", endpoint_config_name="c", aws_conn_id=None,
                                    region_name="eu-west-1", verify=False, botocore_config={"retries": {"mode": "standard"}})
    assert isinstance(sensor, AwsBaseSensor) and isinstance(sensor.hook, SageMakerHook)
    assert {"aws_conn_id", "region_name", "verify", "endpoint_name", "endpoint_config_name", "smoke_rows",
            "deadline"} <= set(sensor.template_fields)
    assert (sensor.hook.region_name, sensor.hook.verify) == ("eu-west-1", False)


def test_deferrable_defaults_to_the_operators_setting(monkeypatch):
    import importlib

    import sagemaker_retrain.sensors.endpoint as module

    try:
        for value, expected in (("true", True), ("false", False)):
            monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", value)
            reloaded = importlib.reload(module)
            sensor = reloaded.EndpointDeployedSensor(task_id="s", endpoint_name="e", endpoint_config_name="c")
            assert sensor.deferrable is expected
    finally:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
        importlib.reload(module)


def test_trigger_keeps_its_keywords_and_passes_the_connection_fields():
    trigger = EndpointDeployedTrigger(endpoint_name="e", endpoint_config_name="c", poll_interval=1, max_attempts=2,
                                      aws_conn_id=None, region_name="eu-west-1", verify=False,
                                      botocore_config={"read_timeout": 5})
    path, kwargs = trigger.serialize()
    assert EndpointDeployedTrigger(**kwargs).serialize() == (path, kwargs)
    hook = trigger._hook()
    assert (hook.region_name, hook.verify, hook.config.read_timeout) == ("eu-west-1", False, 5)


def test_trigger_stops_at_the_deadline_and_fails_at_once_past_it():
    """A wait started on the triggerer has no worker step before it: the trigger keeps the deadline itself."""
    from datetime import UTC, datetime, timedelta

    past = _stub([_describe("Creating")])
    past.deadline = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    event = _run(past)
    assert event["status"] == "failure" and "time limit passed" in event["message"]
    assert past.answers == [_describe("Creating")]  # refused before any poll

    later = _stub([], max_attempts=50)
    later.poll_interval = 30
    later.deadline = (datetime.now(UTC) + timedelta(hours=8)).isoformat()
    # The polls that fit before the deadline, however many: the deployment's own limit, not max_attempts.
    assert later._attempts() == 960
    for no_deadline in ("", "None", None):  # how a triggerer's lenient rendering gives a missing value
        later.deadline = no_deadline
        assert later._attempts() == 50

    bad = _stub([_describe("Creating")])
    bad.deadline = "tomorrow"
    event = _run(bad)
    assert event["status"] == "failure" and "'tomorrow' is not an ISO 8601 time" in event["message"]

    soon = _stub([_describe("Creating")] * 20, max_attempts=100)
    soon.poll_interval = 0.25
    soon.deadline = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    event = _run(soon)
    assert event["status"] == "timeout" and 16 <= len(soon.answers) <= 19  # 1 to 4 polls of the 20 answers


def test_sensor_started_from_the_trigger_hands_its_inputs_as_templates_the_triggerer_renders():
    """start_from_trigger: the scheduler makes the trigger from these kwargs (no worker execution first), and
    the triggerer renders them; a plain XComArg becomes the xcom_pull that reads it."""
    import pendulum
    from airflow.sdk import DAG, task
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("sft", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        @task
        def plan() -> dict:
            return {}

        planned = plan()
        sensor = EndpointDeployedSensor(task_id="wait", endpoint_name=planned["endpoint_name"],
                                        endpoint_config_name="{{ params.cfg }}", deadline="2026-01-01T00:00:00+00:00",
                                        region_name=planned["region"], poll_interval=10, timeout=600,
                                        aws_conn_id=None, deferrable=True, start_from_trigger=True)
        not_deferred = EndpointDeployedSensor(task_id="blocking", endpoint_name="e", endpoint_config_name="c",
                                              deferrable=False, start_from_trigger=True)
    assert not_deferred.start_from_trigger is False and not_deferred.start_trigger_args is None
    args = sensor.start_trigger_args
    assert sensor.start_from_trigger and args.next_method == "execute_complete"
    assert args.timeout is None  # the trigger keeps the deadline itself; Airflow's backstop is execution_timeout
    assert args.trigger_cls == "sagemaker_retrain.triggers.endpoint.EndpointDeployedTrigger"
    kwargs = args.trigger_kwargs
    assert kwargs["endpoint_name"] == "{{ ti.xcom_pull(task_ids='plan', key='endpoint_name', map_indexes=-1) }}"
    assert kwargs["region_name"] == "{{ ti.xcom_pull(task_ids='plan', key='region', map_indexes=-1) }}"
    assert (kwargs["endpoint_config_name"], kwargs["deadline"]) == ("{{ params.cfg }}", "2026-01-01T00:00:00+00:00")
    assert kwargs["max_attempts"] == 60
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in kwargs.values()), kwargs  # no XComArg
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("wait")
    assert served.start_from_trigger and served.start_trigger_args.next_method == "execute_complete"

    # What the triggerer does with them (triggerer_job_runner.create_triggers and run_trigger): build the trigger
    # from the kwargs, give it the task instance of the served task (which picks the fields to render), render.
    class RuntimeTI:
        task, task_id = served, "wait"

        @staticmethod
        def xcom_pull(task_ids, key="return_value", map_indexes=None):
            assert map_indexes == -1  # a pull of every map index would hang the triggerer (docs/upstream.md §9)
            return {("plan", "endpoint_name"): "ep-live", ("plan", "region"): "eu-west-1"}[(task_ids, key)]

    trigger = EndpointDeployedTrigger(**kwargs)
    trigger.task_instance = RuntimeTI()
    assert {"endpoint_name", "endpoint_config_name", "deadline", "region_name"} <= set(trigger.template_fields)
    trigger.render_template_fields(context={"ti": RuntimeTI(), "params": {"cfg": "cfg-7"}})
    assert (trigger.endpoint_name, trigger.endpoint_config_name, trigger.region_name) == ("ep-live", "cfg-7",
                                                                                         "eu-west-1")
    with pytest.raises(ValueError, match="botocore_config"):
        EndpointDeployedSensor(task_id="x", endpoint_name="e", endpoint_config_name="c", deferrable=True,
                               start_from_trigger=True, botocore_config=planned["config"], dag=dag)

