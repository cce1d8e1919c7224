"""The watch before deferring: what it does when the job cannot be checked, or is of a kind it does not know."""

from __future__ import annotations

import logging

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from botocore.exceptions import ClientError

from sagemaker_retrain.operators.short_waits import WatchShortJobsOnWorker


class _Hook:
    def __init__(self, responses):
        self.responses, self.calls = list(responses), 0

    def describe_transform_job(self, name):
        self.calls += 1
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


class _Watcher(WatchShortJobsOnWorker):
    check_interval = 0.01
    log = logging.getLogger("test")

    def __init__(self, responses):
        self.hook = _Hook(responses)


def _trigger(job_type="Transform"):
    return SageMakerTrigger(job_name="job", job_type=job_type, waiter_delay=1, waiter_max_attempts=3,
                            aws_conn_id=None)


def test_a_throttled_check_defers_instead_of_failing_the_task():
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                            "DescribeTransformJob")
    watcher = _Watcher([{"TransformJobStatus": "InProgress"}, throttled])
    assert watcher._watch(_trigger()) is None  # None: the task defers, and the trigger retries throttling
    assert watcher.hook.calls == 2


def test_a_job_that_ends_while_watched_gives_the_triggers_success_event():
    watcher = _Watcher([{"TransformJobStatus": "InProgress"}, {"TransformJobStatus": "Completed"}])
    assert watcher._watch(_trigger()) == {"status": "success", "job_name": "job"}


def test_a_kind_of_job_it_does_not_watch_defers_at_once():
    watcher = _Watcher([])
    assert watcher._watch(_trigger("Processing")) is None
    assert watcher.hook.calls == 0
