"""The undo of a deployment, and the run's clean-up: two teardowns, each deciding from what AWS says now.

``EndpointRestoreOperator`` is the teardown of ``deploy`` (``as_teardown(setups=deploy)``): it runs
whenever ``deploy`` succeeded, whatever happened after (a failed check, a person marking the run
failed mid-deployment), and is the one place that puts the previous endpoint config back. Its
decision comes from :func:`sagemaker_retrain.undo.decide_undo` (the endpoint, the tags on its
config), never from an XCom an earlier pass of a cleared run left behind.

``RunCleanupOperator`` is the teardown of ``prepare``: it stops the run's jobs and deletes what must
not stay (only what carries the project's tags). Neither computes the run's state: a watcher leaf
(``trigger_rule=ONE_FAILED``) fails the run when a task failed, as Airflow's system tests do; the
clean-up fails only to keep the verdict of a person who marked the run failed (Airflow would otherwise
end it success: see ``RunCleanupOperator._keep_a_persons_verdict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sagemaker_retrain import undo
from sagemaker_retrain.ownership import describe_endpoint, require_owned_endpoint
from sagemaker_retrain.triggers.endpoint import EndpointDeployedTrigger, classify


class EndpointRestoreOperator(AwsBaseOperator[SageMakerHook]):
    """
    Undo this run's deployment unless the run verified it: the config it replaced serves again.

    An endpoint that serves a config of this run without the ``verified`` tag is switched back to the
    config named in that config's ``previous-config`` tag (and waited for, deferred); a first
    deployment never verified is deleted; an endpoint still changing is first waited for (deferred);
    anything else (verified, another run's config, rolled back by SageMaker) is left as it is.

    :param endpoint_name: the endpoint this run deploys to (templated).
    :param poll_interval: seconds between DescribeEndpoint calls while deferred.
    :param max_wait_seconds: the longest each wait for the endpoint may take.
    :param aws_conn_id: Airflow AWS connection (templated); ``region_name``, ``verify`` and
        ``botocore_config`` as for every ``AwsBaseOperator``.
    :return: what was done, in words.
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("endpoint_name")
    ui_color = "#f4d3c4"

    def __init__(self, *, endpoint_name: str, poll_interval: float = 30, max_wait_seconds: int = 7200, **kwargs):
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.poll_interval = poll_interval
        self.max_wait_seconds = max_wait_seconds

    def _defer_until(self, config_name: str, method: str) -> None:
        self.defer(
            trigger=EndpointDeployedTrigger(
                endpoint_name=self.endpoint_name, endpoint_config_name=config_name, poll_interval=self.poll_interval,
                max_attempts=max(1, int(self.max_wait_seconds / max(self.poll_interval, 0.1))),
                aws_conn_id=self.aws_conn_id, region_name=self.region_name,
            ),
            method_name=method,
            timeout=timedelta(seconds=self.max_wait_seconds + 60),
        )

    def execute(self, context) -> Any:
        return self._undo(context)

    def _undo(self, context) -> Any:
        sm = self.hook.conn
        decision = undo.decide_undo(sm, self.endpoint_name, context["run_id"])
        self.log.info("Undo: %s", decision.message)
        if decision.action == undo.WAIT:
            self._defer_until(decision.config, "settled")
        if decision.action == undo.REFUSE:
            raise AirflowFailException(decision.message)
        if decision.action == undo.DELETE_ENDPOINT:
            require_owned_endpoint(sm, self.endpoint_name)
            sm.delete_endpoint(EndpointName=self.endpoint_name)
        elif decision.action == undo.SWITCH_BACK:
            require_owned_endpoint(sm, self.endpoint_name)
            sm.update_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=decision.config)
            self._defer_until(decision.config, "restored")
        return decision.message

    def settled(self, context, event: dict | None = None) -> Any:
        """The endpoint stopped changing (or the wait gave up): decide again from what it is now."""
        if (event or {}).get("status") == "timeout":
            raise AirflowException(f"Endpoint {self.endpoint_name} never settled: {event.get('message')}")
        return self._undo(context)

    def restored(self, context, event: dict | None = None) -> Any:
        event = event or {}
        current = describe_endpoint(self.hook.conn, self.endpoint_name) or {}
        wanted = event.get("endpoint_config_name") or current.get("EndpointConfigName")
        if event.get("status") != "success":
            verdict, message = classify(current, wanted) if current else ("failure", "the endpoint is gone")
            if verdict != "success":
                raise AirflowFailException(
                    f"Rollback of {self.endpoint_name} to {wanted} failed: {event.get('message', message)}")
        message = f"endpoint {self.endpoint_name} rolled back to {wanted}"
        self.log.info(message)
        return message


class RunCleanupOperator(AwsBaseOperator[SageMakerHook]):
    """
    The run's clean-up: stop this run's jobs, delete what must not stay, sum the run up on its page.

    Ephemeral runs lose their endpoint, config and model; persistent runs keep what serves and one
    config to roll back to. Only resources that carry the project's tags for the endpoint are
    deleted, and another run's resources are kept while that run is still active.

    The summary (``outcome.report_run``) pulls no other task's XCom: it reads the history record and
    the gate's decision that *this pass* of the run wrote to S3 (where ``plan`` says; a cleared run's
    earlier pass is not taken for this one), what the endpoint serves now, and this run's task states.

    :param plan: the run's plan (``prepare``'s return value; templated).
    :param mode: ``persistent`` or ``ephemeral`` (templated; the run's Param).
    :param aws_conn_id: Airflow AWS connection; ``region_name`` etc. as for every ``AwsBaseOperator``.
    :return: ``{"removed": [...]}``.
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("plan", "mode")
    ui_color = "#f4d3c4"

    def __init__(self, *, plan: dict, mode: str = "persistent", **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        self.mode = mode

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

    def execute(self, context) -> dict:
        from sagemaker_retrain import cleanup, outcome

        sm = self.hook.conn
        names, plan = self.plan["names"], self.plan
        removed = (cleanup.stop_training_job(sm, names["training_job"])
                   + cleanup.stop_transform_jobs(sm, plan["slug"], plan["run_id"]))
        if self.mode == "ephemeral":
            removed += cleanup.teardown_ephemeral(sm, endpoint_name=names["endpoint"],
                                                  config_name=names["endpoint_config"], model_name=names["model"])
        else:
            removed += cleanup.teardown_persistent(sm, endpoint_name=names["endpoint"], run_id=plan["run_id"],
                                                   is_active=self._run_is_active(context))
        self.log.info("Clean-up removed: %s", removed or "nothing")
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])
        states = {t: str(s) for t, s in states.get(ti.run_id, states).items()}
        # The run page's summary (a note, not the run's state), from this pass's records and the endpoint;
        # never raises.
        outcome.report_run(context, states, plan=plan, mode=self.mode, make_s3=self._s3, sagemaker=sm)
        self._keep_a_persons_verdict(states)
        return {"removed": removed}

    def _s3(self):
        """An S3 client with this operator's connection, for the run's records the summary reads."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config).conn

    @staticmethod
    def _keep_a_persons_verdict(states: dict[str, str]) -> None:
        """A run a person marked failed must end failed (workaround of apache/airflow#45530's side effect).

        Marking a run failed skips its pending tasks, the watcher included, but leaves the teardowns to
        run and the run's state open; Airflow 3.3 then decides it from the leaves, all skipped, and ends
        it *success*. A watcher skipped while a task failed can only be the mark's doing (a failure fires
        it), so that is the one case this teardown, a leaf with ``on_failure_fail_dagrun``, fails to keep
        the verdict.
        See docs/upstream.md.
        """
        failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
        if states.get("watcher") != "skipped" or not failed:  # not marked, or marked success
            return
        raise AirflowFailException(
            "The run was marked failed by a person (its pending tasks, the watcher included, were skipped by the "
            f"mark; failed: {', '.join(failed)}): it ends failed.")
