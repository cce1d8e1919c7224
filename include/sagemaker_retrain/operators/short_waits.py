"""Optionally watch a SageMaker job on the worker for a few seconds before handing its wait to the triggerer.

A deferral has a fixed cost: the task process exits, the triggerer loads the trigger and polls,
and when the job ends the scheduler queues the task again and a new worker process parses the
DAG file and resumes it: about 4-5 s on a Celery deployment (docs/benchmarks.md), more than a
job that ends in a second takes (the offline emulator at time scale 0). On AWS a job never ends
within seconds (provisioning alone takes minutes), so the watch would only hold a worker slot:
it is **off by default** (``short_wait_seconds=0``) and a deployment turns it on explicitly.

With ``short_wait_seconds > 0``, when the operator defers, the trigger it deferred to is run
right here, through its public ``run()``, for at most that many seconds: if it fires, its event
goes to the method the task would have resumed in (the task ends exactly as after a deferral,
because it is the same trigger's same event); if it has not fired by then, or fails, the task
defers as it would have (the triggerer runs the trigger from the start). This is what
``airflow dags test`` does with every trigger, bounded in time; no private method is mirrored.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

# SageMaker's FailureReason prefix for an error of the request, the model or the input (its docs: "ClientError"
# is the customer's, "InternalServerError" SageMaker's): running the same job again fails the same way.
DETERMINISTIC_FAILURES = ("ClientError",)


class WatchShortJobsOnWorker:
    """
    Mixin for deferrable operators: run ``start``; if it defers, run its trigger here for a few seconds first.

    Each operator using it takes ``short_wait_seconds`` as a constructor argument (an operator's
    ``__init__`` must be its own class's for Airflow's argument handling, so the mixin has none).

    :param short_wait_seconds: seconds to run the trigger on the worker before deferring; 0 (the
        default) defers at once, as the operator without this mixin does.
    """

    short_wait_seconds: float = 0

    def execute(self, context) -> Any:
        try:
            return self.start(context)
        except TaskDeferred as deferral:
            event = self.watch_on_worker(deferral.trigger)
            if event is None:
                raise
            self.log.info("The wait ended within %.0f s (%s): resuming here instead of deferring.",
                          self.short_wait_seconds, event.payload.get("status"))
            return getattr(self, deferral.method_name)(context, event=event.payload, **(deferral.kwargs or {}))

    def start(self, context) -> Any:
        """The operator's own execute (which may defer)."""
        return super().execute(context)

    def watch_on_worker(self, trigger):
        """The trigger's first event if it fires within ``short_wait_seconds``, else None (then the task defers).

        An error while running it (throttling, the network) also defers: the triggerer runs the
        trigger again, and failing here would cost a retry (and, for a transform, a second job).
        """
        if self.short_wait_seconds <= 0:
            return None

        async def first_event():
            async for event in trigger.run():
                return event
            return None

        try:
            # In a thread of its own: asyncio.run refuses a thread whose event loop is running (a caller's own).
            with ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(asyncio.run, asyncio.wait_for(first_event(), timeout=self.short_wait_seconds)
                                   ).result()
        except TimeoutError:
            return None
        except Exception as err:  # noqa: BLE001 - the triggerer runs the same trigger again
            self.log.info("Could not watch the wait on the worker (%s); deferring.", err)
            return None


class SageMakerShortWaitTransformOperator(WatchShortJobsOnWorker, SageMakerTransformOperator):
    """
    The provider's ``SageMakerTransformOperator``, with an optional watch on the worker before deferring.

    Takes every parameter of :class:`~airflow.providers.amazon.aws.operators.sagemaker.SageMakerTransformOperator`.
    A job that fails with a ``ClientError`` (the model or the input) fails the task at once: retries
    are for transient failures only.

    :param short_wait_seconds: seconds to watch the job on the worker before deferring (0, the
        default: defer at once). See :mod:`sagemaker_retrain.operators.short_waits`.
    """

    def __init__(self, *, short_wait_seconds: float = 0, **kwargs):
        super().__init__(**kwargs)
        self.short_wait_seconds = float(short_wait_seconds or 0)

    @staticmethod
    def _final(job: str | None, reason: str) -> AirflowFailException:
        return AirflowFailException(
            f"Transform job {job} failed for a reason a retry cannot fix (not retried, no further billed job): "
            f"{reason}")

    def start(self, context) -> Any:
        """As the provider's; a job already Failed at its first check fails the task without a retry if deterministic."""
        try:
            return super().start(context)
        except AirflowFailException:
            raise
        except AirflowException as err:  # the provider's "SageMaker job failed because <FailureReason>"
            reason = str(err).partition("failed because ")[2]
            if reason.startswith(DETERMINISTIC_FAILURES):
                raise self._final(self.config.get("TransformJobName"), reason) from err
            raise

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, dict]:
        """As the provider's; a job that failed for a deterministic reason fails the task without a retry.

        A retry starts a new billed transform job; it can only help with a transient failure (SageMaker's
        own, capacity, throttling), never with a model or an input that fails (``ClientError: …``).
        """
        event = event or {}
        reason = str(event.get("message") or "")
        if event.get("status") == "failed" and reason.startswith(DETERMINISTIC_FAILURES):
            raise self._final(event.get("job_name"), reason)
        return super().execute_complete(context, event)
