"""One retraining DAG per model of the catalog (include/models/*.yaml): train, gate, deploy, check, clean up.

The factory (``build_dag``) turns each catalog entry into a DAG with the model's Params as the Trigger
form's defaults (Param ``algorithm`` picks the algorithm); a file the catalog refuses becomes a
``catalog_error_<file>`` DAG (tag ``catalog-error``) whose page shows the error and whose one task
fails with it, and every other model still loads.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import (
    DAG,
    Asset,
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    Metadata,
    XComArg,
    get_parsing_context,
    task,
)

from sagemaker_retrain.alerts import failure_callback, recipients
from sagemaker_retrain.catalog import CatalogError, ModelSpec, catalog_dir, load_catalog
from sagemaker_retrain.gate_metrics import GATE_METRICS
from sagemaker_retrain.operators.approval import ModelApprovalOperator
from sagemaker_retrain.operators.champion import PinChampionOperator
from sagemaker_retrain.operators.endpoint import SageMakerDeployOperator
from sagemaker_retrain.operators.restore import EndpointRestoreOperator, RunCleanupOperator
from sagemaker_retrain.operators.short_waits import SageMakerShortWaitTransformOperator
from sagemaker_retrain.operators.training import SageMakerReattachingTrainingOperator
from sagemaker_retrain.params import build_params
from sagemaker_retrain.sensors.endpoint import EndpointDeployedSensor
from sagemaker_retrain.settings import aws_conn_id_from_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
AWS_CONN_ID = aws_conn_id_from_env()


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
# Set (even empty: no schedule), it replaces every model's catalog schedule (e.g. a test deployment).
SCHEDULE_OVERRIDE = os.environ.get("SAGEMAKER_RETRAIN_SCHEDULE")
# Seconds a job is watched on the worker before its task defers (0: defer at once; the offline deployments set it).
SHORT_WAIT = float(os.environ.get("SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS", "0") or 0)
# A run this many hours past the average of its last runs raises a deadline alert (mail); unset, empty or 0
# turns it off: `airflow dags test` (Airflow 3.3.2) exits 1 after any successful run of a DAG with a
# DeadlineAlert (apache/airflow#73428, docs/upstream.md), so the deployments that run a scheduler set it.
DEADLINE_HOURS = float(os.environ.get("SAGEMAKER_RETRAIN_DEADLINE_HOURS", "") or 0)
CATALOG_DIR = catalog_dir(PROJECT_DIR / "include" / "models")
# Every algorithm's form, built once a parse: its names pick a catalog entry's defaults, its rules check the catalog.
EVERY_PARAM = build_params()
PARAM_NAMES = frozenset(EVERY_PARAM)
# The plan's keys that operators take one by one (plan["..."]): prepare pushes each as its own XCom.
OPERATOR_INPUTS = ("training_config", "region", "endpoint_name", "endpoint_config_name", "smoke_features",
                   "algorithm")
# Seconds the watcher waits between two empty long polls (each long poll waits up to 20 s itself).
WATCH_POLL_SECONDS = _poll_seconds(os.environ.get("SAGEMAKER_RETRAIN_WATCH_POLL_SECONDS", "1"))


def _asset_uri(dag_id: str, what: str) -> str:
    # The first model (dag sagemaker_retrain) keeps the URIs it had before the catalog.
    return f"s3://sagemaker-retrain/{what}" if dag_id == "sagemaker_retrain" else f"s3://sagemaker-retrain/{dag_id}/{what}"


def watch_queue_env(dag_id: str) -> str:
    """The env variable naming a model's new-data SQS queue: ``<DAG_ID>_WATCH_QUEUE_URL``, upper case."""
    return f"{dag_id.upper().replace('-', '_').replace('.', '_')}_WATCH_QUEUE_URL"


def _new_data_asset(dag_id: str) -> Asset | None:
    """The Asset a new-data notification updates, watched on the model's queue; None when no queue is set.

    S3 event notifications of the model's watched prefix on an SQS queue of its own (the infra stack's
    output NewDataQueueUrl), named by env ``<DAG_ID>_WATCH_QUEUE_URL`` (for ``sagemaker_retrain``:
    ``SAGEMAKER_RETRAIN_WATCH_QUEUE_URL``). Unset: the DAG keeps its plain schedule.
    """
    queue_url = os.environ.get(watch_queue_env(dag_id), "").strip()
    if not queue_url:
        return None
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetWatcher

    trigger = MessageQueueTrigger(
        scheme="sqs", sqs_queue=queue_url, aws_conn_id=AWS_CONN_ID, max_messages=10,
        wait_time_seconds=20, waiter_delay=WATCH_POLL_SECONDS,
    )
    return Asset(name=f"{dag_id}_new_data", uri=_asset_uri(dag_id, "new-data"),
                 watchers=[AssetWatcher(name=f"{dag_id}_new_data_queue", trigger=trigger)])


def _schedule(cron: str | None, new_data: Asset | None):
    """The cron alone, new data alone, or whichever comes first (AssetOrTimeSchedule)."""
    if new_data is None:
        return cron
    if cron is None:
        return [new_data]
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[new_data])


DOC = """
### SageMaker retraining: {name}

{description}

**[Model history of {name}](/model-history/?model={name})**: the gate metric across runs, the serving package, lineage.

Model catalog entry `{file}`: data `{data}`, target `{target}`, gate `{metric}` {direction} {threshold}, endpoint
`{endpoint}` (its changes run in pool `{pool}`), owners {owners}. The Trigger form starts from these values;
Param `algorithm` picks Linear Learner, XGBoost, k-NN or a scikit-learn script.

**prepare** (validate params, data and endpoint ownership; split; upload; name the run's resources)
→ **train** (the algorithm's training job, deferrable, re-attaches only to this run's own job) →
**register** (a new version in the endpoint's SageMaker Model Registry group, pending approval, with
its lineage) → **pin_champion** (exactly what the endpoint serves: config, model, package; waits
while it changes) → **stage** (the challenger's model, created from its package) → **score**
(mapped: a batch transform of *this run's* test rows through each model, each in its algorithm's
format; production is never asked) → **gate** (threshold and the pinned champion, on the same rows;
a model that lost is a successful run, its package Rejected) → **approve** (when the admins'
Variable `sagemaker_retrain_require_approval` or a stricter Param `require_approval` asks for it,
an assigned approver who did not trigger the run answers in *Required actions*) → **deploy**
(refuses an endpoint that no longer serves the pinned champion or a package not Approved; endpoint
config, rollback alarms; create the endpoint, or update it blue/green with canary/linear traffic
shifting and auto-rollback) → **wait_for_endpoint** (our deferrable sensor, started on the triggerer, then a smoke request) →
**publish** (history record, the served-model Asset, the config tagged verified). **restore**, the
teardown of deploy, puts the previous config back when this run's config serves unverified (decided
from the endpoint and its configs' tags); **teardown** stops this run's jobs and deletes what must
not stay; the **watcher** (ONE_FAILED) fails the run when a task failed.

Runs on the catalog's schedule (env `SAGEMAKER_RETRAIN_SCHEDULE`, when set, replaces it) or, when env
`{queue_env}` names the SQS queue of the watched prefix's S3 notifications, also when new data lands
(whichever comes first): such a run trains on the object, or the parts a `*.manifest.json` names, that arrived.
Param `on_unchanged_data` decides what data the serving model was trained on already does.

Deployment settings come from Variables {variables} (or `AIRFLOW_VAR_…` environment variables); history
records go under `PREFIX/{history_path}/`. Failures are mailed through the `smtp_default` connection to {alerts}.
"""


def _variables_doc(spec: ModelSpec) -> str:
    names = ("bucket", "role_arn", "region", "prefix")
    own = f"`{spec.variables_prefix}NAME`, else " if spec.variables_prefix else ""
    return own + ", ".join(f"`sagemaker_retrain_{n}`" for n in names)


def _doc(spec: ModelSpec) -> str:
    return DOC.format(
        name=spec.name, description=spec.description, file=spec.file, data=spec.dataset_uri,
        target=spec.target_column, metric=spec.gate_metric, threshold=spec.gate_threshold,
        direction="at most" if GATE_METRICS[spec.gate_metric] else "at least",
        endpoint=spec.endpoint_name, pool=spec.pool, owners=", ".join(spec.owners),
        queue_env=watch_queue_env(spec.dag_id), variables=_variables_doc(spec), history_path=spec.history_path,
        alerts=", ".join(spec.alert_emails) if spec.alert_emails else
        (f"Variable `{spec.variables_prefix}alert_emails`, else " if spec.variables_prefix else "")
        + "Variable `sagemaker_retrain_alert_emails`",
    )


def build_dag(spec: ModelSpec) -> DAG:
    """The retraining DAG of one catalog entry."""
    params = build_params(defaults=spec.param_defaults(PARAM_NAMES), algorithm=spec.algorithm)
    schedule = spec.schedule if SCHEDULE_OVERRIDE is None else (SCHEDULE_OVERRIDE or None)
    mail_to = recipients(spec.alert_emails, spec.variables_prefix)
    with DAG(
        dag_id=spec.dag_id,
        schedule=_schedule(schedule, _new_data_asset(spec.dag_id)),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["sagemaker", "ml", "retraining", *(t for t in spec.tags if t not in ("sagemaker", "ml", "retraining"))],
        doc_md=_doc(spec),
        # datetime.timedelta, not pendulum's Duration: a deferring task sends its timeout to the supervisor,
        # whose msgpack encoder (Airflow 3.3.2) refuses a Duration, so the task fails as it defers.
        default_args={
            "owner": ",".join(spec.owners),
            "retries": 2,
            "retry_delay": timedelta(seconds=POLL_SECONDS),
            "execution_timeout": timedelta(minutes=30),
            "on_failure_callback": [failure_callback(mail_to)],
        },
        deadline=DeadlineAlert(
            reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=10, min_runs=3),
            interval=timedelta(hours=DEADLINE_HOURS),
            callback=AsyncCallback("sagemaker_retrain.alerts.deadline_missed", kwargs={"to": mail_to}),
        ) if DEADLINE_HOURS > 0 else None,
    ) as built:
        _tasks(spec)
    # The form's Params are given once the tasks exist: an operator made in a DAG that already has Params
    # deep-copies them all, once per class of its __init__ chain, most of a parse (docs/upstream.md §6). The
    # task runner merges the DAG's Params into each task's at run time (process_params), so none is lost.
    built.params = params
    return built


def _tasks(spec: ModelSpec) -> None:
    """The pipeline's tasks, in the DAG being built."""
    served_model = Asset(name=spec.served_model_asset, uri=_asset_uri(spec.dag_id, "served-model"))

    # Not multiple_outputs: that would push each of the plan's 18 keys as an XCom, one request to the API
    # server each (about 15 ms), on every run; only the keys the operators below take are pushed.
    @task(execution_timeout=timedelta(hours=1), multiple_outputs=False)
    def prepare(params=None, run_id=None, dag_run=None, ti=None, triggering_asset_events=None) -> dict:
        """Validate params, data and endpoint ownership; upload the data set; name this run's resources."""
        from sagemaker_retrain import pipeline

        data_events = [dict(event.extra or {}) for asset, events in (triggering_asset_events or {}).items()
                       if asset.name == spec.new_data_asset for event in events]
        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        # Whether train runs again in this pass (first pass, whole-run Clear, clear of train) or keeps its
        # job (a clear of a later task): the names follow (pipeline.run_generation).
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id], task_ids=["train"])
        retrain = str(states.get(run_id, states).get("train")) != "success"
        planned = pipeline.prepare(dict(params), run_id, dag_run.run_after, PROJECT_DIR, AWS_CONN_ID,
                                   clear_number=dag_run.clear_number or 0, run_type=str(run_type),
                                   data_events=data_events, retrain=retrain, watch_prefix=spec.watch_prefix,
                                   model_settings=spec.run_settings())
        for key in OPERATOR_INPUTS:
            ti.xcom_push(key=key, value=planned[key])
        return planned

    plan = prepare()

    # [START howto_operator_sagemaker_reattaching_training]
    train = SageMakerReattachingTrainingOperator(
        task_id="train",
        config=plan["training_config"],
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        deferrable=True,
        check_interval=POLL_SECONDS,
        print_log=True,
        short_wait_seconds=SHORT_WAIT,
        # The job stops itself at MaxRuntimeInSeconds (a Param, at most 5 days); this is the backstop.
        execution_timeout=timedelta(days=5, hours=2),
    )
    # [END howto_operator_sagemaker_reattaching_training]

    @task(multiple_outputs=False)  # one XCom, the package: nothing takes its keys one by one
    def register(plan: dict, training: dict, params=None, ti=None) -> dict:
        """Register the trained model as a new version of the endpoint's model package group."""
        from sagemaker_retrain import pipeline

        return pipeline.register(plan, training["Training"], dict(params), dag_id=ti.dag_id)

    package = register(plan, train.output)

    # [START howto_operator_pin_champion]
    champion = PinChampionOperator(
        task_id="pin_champion",
        endpoint_name=plan["endpoint_name"],
        mode="{{ params.mode }}",
        poll_interval=POLL_SECONDS,
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        execution_timeout=timedelta(hours=4),
    )
    # [END howto_operator_pin_champion]

    @task
    def stage(plan: dict, training: dict, package: dict, champion: dict, params=None) -> list[dict]:
        """Create the challenger's model from its package; one scoring request per model (challenger, champion)."""
        from sagemaker_retrain import pipeline

        return pipeline.stage(plan, training["Training"], dict(params), package, champion)

    staged = stage(plan, train.output, package, champion.output)
    # [START howto_operator_sagemaker_short_wait_transform]
    # One batch transform per model, on this run's test rows (mapped: the challenger, and the champion if any).
    scores = SageMakerShortWaitTransformOperator.partial(
        task_id="score",
        aws_conn_id=AWS_CONN_ID,
        deferrable=True,
        check_interval=POLL_SECONDS,
        action_if_job_exists="timestamp",
        check_if_model_exists=False,
        short_wait_seconds=SHORT_WAIT,
        execution_timeout=timedelta(hours=3),
    ).expand_kwargs(staged)
    # [END howto_operator_sagemaker_short_wait_transform]

    @task.branch
    def gate(plan: dict, champion: dict, package: dict, params=None, ti=None) -> str:
        """Promote only a model that meets the threshold and beats the pinned champion on the same rows."""
        from sagemaker_retrain import pipeline

        result = pipeline.decide(plan, dict(params), champion, package)
        ti.xcom_push(key="deploy_config", value=result.pop("deploy_config"))
        ti.xcom_push(key="evidence", value=result)
        return "approve" if result["decision"]["deploy"] else "keep_champion"

    decision = gate(plan, champion.output, package)

    @task
    def keep_champion(plan: dict, params=None, ti=None) -> str:
        """Record a model that lost at the gate, with both scores; the serving endpoint is untouched."""
        from sagemaker_retrain import pipeline

        return pipeline.keep_champion(plan, dict(params), ti.xcom_pull(task_ids="gate", key="evidence"))

    # [START howto_operator_model_approval]
    approve = ModelApprovalOperator(task_id="approve", plan=plan, evidence=XComArg(decision.operator, key="evidence"),
                                    approvers=list(spec.approvers), require_approval=spec.approval_required,
                                    approve_task_id="deploy", reject_task_id="rejected")
    # [END howto_operator_model_approval]

    @task
    def rejected(plan: dict, params=None, ti=None) -> str:
        """Record a promotion a person rejected (or left unanswered): nothing is deployed; the run succeeds."""
        from sagemaker_retrain import pipeline

        return pipeline.rejected(plan, dict(params), ti.xcom_pull(task_ids="gate", key="evidence"),
                                 ti.xcom_pull(task_ids="approve", key="approval"))

    # [START howto_operator_sagemaker_deploy]
    deploy = SageMakerDeployOperator(
        task_id="deploy",
        config=XComArg(decision.operator, key="deploy_config"),
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        execution_timeout=timedelta(minutes=15),
        pool=spec.pool,  # one slot per endpoint, across DAGs: runs never switch one endpoint at once
    )
    # [END howto_operator_sagemaker_deploy]

    # [START howto_sensor_endpoint_deployed]
    wait_for_endpoint = EndpointDeployedSensor(
        task_id="wait_for_endpoint",
        endpoint_name=plan["endpoint_name"],
        endpoint_config_name=plan["endpoint_config_name"],
        smoke_rows=plan["smoke_features"],
        algorithm=plan["algorithm"],
        predictor_type="{{ params.predictor_type }}",
        # map_indexes named: the triggerer renders it (start_from_trigger; docs/upstream.md §9).
        deadline="{{ ti.xcom_pull(task_ids='deploy', map_indexes=-1)['wait_deadline'] }}",
        poll_interval=POLL_SECONDS,
        deferrable=True,
        start_from_trigger=True,  # the scheduler hands the wait to the triggerer: no worker slot until it ends
        aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"],
        execution_timeout=timedelta(hours=9),
    )
    # [END howto_sensor_endpoint_deployed]

    @task(outlets=[served_model])
    def publish(plan: dict, verification: dict, params=None, ti=None):
        """Record the verified model, tag its config verified; announce it (persistent mode only)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from sagemaker_retrain import pipeline

        evidence = ti.xcom_pull(task_ids="gate", key="evidence")
        published = pipeline.publish(plan, dict(params), evidence, verification,
                                     ti.xcom_pull(task_ids="approve", key="approval"))
        if params["mode"] != "persistent":
            raise AirflowSkipException(f"ephemeral run recorded at {published['history']}; its endpoint is deleted")
        yield Metadata(served_model, {"endpoint": plan["names"]["endpoint"], "model": plan["names"]["model"],
                                      "scores": published["scores"], "history": published["history"],
                                      "data": published["data"]})
        return published

    # [START howto_operator_endpoint_restore]
    # The undo of deploy: whenever deploy succeeded, put the previous config back unless this run verified
    # its own (decided from the endpoint and its configs' tags, not from any task's XCom).
    restore = EndpointRestoreOperator(
        task_id="restore", endpoint_name=plan["endpoint_name"], poll_interval=POLL_SECONDS,
        aws_conn_id=AWS_CONN_ID, region_name=plan["region"], retries=3, execution_timeout=timedelta(hours=3),
        pool=spec.pool,
    )
    # [END howto_operator_endpoint_restore]
    # [START howto_operator_run_cleanup]
    # The run's clean-up: stop its jobs, delete what must not stay (only what carries the project's tags).
    teardown = RunCleanupOperator(
        task_id="teardown", plan=plan, mode="{{ params.mode }}", aws_conn_id=AWS_CONN_ID,
        region_name=plan["region"], retries=3, execution_timeout=timedelta(hours=1),
    )
    # [END howto_operator_run_cleanup]

    # [START howto_watcher]
    @task(trigger_rule="one_failed", retries=0)
    def watcher():
        """Fail the run when any task failed (teardowns would otherwise hide it), as Airflow's system tests do."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("A task of this run failed (see the failed task's log): the run fails.")
    # [END howto_watcher]

    published = publish(plan, wait_for_endpoint.output)
    kept = keep_champion(plan)
    refused = rejected(plan)
    package >> champion
    scores >> decision >> [approve, kept]
    approve >> [deploy, refused]
    # [START howto_teardowns_and_watcher]
    deploy >> wait_for_endpoint >> published >> restore.as_teardown(setups=deploy)
    restore >> teardown
    [kept, refused, published, approve, decision, scores, staged, champion, package, train] >> teardown.as_teardown(
        setups=plan, on_failure_fail_dagrun=True)
    # Every task but the setups (Airflow wants ALL_SUCCESS right after a setup; a failed setup shows as
    # upstream_failed in the tasks after it, which the watcher sees) and the clean-up teardown, which stays a
    # leaf so that its on_failure_fail_dagrun counts (it fails only to keep a person's mark as failed).
    [t for t in plan.operator.dag.tasks if not t.is_setup and t is not teardown] >> watcher()
    # [END howto_teardowns_and_watcher]


def error_dag_id(error: CatalogError) -> str:
    """The DAG id that shows a refused catalog file: ``catalog_error_<file stem>``."""
    return "catalog_error_" + "".join(c if c.isalnum() or c in "_-." else "_" for c in Path(error.file).stem)


def build_error_dag(error: CatalogError) -> DAG:
    """A refused catalog file, visible: its DAG's page shows the error; its one task fails with it."""
    dag_id, text = error_dag_id(error), str(error)
    with DAG(
        dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
        tags=["catalog-error"],
        doc_md=(f"### Catalog file `{error.file}` was refused\n\nThe other models load as usual. Fix the file; "
                f"this DAG goes away with the error.\n\n```\n{text}\n```\n"),
        default_args={"owner": "catalog", "retries": 0},
    ) as built:
        @task(task_id="catalog_error", retries=0)
        def catalog_error(message: str):
            """Fail with the catalog's error (retrying cannot fix a file)."""
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(message)

        catalog_error(text)
    return built


def _wanted(dag_id: str) -> bool:
    """Whether this parse needs ``dag_id``'s DAG. A task process parses the file for its own DAG only
    (Airflow's parsing context names it): building the others would cost each task every model's DAG
    (about 20 ms of CPU each). The dag-processor's parse (no context) builds them all."""
    only = get_parsing_context().dag_id
    return only is None or only == dag_id


CATALOG = load_catalog(CATALOG_DIR, root=PROJECT_DIR, params=EVERY_PARAM)  # every file: the cross-checks need them all
for _spec in CATALOG.specs:
    if _wanted(_spec.dag_id):
        globals()[_spec.dag_id] = build_dag(_spec)
for _error in CATALOG.errors:
    if _wanted(error_dag_id(_error)):
        globals()[error_dag_id(_error)] = build_error_dag(_error)
