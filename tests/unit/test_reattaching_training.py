"""A retry of the train task re-attaches to the job its first try started: one job, one bill."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from offline_aws.server import start_emulator
from sagemaker_retrain import algorithms
from sagemaker_retrain.config import build_training_config, tags
from sagemaker_retrain.images import linear_learner_image
from sagemaker_retrain.operators.training import SageMakerReattachingTrainingOperator

PARAMS = {"predictor_type": "regressor", "mini_batch_size": 30, "epochs": 5, "training_instance_type": "ml.m5.large",
          "training_instance_count": 1, "max_runtime_seconds": 7200}


@pytest.fixture(scope="module")
def aws():
    emulator = start_emulator(time_scale=0)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator.env().items():
            patch.setenv(key, value)
        s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(200, 3))
        y = x @ np.array([1.0, -2.0, 0.5]) + 3
        body = io.StringIO()
        np.savetxt(body, np.column_stack([y, x]), delimiter=",")
        for channel in ("train", "validation", "test"):
            s3.put_object(Bucket="data", Key=f"in/{channel}/part-00000.csv", Body=body.getvalue().encode())
        yield emulator, boto3.client("sagemaker", endpoint_url=emulator.url, region_name="us-east-1")
    emulator.stop()


def _config(name: str) -> dict:
    return build_training_config(
        algorithm=algorithms.get("linear-learner"), job_name=name, image=linear_learner_image("us-east-1"), role_arn="arn:aws:iam::123456789012:role/R",
        channel_uris={c: f"s3://data/in/{c}/" for c in ("train", "validation", "test")},
        output_uri="s3://data/out", params=PARAMS, feature_dim=3, resource_tags=tags("ep", "run-1"),
    )


def _operator(name: str, deferrable: bool = False, **kwargs) -> SageMakerReattachingTrainingOperator:
    return SageMakerReattachingTrainingOperator(
        task_id="train", config=_config(name), aws_conn_id=None, deferrable=deferrable, check_interval=1, **kwargs)


def _ctx(run_id: str = "run-1", started: datetime | None = None) -> dict:
    """The slice of the task context the operator reads: this run's id and start time."""
    return {"dag_run": SimpleNamespace(run_id=run_id, start_date=started or datetime.now(UTC) - timedelta(hours=1))}


def _jobs(sm, name):
    return [j for j in sm.list_training_jobs()["TrainingJobSummaries"] if j["TrainingJobName"].startswith(name)]


def test_retry_reattaches_to_running_job_instead_of_starting_another(aws):
    emulator, sm = aws
    emulator.clock.time_scale = 1.0  # keep the first job InProgress for a while
    try:
        sm.create_training_job(**_config("job-a"))  # what the first try did before its worker died
        operator = _operator("job-a", deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context=_ctx())
        assert deferred.value.trigger.serialize()[1]["job_name"] == "job-a"
        assert operator.max_attempts * operator.check_interval >= 7200  # sized to the job's own limit
    finally:
        emulator.clock.time_scale = 0.0
    assert len(_jobs(sm, "job-a")) == 1


def test_retry_after_completion_returns_the_job_without_a_second_one(aws):
    emulator, sm = aws
    first = SageMakerReattachingTrainingOperator(
        task_id="train", config=_config("job-b"), aws_conn_id=None, check_interval=1, print_log=False,
    ).execute(context=_ctx())
    assert first["Training"]["TrainingJobStatus"] == "Completed"
    again = _operator("job-b").execute(context=_ctx())
    assert again["Training"]["TrainingJobArn"] == first["Training"]["TrainingJobArn"]
    assert len(_jobs(sm, "job-b")) == 1


def test_retry_after_failure_fails_with_the_reason_and_starts_nothing(aws):
    emulator, sm = aws
    emulator.faults.configure({"fail_next_training_job": "InternalServerError: injected"})
    with pytest.raises(AirflowException):
        _operator("job-c").execute(context=_ctx())
    with pytest.raises(AirflowException, match="Not starting a second job"):
        _operator("job-c").execute(context=_ctx())
    assert len(_jobs(sm, "job-c")) == 1


def test_a_job_of_another_run_is_not_reattached(aws):
    emulator, sm = aws
    sm.create_training_job(**_config("job-foreign"))  # tagged run-1
    with pytest.raises(AirflowException, match="does not carry this run's tag"):
        _operator("job-foreign").execute(context=_ctx(run_id="run-2"))
    assert len(_jobs(sm, "job-foreign")) == 1


def test_a_job_older_than_the_run_is_not_reattached(aws):
    """A reset database reproduces run ids, not start times: an older job of that id is not this run's."""
    emulator, sm = aws
    sm.create_training_job(**_config("job-older"))
    with pytest.raises(AirflowException, match="before this run started"):
        _operator("job-older").execute(context=_ctx(started=datetime.now(UTC) + timedelta(hours=1)))


def test_a_job_that_ends_within_seconds_is_watched_to_its_end_on_the_worker(aws):
    """Deferrable, yet no round trip through the triggerer for a job that ends while watched."""
    emulator, sm = aws
    emulator.clock.time_scale = 0.05  # InProgress when created, Completed about a quarter second later
    try:
        result = SageMakerReattachingTrainingOperator(
            task_id="train", config=_config("job-short"), aws_conn_id=None, deferrable=True, check_interval=0.1,
            print_log=False, short_wait_seconds=5).execute(context=_ctx())  # a deferral would raise TaskDeferred
    finally:
        emulator.clock.time_scale = 0.0
    assert result["Training"]["TrainingJobStatus"] == "Completed"
    assert len(_jobs(sm, "job-short")) == 1


def test_a_job_that_fails_while_watched_fails_the_task_with_its_reason(aws):
    emulator, sm = aws
    emulator.faults.configure({"fail_next_training_job": "InternalServerError: failed while watched"})
    emulator.clock.time_scale = 0.05
    try:
        # execute_complete's message ("job X ended"), not _attach's ("job X of this run ended"): the watch saw it
        with pytest.raises(AirflowException, match="job-watched-fail ended Failed: InternalServerError: failed while"):
            _operator("job-watched-fail", deferrable=True, short_wait_seconds=5).execute(context=_ctx())
    finally:
        emulator.clock.time_scale = 0.0


def test_a_request_beyond_the_admins_limits_is_refused_before_any_call(monkeypatch):
    """The config comes through an XCom a User may edit after prepare: train checks what it sends."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_LIMITS", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_ALLOWED_INSTANCE_TYPES", raising=False)
    for path, value in ((("ResourceConfig", "InstanceType"), "ml.p5.48xlarge"),
                        (("ResourceConfig", "InstanceCount"), 50),
                        (("StoppingCondition", "MaxRuntimeInSeconds"), 5 * 86400)):
        operator = _operator("job-over-limit")
        operator.config[path[0]][path[1]] = value
        monkeypatch.setattr(type(operator), "hook", property(lambda self: pytest.fail("an AWS call was made")))
        with pytest.raises(AirflowFailException, match=f"{path[0]}.{path[1]}={value!r}"):
            operator.execute(_ctx())
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_ALLOWED_INSTANCE_TYPES", '["ml.c5.xlarge"]')
    with pytest.raises(AirflowFailException, match="ml.m5"):
        _operator("job-narrowed").execute(_ctx())
