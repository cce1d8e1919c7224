"""Watch a SageMaker job on the worker for a few seconds before handing its wait to the triggerer.

A deferral has a fixed cost: the task process exits, the triggerer loads the trigger and polls,
and when the job ends the scheduler queues the task again and a new worker process parses the
DAG file and resumes it: about 4-5 s on a Celery deployment (docs/benchmarks.md), more than a
job that ends in a second takes. Which jobs are short is not known in advance, so this watches
for at most about what a deferral costs (``wait_on_worker_seconds``) and defers after that: as in
the ski-rental problem, a job that ends soon ends here, and a long one (every job on AWS, where
provisioning alone takes minutes) costs only those few seconds more than deferring at once.
The event handed to the resume method is the one the provider's ``SageMakerTrigger`` would have
sent, so the task ends the same way on either path.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.sdk.exceptions import TaskDeferred

WAIT_ON_WORKER_SECONDS = 5.0
MAX_POLL_SECONDS = 1.0

# SageMakerTrigger's job_type -> (hook method, status key)
_DESCRIBE = {
    "training": ("describe_training_job", "TrainingJobStatus"),
    "transform": ("describe_transform_job", "TransformJobStatus"),
}


class WatchShortJobsOnWorker:
    """Mixin for SageMaker operators: run ``start``; if it defers on a job, watch the job here first.

    ``wait_on_worker_seconds`` (0 = defer at once) bounds the watch; it polls every
    ``check_interval`` seconds, at most every ``MAX_POLL_SECONDS``.
    """

    wait_on_worker_seconds: float = WAIT_ON_WORKER_SECONDS

    def execute(self, context) -> Any:
        try:
            return self.start(context)
        except TaskDeferred as deferral:
            event = self._watch(deferral.trigger)
            if event is None:
                raise
            self.log.info("%s job %s ended (%s) within %.0f s: resuming here instead of deferring.",
                          deferral.trigger.job_type, event["job_name"], event["status"], self.wait_on_worker_seconds)
            return getattr(self, deferral.method_name)(context, event=event, **(deferral.kwargs or {}))

    def start(self, context) -> Any:
        """The operator's own execute (which may defer)."""
        return super().execute(context)

    def _watch(self, trigger) -> dict | None:
        """The trigger's event if the job ends within the budget, else None (then the task defers).

        An error while checking (throttling, the network) also defers: the trigger retries such
        errors, and failing here would cost a retry (and, for a transform, a second job).
        """
        if not isinstance(trigger, SageMakerTrigger) or self.wait_on_worker_seconds <= 0:
            return None
        describe_name, status_key = _DESCRIBE.get(trigger.job_type.lower(), (None, None))
        if describe_name is None:
            return None
        describe = getattr(self.hook, describe_name)
        interval = min(max(float(self.check_interval), 0.05), MAX_POLL_SECONDS)
        deadline = time.monotonic() + self.wait_on_worker_seconds
        while time.monotonic() + interval <= deadline:
            time.sleep(interval)  # first: the operator has just described the job and seen it running
            try:
                status = (description := describe(trigger.job_name))[status_key]
            except Exception as err:  # noqa: BLE001 - throttled, network: the trigger retries such errors
                self.log.info("Could not check %s job %s on the worker (%s); deferring.",
                              trigger.job_type, trigger.job_name, err)
                return None
            if status == "Completed":
                return {"status": "success", "job_name": trigger.job_name}
            if status == "Failed":
                return {"status": "failed", "job_name": trigger.job_name,
                        "message": description.get("FailureReason") or f"{trigger.job_type} job failed"}
            if status == "Stopped":
                return {"status": "stopped", "job_name": trigger.job_name,
                        "message": f"{trigger.job_type} job {trigger.job_name} was stopped"}
        return None


class SageMakerShortWaitTransformOperator(WatchShortJobsOnWorker, SageMakerTransformOperator):
    """The provider's ``SageMakerTransformOperator``; a deferrable one watches a short job on the worker first."""
