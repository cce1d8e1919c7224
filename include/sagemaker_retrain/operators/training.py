"""SageMakerTrainingOperator that re-attaches to its own job on a retry.

The provider's operator, when the job name already exists, either renames (a second, billed job)
or fails. The pipeline's job names are derived from the DAG run, so an existing job with the
run's name is *probably* this run's job, started by an earlier try whose worker died. Probably
is not enough: it is re-attached to only if it carries this run's id tag and was created after
this run started (a reset database or a second deployment reproduces run ids, never start times).

Before anything else the very request it is about to send is checked against the admins' limits
(``limits.check_training_config``): the config comes from an XCom, which a User role may edit
after ``prepare`` checked the Params.
"""

from __future__ import annotations

import math
from datetime import UTC, timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import secondary_training_status_message
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.exceptions import ClientError

from sagemaker_retrain import limits
from sagemaker_retrain.operators.short_waits import WatchShortJobsOnWorker
from sagemaker_retrain.ownership import job_belongs_to_run, tags_of

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
CLOCK_SKEW = timedelta(minutes=2)  # between the worker's clock and SageMaker's CreationTime


class SageMakerReattachingTrainingOperator(WatchShortJobsOnWorker, SageMakerTrainingOperator):
    """
    Start a SageMaker training job, or re-attach to the one an earlier try of this task started.

    Takes every parameter of :class:`SageMakerTrainingOperator`; ``check_if_job_exists`` and
    ``action_if_job_exists`` are replaced by re-attaching. ``max_attempts`` of the deferred wait
    is raised to cover the job's own ``StoppingCondition.MaxRuntimeInSeconds`` (the provider's
    default gives up after 30 minutes). In deferrable mode the job's log lines and final metrics
    are printed when the trigger fires, so the task log shows them in both modes. A job that ends
    within a few seconds is watched to its end on the worker instead (``short_waits``).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("check_if_job_exists", False)
        super().__init__(**kwargs)

    def _size_max_attempts(self) -> None:
        runtime = int(self.config.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
        needed = math.ceil((runtime + 900) / max(float(self.check_interval), 0.01))
        self.max_attempts = max(self.max_attempts, needed)

    def _existing_job(self, name: str) -> dict | None:
        try:
            return self.hook.describe_training_job(name)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ValidationException":
                return None
            raise

    def check_limits(self) -> None:
        """Refuse (final, no retry) a training request beyond the admins' limits, before any AWS call."""
        try:
            limits.check_training_config(self.config)
        except ValueError as err:  # LimitExceeded, or a malformed limits Variable
            raise AirflowFailException(str(err)) from None

    def start(self, context) -> dict:
        self.check_limits()
        self._size_max_attempts()
        name = self.config["TrainingJobName"]
        existing = self._existing_job(name)
        if existing is None and not self.deferrable:
            result = SageMakerTrainingOperator.execute(self, context)
            self._log_final_metrics(result["Training"])
            return result
        if existing is None:
            # Start the job without the provider's log tailing, which sleeps a whole check
            # interval on the worker before its first read even in deferrable mode.
            self.preprocess_config()
            self.log.info("Creating SageMaker training job %s.", name)
            self.hook.create_training_job(self.config, wait_for_completion=False, print_log=False)
            return self._attach(name, self.hook.describe_training_job(name), reattached=False)
        self._check_ours(context, name, existing)
        self.log.info("Re-attaching to training job %s, started by an earlier try (status %s).",
                      name, existing["TrainingJobStatus"])
        return self._attach(name, existing, reattached=True)

    def _check_ours(self, context, name: str, existing: dict) -> None:
        """Refuse a job of the same name that this run did not start (before waiting on it)."""
        dag_run = context["dag_run"]
        run_id = dag_run.run_id
        tags = tags_of(self.hook.conn, existing["TrainingJobArn"])
        if not job_belongs_to_run(tags, run_id):
            raise AirflowFailException(
                f"Training job {name} exists but does not carry this run's tag (sagemaker-retrain:run-id="
                f"{run_id!r}); it is not this run's job. Not re-attaching; trigger a new run."
            )
        started = dag_run.start_date
        created = existing.get("CreationTime")
        if started is not None and created is not None:
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            if created < started - CLOCK_SKEW:
                raise AirflowFailException(
                    f"Training job {name} carries this run's id but was created at {created.isoformat()}, before "
                    f"this run started ({started.isoformat()}): another deployment or an earlier database made it. "
                    "Not re-attaching: Clear the whole run (prepare names new resources after the clear number), "
                    "or trigger a new run."
                )

    def _attach(self, name: str, description: dict, reattached: bool) -> dict:
        """Return at once if the job has ended, else wait for it (deferred, or here)."""
        status = description["TrainingJobStatus"]
        if status == "Completed":
            self._log_job_output(name)
            return self.serialize_result(name)
        if status in self.hook.training_failed_states:
            self._log_job_output(name)
            reason = description.get("FailureReason", "(no reason given)")
            retry_note = " Not starting a second job for the same run; trigger a new run to retrain." if reattached else ""
            # Final: a retry would only find the same ended job.
            raise AirflowFailException(f"Training job {name} of this run ended {status}: {reason}.{retry_note}")
        if self.deferrable:
            self.defer(
                trigger=SageMakerTrigger(
                    job_name=name,
                    job_type="Training",
                    waiter_delay=self.check_interval,
                    waiter_max_attempts=self.max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
            )
        self.hook.check_training_status_with_log(
            name,
            self.hook.non_terminal_states,
            self.hook.training_failed_states,
            True,
            self.check_interval,
            self.max_ingestion_time,
        )
        return self.serialize_result(name)

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, dict]:
        name = (event or {}).get("job_name", self.config["TrainingJobName"])
        if self.print_log:
            self._log_job_output(name)
        if event and event.get("status") != "success":
            description = self.hook.describe_training_job(name)
            status = description["TrainingJobStatus"]
            if status in self.hook.training_failed_states:
                reason = description.get("FailureReason", "(no reason given)")
                raise AirflowFailException(f"Training job {name} ended {status}: {reason}")
            # The wait gave up (timeout, lost trigger) while the job still runs: a retry re-attaches.
            raise AirflowException(f"Stopped waiting for training job {name} ({status}): {event.get('message')}")
        return super().execute_complete(context, event)

    def _log_job_output(self, name: str) -> None:
        """Print the job's CloudWatch log lines and its final metrics into the task log."""
        description = self.hook.describe_training_job(name)
        try:
            logs = self.hook.logs_hook.get_conn()
            streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=name + "/").get(
                "logStreams", []
            )
            for stream in streams:
                for event in self.hook.logs_hook.get_log_events(LOG_GROUP, stream["logStreamName"]):
                    self.log.info("[%s] %s", stream["logStreamName"], event["message"])
        except ClientError as err:
            self.log.warning("Could not read the training log of %s: %s", name, err)
        self.log.info(secondary_training_status_message(description, None))
        self._log_final_metrics(description)

    def _log_final_metrics(self, description: dict) -> None:
        for metric in description.get("FinalMetricDataList", []):
            self.log.info("Final metric %s = %s", metric["MetricName"], metric["Value"])
        if description.get("BillableTimeInSeconds") is not None:
            self.log.info("Billable seconds: %s", description["BillableTimeInSeconds"])

