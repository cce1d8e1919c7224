"""The catalog's second model (include/models/housing_lstat.yaml) end to end on the emulator.

Its DAG is the factory's, from its YAML file alone: its own target, hyperparameters, gate metric,
endpoint and served-model Asset; its lineage names its own DAG.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from offline_aws.airflow_run import dags_test
from sagemaker_retrain.catalog import load_catalog

pytestmark = pytest.mark.slow
PROJECT_DIR = Path(__file__).resolve().parents[2]
SPEC = next(s for s in load_catalog(PROJECT_DIR / "include" / "models").specs if s.name == "housing_lstat")


def test_second_model_trains_gates_deploys_and_publishes(offline_aws):
    run = dags_test(offline_aws.env, dag_id=SPEC.dag_id)
    assert run.state == "success", run.output[-6000:]
    plan = run.xcoms["prepare"]
    assert plan["endpoint_name"] == SPEC.endpoint_name == "linear-learner-lstat"
    # Its own training: its target column and the catalog's hyperparameters reached SageMaker.
    job = offline_aws.sm.describe_training_job(TrainingJobName=run.xcoms["train"]["Training"]["TrainingJobName"])
    assert job["HyperParameters"]["epochs"] == "20" and job["HyperParameters"]["mini_batch_size"] == "50"
    assert job["TrainingJobStatus"] == "Completed"
    evidence = run.xcoms["gate.evidence"]
    assert evidence["decision"]["deploy"] is True, evidence
    assert run.xcoms["deploy"]["operation"] == "create"
    endpoint = offline_aws.sm.describe_endpoint(EndpointName=SPEC.endpoint_name)
    assert endpoint["EndpointStatus"] == "InService"
    # The housing model's endpoint is untouched: this model has its own.
    assert "linear-learner-housing" not in offline_aws.inventory()["endpoints"]
    # Lineage names this model's DAG.
    package = offline_aws.sm.describe_model_package(ModelPackageName=run.xcoms["register"]["arn"])
    assert package["CustomerMetadataProperties"]["dag-id"] == SPEC.dag_id
    # Its own served-model Asset.
    with sqlite3.connect(Path(offline_aws.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        extras = [json.loads(row[0]) for row in db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            (SPEC.served_model_asset,))]
    assert extras and extras[-1]["model"] == plan["names"]["model"], extras
    # Its history in a place of its own (the catalog's default history path), where the history page reads it.
    assert SPEC.history_path == "model-history/housing_lstat"
    assert run.xcoms["publish"]["history"].startswith(
        f"s3://{plan['settings']['bucket']}/{plan['settings']['prefix']}/{SPEC.history_path}/{SPEC.endpoint_name}/")
