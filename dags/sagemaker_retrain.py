"""Retrain SageMaker's Linear Learner, gate it against the serving model, deploy, check, clean up."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pendulum
from airflow.sdk import Asset, Metadata, XComArg, dag, task

from sagemaker_retrain.operators.endpoint import SageMakerDeployOperator
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
SERVED_MODEL = Asset(name="sagemaker_retrain_served_model", uri="s3://sagemaker-retrain/served-model")

DOC = """
### SageMaker Linear Learner retraining

The walkthrough's five steps as a pipeline: **prepare** (validate, split, upload label-first CSV)
→ **train** (Linear Learner, deferrable, re-attaches on retry) → **gate** (threshold and champion)
→ **deploy** (new model + endpoint config; create or blue/green update) → **wait_for_endpoint**
(our deferrable sensor: InService on *this run's* config, then a smoke request) → **evaluate**
(score the test split through the endpoint; metrics, predictions, plot, history)
→ **teardown** (always runs). A failed check after an update rolls the endpoint back.

Deployment settings come from Variables `sagemaker_retrain_bucket`, `sagemaker_retrain_role_arn`,
`sagemaker_retrain_region`, `sagemaker_retrain_prefix` (or `AIRFLOW_VAR_…` environment variables).
"""


@dag(
    dag_id="sagemaker_retrain",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["sagemaker", "ml", "retraining"],
    doc_md=DOC,
    params=build_params(),
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=POLL_SECONDS)},
)
def sagemaker_retrain():
    @task
    def prepare(params=None, run_id=None, dag_run=None) -> dict:
        """Validate and upload the data set; name this run's resources."""
        from sagemaker_retrain import pipeline

        return pipeline.prepare(dict(params), run_id, dag_run.run_after, PROJECT_DIR, AWS_CONN_ID)

    plan = prepare()

    train = SageMakerReattachingTrainingOperator(
        task_id="train",
        config=plan["training_config"],
        aws_conn_id=AWS_CONN_ID,
        deferrable=True,
        check_interval=POLL_SECONDS,
        print_log=True,
    )

    @task.branch
    def gate(plan: dict, training: dict, params=None, ti=None) -> str:
        """Deploy only a model that meets the threshold and beats the serving one."""
        from sagemaker_retrain import pipeline

        result = pipeline.decide(plan, training["Training"], dict(params))
        ti.xcom_push(key="deploy_config", value=result["deploy_config"])
        ti.xcom_push(key="decision", value=result["decision"])
        return "deploy" if result["decision"]["deploy"] else "keep_champion"

    decision = gate(plan, train.output)

    @task
    def keep_champion(plan: dict, training: dict, params=None, ti=None) -> str:
        """Record a model that lost at the gate; the serving endpoint is untouched."""
        from sagemaker_retrain import pipeline

        gate_decision = ti.xcom_pull(task_ids="gate", key="decision")
        metrics = {m["MetricName"]: m["Value"] for m in training["Training"].get("FinalMetricDataList", [])}
        return pipeline.record(plan, dict(params), "rejected", gate=gate_decision, training_metrics=metrics)

    deploy = SageMakerDeployOperator(
        task_id="deploy",
        config=XComArg(decision.operator, key="deploy_config"),
        aws_conn_id=AWS_CONN_ID,
    )

    wait_for_endpoint = EndpointDeployedSensor(
        task_id="wait_for_endpoint",
        endpoint_name=plan["endpoint_name"],
        endpoint_config_name=plan["endpoint_config_name"],
        smoke_rows=plan["smoke_features"],
        poll_interval=POLL_SECONDS,
        aws_conn_id=AWS_CONN_ID,
    )

    @task
    def evaluate(plan: dict, training: dict, params=None, ti=None) -> dict:
        """Score the test split through the endpoint; write metrics, predictions, plot and history."""
        from sagemaker_retrain import pipeline

        gate_result = {"decision": ti.xcom_pull(task_ids="gate", key="decision")}
        return pipeline.evaluate(plan, dict(params), training["Training"], gate_result)

    @task(outlets=[SERVED_MODEL])
    def publish(plan: dict, evaluation: dict, params=None):
        """Announce the newly served model to DAGs scheduled on the asset (persistent mode only)."""
        from airflow.sdk.exceptions import AirflowSkipException

        if params["mode"] != "persistent":
            raise AirflowSkipException("ephemeral run: its endpoint is deleted at teardown")
        yield Metadata(SERVED_MODEL, {"endpoint": plan["names"]["endpoint"], "model": plan["names"]["model"],
                                      "metrics": evaluation["metrics"], "history": evaluation["history"]})

    @task(trigger_rule="one_failed")
    def rollback(ti=None) -> str:
        """After a failed check, put the previous config back (or delete a first, failed deployment)."""
        from sagemaker_retrain import pipeline

        plan = ti.xcom_pull(task_ids="prepare")
        deployment = ti.xcom_pull(task_ids="deploy")
        return pipeline.rollback(plan, deployment, POLL_SECONDS)

    @task
    def teardown(plan: dict, params=None) -> list[str]:
        """Delete what must not stay: everything in ephemeral mode, all but serving + rollback otherwise."""
        from sagemaker_retrain import pipeline

        return pipeline.teardown(plan, dict(params), POLL_SECONDS)

    evaluated = evaluate(plan, train.output)
    rejected = keep_champion(plan, train.output)
    rolled_back = rollback()
    cleaned = teardown(plan).as_teardown(setups=plan, on_failure_fail_dagrun=True)
    decision >> [deploy, rejected]
    deploy >> wait_for_endpoint >> evaluated >> publish(plan, evaluated)
    [wait_for_endpoint, evaluated] >> rolled_back
    [rolled_back, rejected, evaluated, train] >> cleaned


sagemaker_retrain()
