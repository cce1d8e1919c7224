"""Put the previous endpoint config back when this run's deployment was not verified; then tear down.

Two operators share one deferrable loop: ``EndpointRestoreOperator`` (the ``rollback`` task, run
when a check after the switch fails) and ``PipelineTeardownOperator`` (the run's teardown, run
whatever happened, including a run marked failed by a person mid-deployment). Neither holds a
worker slot while SageMaker works: waiting for the endpoint to settle, and for the restored
config to serve, is deferred to the triggerer with the pipeline's own ``EndpointDeployedTrigger``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sagemaker_retrain.ownership import describe_endpoint, require_owned_endpoint
from sagemaker_retrain.triggers.endpoint import EndpointDeployedTrigger, classify

TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
FAILED_STATES = frozenset({"failed", "upstream_failed"})


class EndpointRestoreOperator(BaseOperator):
    """
    Undo this run's deployment unless it was verified: the previous config serves again.

    An update is switched back to the config that served before (the deployment's own record);
    a first create is deleted, so a model that failed a check never keeps serving. An endpoint
    still deploying is first waited for (deferred); one that SageMaker already rolled back is
    left as it is.

    :param plan_task_id: the task whose XCom is the run's plan (names, settings, region); read at run
        time rather than passed in, so that these tasks are not direct downstreams of the setup task
        (Airflow requires those to use ALL_SUCCESS).
    :param deploy_task_id: the task whose XCom describes this run's deployment.
    :param verified_task_ids: tasks whose success means the deployment was verified (nothing to undo).
    :param poll_interval: seconds between DescribeEndpoint calls while deferred.
    :param max_wait_seconds: the total time to wait for the endpoint (each wait).
    :param aws_conn_id: Airflow AWS connection (the region is the plan's).
    """

    template_fields: Sequence[str] = ()
    ui_color = "#f4d3c4"

    def __init__(self, *, plan_task_id: str = "prepare", deploy_task_id: str = "deploy",
                 verified_task_ids: Sequence[str] = (), poll_interval: float = 30, max_wait_seconds: int = 7200,
                 aws_conn_id: str | None = "aws_default", **kwargs):
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.plan: dict | None = None
        self.region_name: str | None = None
        self.deploy_task_id = deploy_task_id
        self.verified_task_ids = tuple(verified_task_ids)
        self.poll_interval = poll_interval
        self.max_wait_seconds = max_wait_seconds
        self.aws_conn_id = aws_conn_id

    # --- helpers -----------------------------------------------------------------------
    def _sm(self):
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).conn

    def _task_states(self, context) -> dict[str, str]:
        """Every task's state in this run, as the metadata database has it now."""
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])
        states = states.get(ti.run_id, states)
        return {task_id: str(state) for task_id, state in states.items()}

    def _deployment(self, context) -> dict | None:
        self.plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        self.region_name = (self.plan or {}).get("region")
        return context["ti"].xcom_pull(task_ids=self.deploy_task_id)

    def _needs_restore(self, context, deployment: dict) -> bool:
        if not self.verified_task_ids:
            return True
        states = self._task_states(context)
        return not all(states.get(t) == "success" for t in self.verified_task_ids)

    def _defer_until(self, name: str, config_name: str, method: str) -> None:
        self.defer(
            trigger=EndpointDeployedTrigger(
                endpoint_name=name, endpoint_config_name=config_name, poll_interval=self.poll_interval,
                max_attempts=max(1, int(self.max_wait_seconds / max(self.poll_interval, 0.1))),
                aws_conn_id=self.aws_conn_id, region_name=self.region_name,
            ),
            method_name=method,
        )

    # --- the loop ------------------------------------------------------------------------
    def execute(self, context) -> Any:
        deployment = self._deployment(context)
        self.before_restore(context)
        if not deployment:
            return self.finish(context, "nothing was deployed by this run")
        name, ours = deployment["endpoint_name"], deployment["endpoint_config_name"]
        current = describe_endpoint(self._sm(), name)
        if current is None:
            return self.finish(context, f"endpoint {name} does not exist: nothing to restore")
        if current["EndpointStatus"] in TRANSITIONAL:
            self.log.info("Endpoint %s is %s; waiting (deferred) for it to settle.", name, current["EndpointStatus"])
            self._defer_until(name, ours, "settled")
        return self._act(context, deployment, current)

    def settled(self, context, event: dict | None = None) -> Any:
        if (event or {}).get("status") == "timeout":
            raise AirflowException(f"Endpoint never settled: {event.get('message')}")
        deployment = self._deployment(context)
        current = describe_endpoint(self._sm(), deployment["endpoint_name"])
        if current is None:
            return self.finish(context, f"endpoint {deployment['endpoint_name']} is gone: nothing to restore")
        if current["EndpointStatus"] in TRANSITIONAL:  # e.g. a wait cut short: settle again
            self._defer_until(deployment["endpoint_name"], deployment["endpoint_config_name"], "settled")
        return self._act(context, deployment, current)

    def _act(self, context, deployment: dict, current: dict) -> Any:
        name, ours = deployment["endpoint_name"], deployment["endpoint_config_name"]
        previous = deployment.get("previous_config_name")
        serving, status = current.get("EndpointConfigName"), current["EndpointStatus"]
        if not self._needs_restore(context, deployment):
            return self.finish(context, f"this run's deployment of {ours} was verified: nothing to restore")
        sm = self._sm()
        if status == "Failed" or (serving == ours and not previous):
            if deployment.get("operation") != "create":
                raise AirflowFailException(
                    f"Endpoint {name} is {status} on {serving}, and the config it replaced is unknown")
            require_owned_endpoint(sm, name)
            sm.delete_endpoint(EndpointName=name)
            return self.finish(context, f"endpoint {name} (first deployment, not verified) deleted")
        if serving != ours:
            reason = current.get("FailureReason")
            why = f" (SageMaker rolled it back: {reason})" if reason else ""
            return self.finish(context, f"endpoint {name} serves {serving}, not this run's {ours}{why}: left as is")
        require_owned_endpoint(sm, name)
        self.log.info("Endpoint %s serves this run's unverified %s: switching back to %s.", name, ours, previous)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=previous)
        self._defer_until(name, previous, "restored")

    def restored(self, context, event: dict | None = None) -> Any:
        deployment = self._deployment(context)
        previous = deployment["previous_config_name"]
        event = event or {}
        if event.get("status") != "success":
            current = describe_endpoint(self._sm(), deployment["endpoint_name"]) or {}
            verdict, message = classify(current, previous) if current else ("failure", "endpoint is gone")
            if verdict != "success":
                raise AirflowFailException(
                    f"Rollback of {deployment['endpoint_name']} to {previous} failed: {event.get('message', message)}")
        return self.finish(context, f"endpoint {deployment['endpoint_name']} rolled back to {previous}")

    # --- hooks for the teardown ------------------------------------------------------------
    def before_restore(self, context) -> None:
        """Runs first on every try (the teardown stops this run's jobs here)."""

    def finish(self, context, message: str) -> Any:
        self.log.info(message)
        return message


class PipelineTeardownOperator(EndpointRestoreOperator):
    """
    The run's teardown: stop this run's jobs, restore the previous config if the new one was not
    verified, delete what must not stay, and fail the run if any of its tasks failed.

    Airflow decides a run's state from its leaves, which a teardown hides; this task reads every
    task's state and fails when one failed, so "success" means every step succeeded (a model that
    lost the gate is a success: it was a decision, not a failure).

    Takes :class:`EndpointRestoreOperator`'s parameters; the run's ``mode`` Param decides what
    is deleted (ephemeral: everything of the run; persistent: all but what serves and one config
    to roll back to).
    """

    def before_restore(self, context) -> None:
        from sagemaker_retrain import pipeline

        self.stopped = pipeline.stop_run_jobs(self.plan)

    def _needs_restore(self, context, deployment: dict) -> bool:
        if context["params"]["mode"] == "ephemeral":
            return False  # its own endpoint: deleted below
        return super()._needs_restore(context, deployment)

    @staticmethod
    def _run_is_active(context):
        """Whether another run of this DAG is still queued or running (asked of Airflow, once per run id)."""
        ti = context["ti"]
        seen: dict[str, bool] = {}

        def is_active(run_id: str) -> bool:
            if run_id not in seen:
                seen[run_id] = ti.get_dr_count(dag_id=ti.dag_id, run_ids=[run_id], states=["queued", "running"]) > 0
            return seen[run_id]

        return is_active

    def finish(self, context, message: str) -> Any:
        from sagemaker_retrain import pipeline

        removed = getattr(self, "stopped", None)
        if removed is None:  # resumed after a deferral: the jobs were handled on the first pass
            removed = []
        removed = removed + pipeline.teardown(self.plan, dict(context["params"]), self._run_is_active(context))
        self.log.info("Restore: %s. Teardown removed: %s", message, removed or "nothing")
        states = self._task_states(context)
        failed = sorted(t for t, s in states.items() if s in FAILED_STATES and t != self.task_id)
        stopped_training = [item for item in removed if item.startswith("training job ")]
        from sagemaker_retrain import outcome

        outcome.report_run(context, states, restore=message)  # the run page's summary; never raises
        if failed or stopped_training:
            why = f"task(s) {', '.join(failed)} failed" if failed else "train ended before its training job did"
            raise AirflowFailException(
                f"The run failed: {why}. Restore: {message}. Teardown removed: {', '.join(removed) or 'nothing'}")
        return {"restore": message, "removed": removed}
