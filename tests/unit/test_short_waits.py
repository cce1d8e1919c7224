"""The optional watch before deferring: off by default; runs the operator's own trigger, bounded in time."""

from __future__ import annotations

import asyncio
import logging

import pytest
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import BaseTrigger, TriggerEvent

from sagemaker_retrain.operators.short_waits import (
    SageMakerShortWaitTransformOperator,
    WatchShortJobsOnWorker,
)


class _Trigger(BaseTrigger):
    def __init__(self, delay: float, payload: dict | None = None, error: Exception | None = None):
        super().__init__()
        self.delay, self.payload, self.error, self.runs = delay, payload, error, 0

    def serialize(self):
        return ("tests._Trigger", {})

    async def run(self):
        self.runs += 1
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        yield TriggerEvent(self.payload)


class _Base:
    log = logging.getLogger("test")

    def __init__(self, trigger):
        self.trigger = trigger

    def execute(self, context):
        raise TaskDeferred(trigger=self.trigger, method_name="execute_complete", kwargs={"extra": 1})

    def execute_complete(self, context, event=None, extra=None):
        return {"event": event, "extra": extra}


class _Watcher(WatchShortJobsOnWorker, _Base):
    def __init__(self, trigger, short_wait_seconds=0):
        super().__init__(trigger)
        self.short_wait_seconds = short_wait_seconds


def test_off_by_default_it_defers_at_once():
    trigger = _Trigger(0, {"status": "success"})
    with pytest.raises(TaskDeferred):
        _Watcher(trigger=trigger).execute({})
    assert trigger.runs == 0


def test_an_event_within_the_budget_resumes_here_with_the_triggers_own_event():
    trigger = _Trigger(0.01, {"status": "success", "job_name": "job"})
    result = _Watcher(trigger=trigger, short_wait_seconds=2).execute({})
    assert result == {"event": {"status": "success", "job_name": "job"}, "extra": 1}


def test_a_wait_longer_than_the_budget_defers():
    with pytest.raises(TaskDeferred):
        _Watcher(trigger=_Trigger(5, {"status": "success"}), short_wait_seconds=0.05).execute({})


def test_an_error_in_the_trigger_defers_instead_of_failing_the_task():
    with pytest.raises(TaskDeferred):
        _Watcher(trigger=_Trigger(0, error=RuntimeError("throttled")), short_wait_seconds=1).execute({})


def test_the_transform_operator_takes_it_as_an_argument_off_by_default():
    config = {"TransformJobName": "j", "ModelName": "m"}
    assert SageMakerShortWaitTransformOperator(task_id="t", config=config).short_wait_seconds == 0
    assert SageMakerShortWaitTransformOperator(task_id="t", config=config,
                                               short_wait_seconds=5).short_wait_seconds == 5


@pytest.mark.parametrize(("reason", "final"), [
    ("ClientError: Could not parse the input (the model answered 400)", True),
    ("InternalServerError: We encountered an internal error. Please try again.", False),
])
def test_a_transform_failing_on_the_model_or_input_is_final_a_transient_one_is_retried(reason, final):
    from airflow.sdk.exceptions import AirflowFailException

    op = SageMakerShortWaitTransformOperator(task_id="score", config={"TransformJobName": "j"})
    event = {"status": "failed", "job_name": "j", "message": reason}
    with pytest.raises(Exception) as raised:
        op.execute_complete({}, event=event)
    assert isinstance(raised.value, AirflowFailException) is final, raised.value
    assert reason in str(raised.value)


def test_a_transform_already_failed_at_its_first_check_on_the_model_or_input_is_final(monkeypatch):
    """At time scale 0 the job may be Failed when the provider first describes it: the same rule applies."""
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    def fails(self, context):
        raise AirflowException("SageMaker job failed because ClientError: bad input (injected)")

    monkeypatch.setattr(SageMakerTransformOperator, "execute", fails)
    op = SageMakerShortWaitTransformOperator(task_id="score", config={"TransformJobName": "j"})
    with pytest.raises(AirflowFailException, match="a retry cannot fix.*ClientError: bad input"):
        op.execute({})
