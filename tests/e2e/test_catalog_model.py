"""Every model the catalog ships (include/models/*.yaml), end to end on the emulator, from its file alone.

Per model, one run of its own DAG with the file's defaults: it trains (the file's algorithm and
hyperparameters reach SageMaker), gates, deploys to the model's own endpoint, verifies and publishes;
at the end that run's model, of the file's algorithm, serves there. A new file in the catalog is a new
case here, with no change to this test. The walkthrough's DAG (``housing.yaml``) is the one case not run
here: tests/e2e/test_retraining_dag.py runs it with its file's defaults, run after run, against a
champion (scored on the same rows, promoted through a canary, kept out when worse). Challengers of each
algorithm scored against a champion of another: tests/e2e/test_algorithms_dag.py. The models share one
emulator and one ``dags test`` process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from offline_aws.airflow_run import DagTestSession
from sagemaker_retrain import algorithms
from sagemaker_retrain.algorithms.base import hp_value
from sagemaker_retrain.catalog import load_catalog

pytestmark = pytest.mark.slow
PROJECT_DIR = Path(__file__).resolve().parents[2]
SHIPPED = load_catalog(PROJECT_DIR / "include" / "models").specs
WALKTHROUGH_DAG = "sagemaker_retrain"  # run end to end by test_retraining_dag.py (its dags_test default)
RUN_HERE = [s for s in SHIPPED if s.dag_id != WALKTHROUGH_DAG]


@pytest.fixture(scope="module")
def session(offline_aws):
    session = DagTestSession(offline_aws.env)
    yield session
    session.close()


def _ok(run):
    assert run.state == "success", run.output[-6000:]


def _serving(aws, endpoint: str) -> tuple[str, str, str]:
    """(endpoint config, model, the image its package names) the endpoint serves now."""
    config = aws.sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    model = aws.sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    container = aws.sm.describe_model(ModelName=model)
    container = container.get("PrimaryContainer") or container["Containers"][0]
    image = container.get("Image") or aws.sm.describe_model_package(
        ModelPackageName=container["ModelPackageName"])["InferenceSpecification"]["Containers"][0]["Image"]
    return config, model, image


def test_the_catalog_ships_a_model_of_each_kind():
    """The three models issue 23 asks for: Linear Learner, XGBoost, and a script-mode classifier."""
    kinds = {(s.algorithm, s.problem_type) for s in SHIPPED}
    assert {"linear-learner", "xgboost", "sklearn"} <= {algorithm for algorithm, _ in kinds}
    assert ("sklearn", "binary_classification") in kinds
    assert len({s.endpoint_name for s in SHIPPED}) == len(SHIPPED)
    assert [s.dag_id for s in SHIPPED if s not in RUN_HERE] == [WALKTHROUGH_DAG]


@pytest.mark.parametrize("spec", RUN_HERE, ids=[s.name for s in RUN_HERE])
def test_shipped_model_trains_gates_deploys_and_serves(offline_aws, session, spec):
    run = session.run(dag_id=spec.dag_id)
    _ok(run)
    plan = run.xcoms["prepare"]
    assert plan["endpoint_name"] == spec.endpoint_name and plan["algorithm"] == spec.algorithm
    assert plan["data"]["rows"]["test"] > 0
    # Its own training: the file's algorithm and hyperparameters reached SageMaker.
    job = offline_aws.sm.describe_training_job(TrainingJobName=run.xcoms["train"]["Training"]["TrainingJobName"])
    assert job["TrainingJobStatus"] == "Completed"
    assert algorithms.of_image(job["AlgorithmSpecification"]["TrainingImage"]).name == spec.algorithm
    strategy = algorithms.get(spec.algorithm)
    set_here = {hp.name: hp_value(spec.hyperparameters[hp.param]) for hp in strategy.hyperparameters
                if hp.param in spec.hyperparameters}
    set_here.update({k: json.dumps(v) for k, v in (spec.hyperparameters.get("sklearn_hyperparameters") or {}).items()})
    assert set_here and {k: job["HyperParameters"].get(k) for k in set_here} == set_here
    evidence = run.xcoms["gate.evidence"]
    assert evidence["decision"]["deploy"] is True, evidence
    assert evidence["scores"]["champion"] is None and "score_1" not in run.states
    assert run.xcoms["deploy"]["operation"] == "create" and run.states["publish"] == "success"
    config, model, image = _serving(offline_aws, spec.endpoint_name)
    assert config == plan["names"]["endpoint_config"] and algorithms.of_image(image).name == spec.algorithm
    assert len(run.xcoms["wait_for_endpoint"]["smoke_scores"]) > 0
    # Lineage names this model's DAG; its own served-model Asset.
    package = offline_aws.sm.describe_model_package(ModelPackageName=run.xcoms["register"]["arn"])
    assert package["CustomerMetadataProperties"]["dag-id"] == spec.dag_id
    with sqlite3.connect(Path(offline_aws.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        extras = [json.loads(row[0]) for row in db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            (spec.served_model_asset,))]
    assert extras and extras[-1]["model"] == plan["names"]["model"], extras
    # Its history in a place of its own (the catalog's default history path), where the history page reads it.
    assert spec.history_path == f"model-history/{spec.name}"
    assert run.xcoms["publish"]["history"].startswith(
        f"s3://{plan['settings']['bucket']}/{plan['settings']['prefix']}/{spec.history_path}/{spec.endpoint_name}/")
    # Every other endpoint is another model's: each model kept to its own.
    others = {s.endpoint_name for s in SHIPPED if s.name != spec.name}
    served = {e for e in offline_aws.inventory()["endpoints"] if not e.startswith(spec.endpoint_name)}
    assert served <= others
