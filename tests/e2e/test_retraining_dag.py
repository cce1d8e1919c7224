"""The retraining DAG end to end against the emulator (``airflow dags test``), run after run.

The runs build on each other, as a week of retraining would: a first persistent run creates the
endpoint, a better model updates it in place while it keeps answering, a worse one is gated out,
and an ephemeral run cleans up everything it created.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from offline_aws.airflow_run import dags_test

pytestmark = pytest.mark.slow
ENDPOINT = "linear-learner-housing"
WEAK = {"epochs": 1, "learning_rate": 0.0005, "gate_threshold": 1000.0}


def _plan(result) -> dict:
    return {k.split(".", 1)[1]: v for k, v in result.xcoms.items() if k.startswith("prepare.")}


def _ok(result):
    assert result.state == "success", result.output[-6000:]


def _serving_config(aws) -> str:
    return aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


@pytest.fixture(scope="module")
def first_run(offline_aws):
    result = dags_test(offline_aws.env, conf=WEAK)
    _ok(result)
    return result


def test_first_run_creates_endpoint_and_records_metrics(offline_aws, first_run):
    plan = _plan(first_run)
    assert first_run.xcoms["deploy"]["operation"] == "create"
    endpoint = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == plan["names"]["endpoint_config"]
    evaluation = first_run.xcoms["evaluate"]
    for uri in [*evaluation["artifacts"].values(), evaluation["history"]]:
        bucket, _, key = uri[5:].partition("/")
        assert offline_aws.s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    assert set(evaluation["metrics"]) == {"rmse", "mse", "mae", "r2"}
    # The train task's log carries the job's own log lines and its final metrics.
    assert "#quality_metric: host=algo-1" in first_run.output
    assert "Final metric test:rmse" in first_run.output
    assert first_run.states["publish"] == "success"
    # The served-model Asset got an event carrying the endpoint and model, for downstream DAGs.
    with sqlite3.connect(Path(offline_aws.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        extras = [json.loads(row[0]) for row in db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            ("sagemaker_retrain_served_model",))]
    assert extras and extras[-1]["model"] == plan["names"]["model"], extras


def test_better_model_updates_in_place_with_zero_failed_calls(offline_aws, first_run):
    failures, answers, stop = [], [], threading.Event()
    row = "0.00632,18.0,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,4.98"

    def keep_invoking():
        while not stop.is_set():
            try:
                body = offline_aws.runtime.invoke_endpoint(
                    EndpointName=ENDPOINT, ContentType="text/csv", Body=row)["Body"].read()
                answers.append(body)
            except Exception as err:  # every failure counts
                failures.append(repr(err))
            time.sleep(0.02)

    before = _serving_config(offline_aws)
    loop = threading.Thread(target=keep_invoking, daemon=True)
    loop.start()
    try:
        second = dags_test(offline_aws.env)
    finally:
        stop.set()
        loop.join(timeout=10)
    _ok(second)
    plan = _plan(second)
    assert second.xcoms["gate.decision"]["deploy"] is True, second.xcoms["gate.decision"]
    assert second.xcoms["deploy"]["operation"] == "update"
    assert second.xcoms["deploy"]["previous_config_name"] == before
    assert _serving_config(offline_aws) == plan["names"]["endpoint_config"]
    assert failures == []
    assert len(answers) > 10
    # Persistent teardown keeps the serving config and the one to roll back to, nothing else.
    inventory = offline_aws.inventory()
    assert sorted(c for c in inventory["configs"] if not c.startswith(ENDPOINT + "-e")) == sorted(
        [before, plan["names"]["endpoint_config"]])

    # The recorded test RMSE is within 15% of least squares fitted on the same training split.
    train = offline_aws.read_channel(plan["data"]["channel_uris"]["train"])
    test = offline_aws.read_channel(plan["data"]["channel_uris"]["test"])
    design = np.column_stack([train[:, 1:], np.ones(len(train))])
    coef, *_ = np.linalg.lstsq(design, train[:, 0], rcond=None)
    ls_pred = np.column_stack([test[:, 1:], np.ones(len(test))]) @ coef
    ls_rmse = float(np.sqrt(np.mean((ls_pred - test[:, 0]) ** 2)))
    rmse = second.xcoms["evaluate"]["metrics"]["rmse"]
    assert abs(rmse - ls_rmse) / ls_rmse <= 0.15, (rmse, ls_rmse)


def test_worse_model_is_gated_out_and_champion_keeps_serving(offline_aws, first_run):
    champion = _serving_config(offline_aws)
    before = offline_aws.inventory()
    third = dags_test(offline_aws.env, conf=WEAK)
    _ok(third)
    decision = third.xcoms["gate.decision"]
    assert decision["deploy"] is False
    assert "does not beat" in decision["reason"]
    assert third.states["deploy"] == "skipped"
    assert third.states["keep_champion"] == "success"
    assert _serving_config(offline_aws) == champion
    assert offline_aws.inventory() == before


def test_ephemeral_run_leaves_no_sagemaker_resource(offline_aws, first_run):
    before = offline_aws.inventory()
    run = dags_test(offline_aws.env, conf={"mode": "ephemeral"})
    _ok(run)
    plan = _plan(run)
    assert plan["names"]["endpoint"] != ENDPOINT
    assert run.states["wait_for_endpoint"] == "success"
    assert len(run.xcoms["teardown"]) == 3
    assert offline_aws.inventory() == before


def test_recordio_training_data_end_to_end(offline_aws):
    run = dags_test(offline_aws.env, conf={"mode": "ephemeral", "training_content_type":
                                           "application/x-recordio-protobuf", "gate_threshold": 1000.0})
    _ok(run)
    job = _plan(run)["training_config"]
    assert {c["ChannelName"]: c["ContentType"] for c in job["InputDataConfig"]} == {
        "train": "application/x-recordio-protobuf", "validation": "application/x-recordio-protobuf",
        "test": "text/csv"}
    assert run.xcoms["evaluate"]["metrics"]["rmse"] < 6.0
