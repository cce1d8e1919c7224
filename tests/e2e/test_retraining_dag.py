"""The retraining DAG end to end against the emulator (``airflow dags test``), run after run.

The runs build on each other, as a week of retraining would: a first persistent run creates the
endpoint; a better model is promoted through a canary deployment while production keeps
answering; a worse one (on the same test rows) is kept out with both scores recorded; a model
answering garbage never reaches production; a canary whose alarm fires is rolled back by
SageMaker itself; a foreign endpoint is refused before any change; failures are mailed.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from offline_aws.airflow_run import dags_test
from sagemaker_retrain.config import alarm_names

pytestmark = pytest.mark.slow
ENDPOINT = "linear-learner-housing"
WEAK = {"epochs": 1, "learning_rate": 0.0005, "gate_threshold": 1000.0}
ROW = "0.00632,18.0,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,4.98"
MUTATING = ("Create", "Update", "Delete", "Stop", "AddTags")


def _plan(result) -> dict:
    return result.xcoms["prepare"]


def _ok(result):
    assert result.state == "success", result.output[-6000:]


def _teardown_label(aws, run_id: str) -> str:
    """The run's one-line outcome: the teardown's rendered map index, as the run page's task list shows it."""
    with sqlite3.connect(Path(aws.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        row = db.execute("SELECT rendered_map_index FROM task_instance WHERE run_id = ? AND task_id = 'teardown'",
                         (run_id,)).fetchone()
    return (row or [""])[0] or ""


def _scores(decision: dict) -> str:
    champion = f"champion {decision['champion']:.4g}" if decision["champion_model"] else "no champion serving"
    return f"{decision['metric']}: challenger {decision['candidate']:.4g} vs {champion}"


def _serving_config(aws, endpoint: str = ENDPOINT) -> str:
    return aws.sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]


def _mutating_calls(aws) -> dict[str, int]:
    return {op: n for op, n in aws.emulator.faults.call_counts().items() if op.startswith(MUTATING)}


class Probe:
    """Production traffic for the whole run: every answer and every failure, in order."""

    def __init__(self, aws, endpoint: str = ENDPOINT):
        self.aws, self.endpoint = aws, endpoint
        self.answers: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                body = self.aws.runtime.invoke_endpoint(EndpointName=self.endpoint, ContentType="text/csv",
                                                        Accept="application/json", Body=ROW)["Body"].read()
                self.answers.append(json.loads(body)["predictions"][0]["score"])
            except Exception as err:  # every failure counts
                self.failures.append(repr(err))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def first_run(offline_aws):
    result = dags_test(offline_aws.env, conf=WEAK)
    _ok(result)
    return result


def test_first_run_creates_endpoint_and_records_scores(offline_aws, first_run):
    plan = _plan(first_run)
    assert first_run.xcoms["deploy"]["operation"] == "create"
    endpoint = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == plan["names"]["endpoint_config"]
    assert "score_1" not in first_run.states  # nothing served yet: the challenger alone is scored
    assert first_run.xcoms["pin_champion"]["endpoint_config"] is None
    published = first_run.xcoms["publish"]
    for uri in [*published["artifacts"].values(), published["history"]]:
        bucket, _, key = uri[5:].partition("/")
        assert offline_aws.s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    assert set(published["scores"]["challenger"]) == {"rmse", "mse", "mae", "r2"}
    assert published["scores"]["champion"] is None
    # Everything the run made carries the project's ownership tags.
    arn = endpoint["EndpointArn"]
    tags = {t["Key"]: t["Value"] for t in offline_aws.sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags["sagemaker-retrain:project"] == "sagemaker-retrain"
    assert tags["sagemaker-retrain:endpoint"] == ENDPOINT
    assert tags["sagemaker-retrain:run-id"] == first_run.run_id
    assert "#quality_metric: host=algo-1" in first_run.output
    with sqlite3.connect(Path(offline_aws.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        extras = [json.loads(row[0]) for row in db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            ("sagemaker_retrain_served_model",))]
    assert extras and extras[-1]["model"] == plan["names"]["model"], extras
    # The run's outcome, from this pass's record in S3 and the endpoint (no XCom): label and note.
    assert _teardown_label(offline_aws, first_run.run_id).startswith(
        f"Promoted · {_scores(first_run.xcoms['gate.evidence']['decision'])}")
    assert f"History record: `{published['history']}`" in first_run.output
    assert (f"Now: endpoint {ENDPOINT} is InService, serving {plan['names']['endpoint_config']} "
            "(this run's, verified)") in first_run.output


def test_canary_alarm_rolls_back_by_sagemaker_and_fails_the_run(offline_aws, first_run):
    """Runs before the better model is promoted, so its (better) challenger wins the gate."""
    champion = _serving_config(offline_aws)
    alarm = alarm_names("sagemaker-retrain", ENDPOINT)["errors"]
    offline_aws.emulator.faults.configure({"alarm_during_next_bake": alarm})
    try:
        run = dags_test(offline_aws.env)  # the default model beats the weak first one
    finally:
        offline_aws.emulator.faults.clear()
        offline_aws.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test reset")
    assert run.state == "failed", run.output[-4000:]
    assert run.xcoms["gate.evidence"]["decision"]["deploy"] is True
    assert run.states["wait_for_endpoint"] == "failed"
    endpoint = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == champion
    assert alarm in endpoint["FailureReason"]
    assert endpoint["FailureReason"] in run.output  # SageMaker's own reason is the task's error
    assert "rolled back" in run.output


def test_better_model_is_promoted_by_canary_with_zero_failed_calls(offline_aws, first_run):
    before = _serving_config(offline_aws)
    with Probe(offline_aws) as probe:
        second = dags_test(offline_aws.env)
    _ok(second)
    plan = _plan(second)
    evidence = second.xcoms["gate.evidence"]
    assert evidence["decision"]["deploy"] is True, evidence
    # Both models were scored on the very same rows (this run's test split), by batch transform.
    assert evidence["rows"]["test_uri"] == plan["data"]["channel_uris"]["test"]
    assert evidence["rows"]["count"] == plan["data"]["rows"]["test"]
    assert evidence["scores"]["challenger"]["rmse"] < evidence["scores"]["champion"]["rmse"]
    jobs = {j["TransformJobName"]: j for j in offline_aws.sm.list_transform_jobs(NameContains=plan["slug"])[
        "TransformJobSummaries"]}
    assert len(jobs) == 2 and all(j["TransformJobStatus"] == "Completed" for j in jobs.values())
    assert second.xcoms["deploy"]["operation"] == "update"
    assert second.xcoms["deploy"]["previous_config_name"] == before
    endpoint = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == plan["names"]["endpoint_config"]
    routing = endpoint["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"
    assert {a["AlarmName"] for a in endpoint["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]} == set(
        alarm_names("sagemaker-retrain", ENDPOINT).values())
    assert probe.failures == []
    assert len(probe.answers) > 10
    # Persistent teardown keeps the serving config and the one to roll back to, nothing else.
    inventory = offline_aws.inventory()
    assert sorted(c for c in inventory["configs"] if not c.startswith(ENDPOINT + "-e")) == sorted(
        [before, plan["names"]["endpoint_config"]])

    # The challenger's RMSE on the test rows is within 15% of least squares fitted on the same training split.
    train = offline_aws.read_channel(plan["data"]["channel_uris"]["train"])
    test = offline_aws.read_channel(plan["data"]["channel_uris"]["test"])
    design = np.column_stack([train[:, 1:], np.ones(len(train))])
    coef, *_ = np.linalg.lstsq(design, train[:, 0], rcond=None)
    ls_pred = np.column_stack([test[:, 1:], np.ones(len(test))]) @ coef
    ls_rmse = float(np.sqrt(np.mean((ls_pred - test[:, 0]) ** 2)))
    rmse = evidence["scores"]["challenger"]["rmse"]
    assert abs(rmse - ls_rmse) / ls_rmse <= 0.15, (rmse, ls_rmse)


def test_worse_model_on_the_same_rows_keeps_the_champion_and_records_both_scores(offline_aws, first_run):
    champion = _serving_config(offline_aws)
    before = offline_aws.inventory()
    third = dags_test(offline_aws.env, conf=WEAK)
    _ok(third)
    evidence = third.xcoms["gate.evidence"]
    assert evidence["decision"]["deploy"] is False
    assert "does not beat" in evidence["decision"]["reason"]
    assert third.states["deploy"] == "skipped"
    assert third.states["keep_champion"] == "success"
    assert _serving_config(offline_aws) == champion
    assert offline_aws.inventory() == before  # the losing model was deleted again
    record = json.loads(offline_aws.s3.get_object(
        Bucket=offline_aws.bucket, Key=third.xcoms["keep_champion"].split("/", 3)[3])["Body"].read())
    assert record["outcome"] == "kept the champion"
    assert record["scores"]["challenger"]["rmse"] > record["scores"]["champion"]["rmse"]
    assert record["scored_rows"]["count"] == _plan(third)["data"]["rows"]["test"]
    assert record["scored_rows"]["split_seed"] == 42
    # Which data: the sha256 of the very bytes the run read.
    housing = (Path(__file__).resolve().parents[2] / "include" / "data" / "housing.csv").read_bytes()
    assert record["scored_rows"]["source"]["sha256"] == hashlib.sha256(housing).hexdigest()
    assert record["scored_rows"]["source"]["bytes"] == len(housing)

    # The champion the gate compared with is the package behind the serving model, read from the registry.
    serving = _serving_package(offline_aws)
    assert evidence["champion_package"]["arn"] == serving["ModelPackageArn"]
    assert serving["ModelApprovalStatus"] == "Approved"
    lost = offline_aws.sm.describe_model_package(ModelPackageName=evidence["package"]["arn"])
    assert lost["ModelApprovalStatus"] == "Rejected" and lost["ApprovalDescription"].startswith("gate: ")
    assert lost["CustomerMetadataProperties"]["gate-decision"] == "keep champion"
    assert record["approval"]["status"] == "Rejected" and record["package"]["arn"] == lost["ModelPackageArn"]
    # The run's outcome, from this pass's record in S3 and the endpoint (no XCom): label and note.
    assert _teardown_label(offline_aws, third.run_id).startswith(
        f"Kept the champion · {_scores(evidence['decision'])}")
    assert f"History record: `{third.xcoms['keep_champion']}`" in third.output
    assert f"serving {champion} (" in third.output



def test_a_failing_keep_champion_fails_the_run(offline_aws, first_run):
    """The run's state tells the truth: the history write failing is a failed run, though teardown succeeded.

    The framework decides it: the ONE_FAILED watcher below every task fails the run (no task reads states).
    """
    champion = _serving_config(offline_aws)
    offline_aws.emulator.faults.configure({"s3_error": {"key_contains": "/history/", "method": "PUT"}})
    try:
        run = dags_test(offline_aws.env, conf=WEAK)
    finally:
        offline_aws.emulator.faults.clear()
    assert run.states["keep_champion"] == "failed", run.states
    assert run.state == "failed", run.output[-3000:]
    assert run.states["teardown"] == "success" and run.states["watcher"] == "failed", run.states
    assert _serving_config(offline_aws) == champion


def _serving_package(aws, endpoint: str = ENDPOINT) -> dict:
    config = aws.sm.describe_endpoint_config(EndpointConfigName=_serving_config(aws, endpoint))
    model = aws.sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return aws.sm.describe_model_package(ModelPackageName=model["Containers"][0]["ModelPackageName"])


def test_every_run_registers_a_version_with_its_metrics_and_lineage(offline_aws, first_run):
    """Runs so far: the first (v1, promoted), the canary rolled back (v2), the better (v3, serving), the worse (v4)."""
    sm = offline_aws.sm
    summaries = sm.list_model_packages(ModelPackageGroupName=ENDPOINT, SortOrder="Ascending",
                                       MaxResults=100)["ModelPackageSummaryList"]
    packages = [sm.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in summaries]
    assert len(packages) >= 3
    assert [p["ModelPackageVersion"] for p in packages] == list(range(1, len(packages) + 1))
    assert packages[0]["ModelPackageArn"] == first_run.xcoms["register"]["arn"]
    assert packages[0]["ModelPackageArn"].endswith(f":model-package/{ENDPOINT}/1")
    group = sm.describe_model_package_group(ModelPackageGroupName=ENDPOINT)
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]}
    assert tags["sagemaker-retrain:endpoint"] == ENDPOINT
    for package in packages[:3]:
        meta = package["CustomerMetadataProperties"]
        assert meta["dataset-uri"] == "include/data/housing.csv" and len(meta["dataset-sha256"]) == 64
        assert int(meta["rows-test"]) > 0 and meta["training-job"] and meta["run-id"]
        assert meta["gate-decision"] in ("promote", "keep champion")
        assert float(meta["challenger-score"]) > 0
        spec = package["InferenceSpecification"]
        assert spec["Containers"][0]["Image"].endswith("/linear-learner:1")
        assert spec["Containers"][0]["ModelDataUrl"].endswith(f"/{meta['training-job']}/output/model.tar.gz")
        metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
        metrics = json.loads(offline_aws.s3.get_object(Bucket=offline_aws.bucket,
                                                       Key=metrics_uri.split("/", 3)[3])["Body"].read())
        assert set(metrics["challenger"]) >= {"rmse", "mae"}
    assert packages[0]["ModelApprovalStatus"] == "Approved"
    assert packages[0]["ApprovalDescription"] == "policy: no approval required"
    assert packages[0]["CustomerMetadataProperties"]["approver"] == "policy"
    # What serves was created from the registry: the serving model names its package.
    serving = _serving_package(offline_aws)
    assert serving["ModelApprovalStatus"] == "Approved"
    assert serving["CustomerMetadataProperties"]["gate-decision"] == "promote"


def test_garbage_model_never_receives_a_production_request(offline_aws, first_run):
    champion = _serving_config(offline_aws)
    offline_aws.emulator.faults.configure({"nan_weights_next_training_job": 1})
    calls_before = offline_aws.emulator.faults.call_counts()
    with Probe(offline_aws) as probe:
        run = dags_test(offline_aws.env)
    assert run.state == "failed", run.output[-4000:]
    assert run.states["gate"] == "failed"
    assert "failed its checks on the test rows" in run.output and "no finite score" in run.output
    calls = offline_aws.emulator.faults.call_counts()
    assert calls.get("UpdateEndpoint", 0) == calls_before.get("UpdateEndpoint", 0)
    assert calls.get("CreateEndpointConfig", 0) == calls_before.get("CreateEndpointConfig", 0)
    assert _serving_config(offline_aws) == champion
    assert probe.failures == [] and probe.answers
    assert all(math.isfinite(a) for a in probe.answers)
    assert len(set(probe.answers)) == 1  # one model answered: the champion


def test_foreign_endpoint_is_refused_before_any_change_and_the_failure_is_mailed(offline_aws, smtp):
    name = "someone-elses-endpoint"
    offline_aws.put_foreign_endpoint(name)
    before = _mutating_calls(offline_aws)
    run = dags_test(offline_aws.env, conf={"endpoint_name": name},
                    extra_env={"AIRFLOW_CONN_SMTP_DEFAULT": smtp.conn_uri,
                               "AIRFLOW_VAR_SAGEMAKER_RETRAIN_ALERT_EMAILS": "ml-oncall@example.com"})
    assert run.state == "failed"
    assert run.states["prepare"] == "failed"
    assert f"Endpoint {name} exists but was not created by this pipeline" in run.output
    assert "no sagemaker-retrain:endpoint tag" in run.output
    assert _mutating_calls(offline_aws) == before, "a SageMaker resource was created or changed"
    mails = smtp.wait_for(lambda m: run.run_id in m["subject"] and "prepare" in m["subject"])
    assert mails[0]["to"] == "ml-oncall@example.com"
    assert f"Endpoint {name} exists but was not created by this pipeline" in mails[0]["body"]


def test_ephemeral_run_leaves_no_sagemaker_resource(offline_aws, first_run):
    before = offline_aws.inventory()
    run = dags_test(offline_aws.env, conf={"mode": "ephemeral"})
    _ok(run)
    plan = _plan(run)
    assert plan["names"]["endpoint"] != ENDPOINT
    assert run.states["wait_for_endpoint"] == "success"
    assert "score_1" not in run.states
    assert len(run.xcoms["teardown"]["removed"]) == 3
    assert offline_aws.inventory() == before


def test_recordio_training_data_end_to_end(offline_aws):
    run = dags_test(offline_aws.env, conf={"mode": "ephemeral", "training_content_type":
                                           "application/x-recordio-protobuf", "gate_threshold": 1000.0})
    _ok(run)
    job = _plan(run)["training_config"]
    assert {c["ChannelName"]: c["ContentType"] for c in job["InputDataConfig"]} == {
        "train": "application/x-recordio-protobuf", "validation": "application/x-recordio-protobuf",
        "test": "text/csv"}
    assert run.xcoms["gate.evidence"]["scores"]["challenger"]["rmse"] < 6.0
