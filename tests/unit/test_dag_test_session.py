"""The long-lived ``dags test`` session runs each run on its own copy of the parsed DAG, so one run's conf
never becomes the next run's default (``offline_aws.airflow_run.fresh_copy``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airflow.sdk import DAG
from airflow.sdk.definitions.param import process_params

from offline_aws.airflow_run import fresh_copy

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "sagemaker_retrain.py"


def _parsed(dag_id: str = "sagemaker_retrain") -> DAG:
    spec = importlib.util.spec_from_file_location("dag_file_for_session_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if isinstance(v, DAG) and v.dag_id == dag_id)


def _mode(dag: DAG, conf: dict) -> str:
    return process_params(dag, dag.get_task("prepare"), conf, suppress_exception=False)["mode"]


def test_a_runs_conf_does_not_become_the_next_runs_default():
    dag = _parsed()
    assert _mode(fresh_copy(dag), {"mode": "ephemeral"}) == "ephemeral"
    assert _mode(fresh_copy(dag), {}) == "persistent"


def test_without_the_copy_airflow_keeps_the_conf_on_the_dags_params():
    # why the copy exists: on the shared parsed DAG, the first run's conf is the second run's default
    dag = _parsed()
    assert _mode(dag, {"mode": "ephemeral"}) == "ephemeral"
    assert _mode(dag, {}) == "ephemeral"


def test_the_sqlite_metadata_file_waits_for_another_writer(tmp_path):
    """Ten `dags test` processes write one SQLite file at once (the load scenario): SQLite's 5 s default lock
    wait is not enough on a busy machine; a PostgreSQL deployment gets no SQLite argument."""
    import importlib

    from offline_aws.airflow_run import airflow_env

    env = airflow_env(DAG_FILE.parents[1], tmp_path, {}, "bucket")
    module, _, name = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"].rpartition(".")
    assert getattr(importlib.import_module(module), name)["timeout"] >= 30
    on_postgres = airflow_env(DAG_FILE.parents[1], tmp_path, {}, "bucket",
                              extra={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://a@h/db"})
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in on_postgres
