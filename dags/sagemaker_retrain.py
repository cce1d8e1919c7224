"""Retrain a SageMaker model (the algorithm Param ``algorithm`` selects), gate it against the serving model, deploy, check, clean up."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset, AsyncCallback, DeadlineAlert, DeadlineReference, Metadata, XComArg, dag, task

from sagemaker_retrain.alerts import task_failed
from sagemaker_retrain.operators.approval import ModelApprovalOperator
from sagemaker_retrain.operators.champion import PinChampionOperator
from sagemaker_retrain.operators.endpoint import SageMakerDeployOperator
from sagemaker_retrain.operators.restore import EndpointRestoreOperator, RunCleanupOperator
from sagemaker_retrain.operators.short_waits import SageMakerShortWaitTransformOperator
from sagemaker_retrain.operators.training import SageMakerReattachingTrainingOperator
from sagemaker_retrain.params import build_params
from sagemaker_retrain.sensors.endpoint import EndpointDeployedSensor

PROJECT_DIR = Path(__file__).resolve().parent.parent
AWS_CONN_ID = os.environ.get("SAGEMAKER_RETRAIN_AWS_CONN_ID", "aws_default")


def _poll_seconds(raw: str) -> int | float:
    """Seconds between the status checks of the waits (and the retry delay); fractions allowed.

    The default, 30, suits AWS (jobs and endpoints take minutes); a fraction of a second suits the
    offline emulator at time scale 0, where they are ready in milliseconds.
    """
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"SAGEMAKER_RETRAIN_POLL_SECONDS must be a number of seconds > 0, got {raw!r}")
    return int(value) if value.is_integer() else value


POLL_SECONDS = _poll_seconds(os.environ.get("SAGEMAKER_RETRAIN_POLL_SECONDS", "30"))
SCHEDULE = os.environ.get("SAGEMAKER_RETRAIN_SCHEDULE", "@weekly") or None
# A run this many hours past the average of its last runs raises a deadline alert (mail); empty or 0
# turns it off (`airflow dags test` in Airflow 3.3.2 crashes on any DAG with a DeadlineAlert).
DEADLINE_HOURS = float(os.environ.get("SAGEMAKER_RETRAIN_DEADLINE_HOURS", "2") or 0)
SERVED_MODEL = Asset(name="sagemaker_retrain_served_model", uri="s3://sagemaker-retrain/served-model")
# New data: S3 event notifications of the watched prefix on this SQS queue (the infra stack's output
# NewDataQueueUrl). Unset: the DAG keeps the plain schedule above.
WATCH_QUEUE_URL = os.environ.get("SAGEMAKER_RETRAIN_WATCH_QUEUE_URL", "").strip()
# Seconds the watcher waits between two empty long polls (each long poll waits up to 20 s itself).
WATCH_POLL_SECONDS = _poll_seconds(os.environ.get("SAGEMAKER_RETRAIN_WATCH_POLL_SECONDS", "1"))


def _new_data_asset() -> Asset | None:
    """The Asset a new-data notification updates, watched on the queue; None when no queue is set."""
    if not WATCH_QUEUE_URL:
        return None
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetWatcher

    trigger = MessageQueueTrigger(
        scheme="sqs", sqs_queue=WATCH_QUEUE_URL, aws_conn_id=AWS_CONN_ID, max_messages=10,
        wait_time_seconds=20, waiter_delay=WATCH_POLL_SECONDS,
    )
    return Asset(name="sagemaker_retrain_new_data", uri="s3://sagemaker-retrain/new-data",
                 watchers=[AssetWatcher(name="sagemaker_retrain_new_data_queue", trigger=trigger)])


def _schedule(cron: str | None, new_data: Asset | None):
    """The cron alone, new data alone, or whichever comes first (AssetOrTimeSchedule)."""
    if new_data is None:
        return cron
    if cron is None:
        return [new_data]
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[new_data])


NEW_DATA = _new_data_asset()

DOC = """
### SageMaker retraining (Linear Learner, XGBoost, k-NN or your scikit-learn script)

**prepare** (validate params, data and endpoint ownership; split; upload) → **train** (the
algorithm Param `algorithm` selects, deferrable, re-attaches only to this run's own job) → **register** (a new version in the
endpoint's SageMaker Model Registry group, pending approval, with its lineage) → **stage** (the
challenger's model, created from its package; the champion is the model serving, and its package)
→ **score_challenger** / **score_champion** (batch transform of *this run's* test rows through each
model; production is never asked) → **gate** (threshold and champion, on the same rows; a model
that lost is a successful run, its package Rejected) → **approve** (when Param `require_approval`
or Variable `sagemaker_retrain_require_approval` asks for it, a person answers in *Required
actions*: Approve → package Approved; Reject or no answer in `approval_timeout_hours` → package
Rejected, **rejected** records it, nothing is deployed) → **deploy** (endpoint config,
rollback alarms; create the endpoint, or update it blue/green with canary/linear traffic shifting
and auto-rollback) → **wait_for_endpoint** (our deferrable sensor: through the whole deployment,
then a smoke request) → **publish** (history record and the served-model Asset).
**rollback** puts the previous config back if a check after the switch fails; **teardown** always
runs: it stops this run's jobs, restores the previous config if the new one was not verified
(also when the run was marked failed), deletes what must not stay, and fails the run if any task
failed.

Runs on the schedule (env `SAGEMAKER_RETRAIN_SCHEDULE`) or, when env `SAGEMAKER_RETRAIN_WATCH_QUEUE_URL`
names the SQS queue of the watched prefix's S3 notifications, also when new data lands (whichever
comes first): such a run trains on the object, or the parts a `*.manifest.json` names, that arrived.
Param `on_unchanged_data` decides what data the serving model was trained on already does.

Deployment settings come from Variables `sagemaker_retrain_bucket`, `sagemaker_retrain_role_arn`,
`sagemaker_retrain_region`, `sagemaker_retrain_prefix` (or `AIRFLOW_VAR_…` environment variables).
Failures are mailed through the `smtp_default` connection to Variable `sagemaker_retrain_alert_emails`.
"""


@dag(
    dag_id="sagemaker_retrain",
    schedule=_schedule(SCHEDULE, NEW_DATA),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["sagemaker", "ml", "retraining"],
    doc_md=DOC,
    params=build_params(),
    # datetime.timedelta, not pendulum's Duration: a deferring task sends its timeout to the supervisor,
    # whose msgpack encoder (Airflow 3.3.2) refuses a Duration, so the task fails as it defers.
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=POLL_SECONDS),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [task_failed],
    },
    deadline=DeadlineAlert(
        reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=10, min_runs=3),
        interval=timedelta(hours=DEADLINE_HOURS),
        callback=AsyncCallback("sagemaker_retrain.alerts.deadline_missed"),
    ) if DEADLINE_HOURS > 0 else None,
)
def sagemaker_retrain():
    @task(execution_timeout=timedelta(hours=1))
    def prepare(params=None, run_id=None, dag_run=None, ti=None, triggering_asset_events=None) -> dict:
        """Validate params, data and endpoint ownership; upload the data set; name this run's resources."""
        from sagemaker_retrain import pipeline

        data_events = [dict(event.extra or {}) for asset, events in (triggering_asset_events or {}).items()
                       if asset.name == "sagemaker_retrain_new_data" for event in events]
        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        # Whether train runs again in this pass (first pass, whole-run Clear, clear of train) or keeps its
        # job (a clear of a later task): the names follow (pipeline.run_generation).
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id], task_ids=["train"])
        retrain = str(states.get(run_id, states).get("train")) != "success"
        return pipeline.prepare(dict(params), run_id, dag_run.run_after, PROJECT_DIR, AWS_CONN_ID,
                                clear_number=dag_run.clear_number or 0, run_type=str(run_type),
                                data_events=data_events, retrain=retrain)

    plan = prepare()

    train = SageMakerReattachingTrainingOperator(
        task_id="train",
        config=plan["training_config"],
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        deferrable=True,
        check_interval=POLL_SECONDS,
        print_log=True,
        # The job stops itself at MaxRuntimeInSeconds (a Param, at most 5 days); this is the backstop.
        execution_timeout=timedelta(days=5, hours=2),
    )

    @task
    def register(plan: dict, training: dict, params=None) -> dict:
        """Register the trained model as a new version of the endpoint's model package group."""
        from sagemaker_retrain import pipeline

        return pipeline.register(plan, training["Training"], dict(params))

    package = register(plan, train.output)

    champion = PinChampionOperator(
        task_id="pin_champion",
        endpoint_name=plan["endpoint_name"],
        mode="{{ params.mode }}",
        poll_interval=POLL_SECONDS,
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        execution_timeout=timedelta(hours=4),
    )

    @task
    def stage(plan: dict, training: dict, package: dict, champion: dict, params=None) -> list[dict]:
        """Create the challenger's model from its package; one scoring request per model (challenger, champion)."""
        from sagemaker_retrain import pipeline

        return pipeline.stage(plan, training["Training"], dict(params), package, champion)

    staged = stage(plan, train.output, package, champion.output)
    # One batch transform per model, on this run's test rows (mapped: the challenger, and the champion if any).
    scores = SageMakerShortWaitTransformOperator.partial(
        task_id="score",
        aws_conn_id=AWS_CONN_ID,
        deferrable=True,
        check_interval=POLL_SECONDS,
        action_if_job_exists="timestamp",
        check_if_model_exists=False,
        execution_timeout=timedelta(hours=3),
    ).expand_kwargs(staged)

    @task.branch
    def gate(plan: dict, champion: dict, package: dict, params=None, ti=None) -> str:
        """Promote only a model that meets the threshold and beats the pinned champion on the same rows."""
        from sagemaker_retrain import pipeline

        result = pipeline.decide(plan, dict(params), champion, package)
        ti.xcom_push(key="deploy_config", value=result.pop("deploy_config"))
        ti.xcom_push(key="evidence", value=result)
        ti.xcom_push(key="approval_policy", value=pipeline.approval_policy(dict(params)))
        return "approve" if result["decision"]["deploy"] else "keep_champion"

    decision = gate(plan, champion.output, package)

    @task
    def keep_champion(plan: dict, params=None, ti=None) -> str:
        """Record a model that lost at the gate, with both scores; the serving endpoint is untouched."""
        from sagemaker_retrain import pipeline

        return pipeline.keep_champion(plan, dict(params), ti.xcom_pull(task_ids="gate", key="evidence"))

    approve = ModelApprovalOperator(task_id="approve", gate_task_id="gate", approve_task_id="deploy",
                                    reject_task_id="rejected")

    @task
    def rejected(plan: dict, params=None, ti=None) -> str:
        """Record a promotion a person rejected (or left unanswered): nothing is deployed; the run succeeds."""
        from sagemaker_retrain import pipeline

        return pipeline.rejected(plan, dict(params), ti.xcom_pull(task_ids="gate", key="evidence"),
                                 ti.xcom_pull(task_ids="approve", key="approval"))

    deploy = SageMakerDeployOperator(
        task_id="deploy",
        config=XComArg(decision.operator, key="deploy_config"),
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        execution_timeout=timedelta(minutes=15),
    )

    wait_for_endpoint = EndpointDeployedSensor(
        task_id="wait_for_endpoint",
        endpoint_name=plan["endpoint_name"],
        endpoint_config_name=plan["endpoint_config_name"],
        smoke_rows=plan["smoke_features"],
        deadline="{{ ti.xcom_pull(task_ids='deploy')['wait_deadline'] }}",
        poll_interval=POLL_SECONDS,
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        execution_timeout=timedelta(hours=9),
    )

    @task(outlets=[SERVED_MODEL])
    def publish(plan: dict, verification: dict, params=None, ti=None):
        """Record the verified model, tag its config verified; announce it (persistent mode only)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from sagemaker_retrain import pipeline

        evidence = ti.xcom_pull(task_ids="gate", key="evidence")
        published = pipeline.publish(plan, dict(params), evidence, verification,
                                     ti.xcom_pull(task_ids="approve", key="approval"))
        if params["mode"] != "persistent":
            raise AirflowSkipException(f"ephemeral run recorded at {published['history']}; its endpoint is deleted")
        yield Metadata(SERVED_MODEL, {"endpoint": plan["names"]["endpoint"], "model": plan["names"]["model"],
                                      "scores": published["scores"], "history": published["history"],
                                      "data": published["data"]})
        return published

    # The undo of deploy: whenever deploy succeeded, put the previous config back unless this run verified
    # its own (decided from the endpoint and its configs' tags, not from any task's XCom).
    restore = EndpointRestoreOperator(
        task_id="restore", endpoint_name=plan["endpoint_name"], poll_interval=POLL_SECONDS,
        aws_conn_id=AWS_CONN_ID, region_name=plan["region"], retries=3, execution_timeout=timedelta(hours=3),
    )
    # The run's clean-up: stop its jobs, delete what must not stay (only what carries the project's tags).
    teardown = RunCleanupOperator(
        task_id="teardown", plan=plan, mode="{{ params.mode }}", aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"], retries=3, execution_timeout=timedelta(hours=1),
    )

    @task(trigger_rule="one_failed", retries=0)
    def watcher():
        """Fail the run when any task failed (teardowns would otherwise hide it), as Airflow's system tests do."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("A task of this run failed (see the failed task's log): the run fails.")

    published = publish(plan, wait_for_endpoint.output)
    kept = keep_champion(plan)
    refused = rejected(plan)
    package >> champion
    scores >> decision >> [approve, kept]
    approve >> [deploy, refused]
    deploy >> wait_for_endpoint >> published >> restore.as_teardown(setups=deploy)
    restore >> teardown
    [kept, refused, published, approve, decision, scores, staged, champion, package, train] >> teardown.as_teardown(
        setups=plan, on_failure_fail_dagrun=True)
    # Every task but the setups (Airflow wants ALL_SUCCESS right after a setup); a failed setup shows as
    # upstream_failed in the tasks after it, which the watcher sees.
    [t for t in plan.operator.dag.tasks if not t.is_setup] >> watcher()


sagemaker_retrain()
