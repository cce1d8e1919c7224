"""The DAG on a production-shaped deployment: CeleryExecutor, Postgres, Redis, one process per component.

Triggered through the REST API as the UI does, with a conf that changes Params; the waits of
``train``, ``score`` (the challenger's batch transform, mapped instance 0) and ``wait_for_endpoint`` must be done by the
triggerer (state ``deferred``), and the gate's evaluation must land in S3.
"""

from __future__ import annotations

import json
import time

import pytest
from native_deployment import DAG_ID, PROJECT_DIR

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

ARTIFACTS = PROJECT_DIR / "artifacts" / "native-deployment"
WAITING_TASKS = ("train", "score_0", "wait_for_endpoint")


def _xcom(deployment, run_id: str, task_id: str, key: str = "return_value"):
    entry = deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
                                  f"/xcomEntries/{key}?deserialize=true")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_triggered_run_succeeds_on_celery_with_deferred_waits(deployment):
    started = time.monotonic()
    dag = deployment.wait_for_dag()
    if deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 0:
        # Untouched by the other tests sharing this deployment: paused at creation, as in docker-compose.yaml.
        assert dag["is_paused"] is True
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    conf = {"mode": "ephemeral", "epochs": 5}
    run = deployment.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    assert run["conf"] == conf

    seen: dict[str, set] = {}
    final = deployment.wait_for_run(run_id, timeout=600, seen=seen)
    tis = deployment.task_instances(run_id)
    assert final["state"] == "success", (
        {t: ti["state"] for t, ti in tis.items()}, deployment.all_log_tails())
    assert tis["publish"]["state"] == "skipped"  # ephemeral: nothing announced
    assert {tis[t]["executor"] or "" for t in ("prepare", "gate")} <= {"", "CeleryExecutor"}
    assert all(tis[t]["hostname"] for t in ("prepare", "train", "gate", "teardown"))

    # The waits were handed to the triggerer (state `deferred`), not held in a worker slot.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for task_id in WAITING_TASKS:
        log = deployment.task_log(run_id, task_id, tis[task_id]["try_number"])
        (ARTIFACTS / f"{task_id}.log").write_text(log)
        # The task log holds the triggerer's part of the attempt: its trigger started and fired.
        name, _, index = task_id.rpartition("_") if task_id.endswith("_0") else (task_id, "", "-1")
        assert f"/{name}/{index}/" in log and "Trigger fired event" in log, (
            f"{task_id} was not resumed by the triggerer; states seen {seen.get(task_id)}\n{log[-3000:]}")
        assert tis[task_id]["state"] == "success"
    # wait_for_endpoint started on the triggerer (start_from_trigger): the scheduler made its trigger, no worker
    # execution came before it, and its one worker execution was the resume (links, smoke test).
    triggerer_log = (deployment.log_dir / "airflow-triggerer.log").read_text()
    assert "Start from trigger enabled for task wait_for_endpoint" in triggerer_log
    assert "Unable to decode message" not in triggerer_log  # every pull it rendered was answered (upstream.md §9)
    wait_log = deployment.task_log(run_id, "wait_for_endpoint", tis["wait_for_endpoint"]["try_number"])
    assert "deferring to the triggerer" not in wait_log and " rows answered, scores " in wait_log
    assert f"Endpoint {_xcom(deployment, run_id, 'prepare')['names']['endpoint']} is InService" in wait_log

    # No Airflow connection (SAGEMAKER_RETRAIN_AWS_CONN_ID empty, as in docker-compose.yaml): the hooks took boto3's
    # chain without asking the API server for an undefined aws_default (a request and a warning each).
    for task_id in ("prepare", "train", "gate", "deploy", "wait_for_endpoint", "teardown"):
        log = deployment.task_log(run_id, task_id, tis[task_id]["try_number"])
        assert "Found credentials in environment variables" in log, (task_id, log[-2000:])
        assert "Unable to find AWS Connection ID" not in log, (task_id, log[-2000:])

    # The Param change reached SageMaker, and the run's results are in S3 (the emulator).
    plan = _xcom(deployment, run_id, "prepare")
    job = deployment.sagemaker().describe_training_job(TrainingJobName=plan["names"]["training_job"])
    assert job["HyperParameters"]["epochs"] == "5"
    evidence = _xcom(deployment, run_id, "gate", key="evidence")
    s3 = deployment.s3()
    for uri in evidence["artifacts"].values():
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert bucket == deployment.bucket
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    metrics = json.loads(s3.get_object(Bucket=deployment.bucket,
                                       Key=evidence["artifacts"]["metrics"].split("/", 3)[3])["Body"].read())
    assert metrics["challenger"] == pytest.approx(evidence["scores"]["challenger"])
    assert metrics["rows"] == plan["data"]["rows"]["test"]
    # Ephemeral: teardown deleted the run's endpoint (gone, or still Deleting at the emulator's pace).
    left = {e["EndpointName"]: e["EndpointStatus"] for e in deployment.sagemaker().list_endpoints()["Endpoints"]}
    assert left.get(plan["names"]["endpoint"], "Deleting") == "Deleting", left
    print(f"native deployment run {run_id}: {time.monotonic() - started:.0f} s; states seen {seen}")
