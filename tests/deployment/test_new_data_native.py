"""New data starts a run on the native deployment: S3 notification → SQS → AssetWatcher (triggerer) → run.

The harness watches ``s3://BUCKET/sagemaker-retrain/incoming/`` (``.csv`` objects and
``.manifest.json`` manifests) on a queue of the emulator; moto delivers the notifications, the
triggerer's watcher turns them into events of the Asset ``sagemaker_retrain_new_data``, the
scheduler starts a run, and ``prepare`` reads what arrived. Runs use the Params' defaults (a
data-triggered run has no conf): endpoint ``linear-learner-housing``, persistent. The emulator runs
at time scale 0 here (instant jobs and bakes); the delay from upload to run start is printed.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from urllib.parse import quote

import pytest
from native_deployment import DAG_ID, PROJECT_DIR, WATCH_PREFIX

from sagemaker_retrain import lineage

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

HOUSING = (PROJECT_DIR / "include" / "data" / "housing.csv").read_bytes()
ENDPOINT = "linear-learner-housing"  # the Param default: what a run started by new data serves
START_BOUND = 120  # seconds from upload to a run, generous (the figure is printed, not asserted)


def _data_runs(deployment) -> list[dict]:
    runs = deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=100")["dag_runs"]
    return [r for r in runs if r["run_type"] == "asset_triggered"]


def _seconds(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def _upload_and_wait(deployment, uploads: list[tuple[str, bytes]], label: str) -> dict:
    """Upload (in order), wait for exactly one new data-triggered run to finish; print the delays."""
    before = {r["dag_run_id"] for r in _data_runs(deployment)}
    s3 = deployment.s3()
    for key, body in uploads:
        s3.put_object(Bucket=deployment.bucket, Key=key, Body=body)
    uploaded = time.time()
    deadline = time.monotonic() + START_BOUND
    new: list[dict] = []
    while not new and time.monotonic() < deadline:
        new = [r for r in _data_runs(deployment) if r["dag_run_id"] not in before]
        time.sleep(0.2)
    assert len(new) == 1, f"{label}: {len(new)} runs within {START_BOUND} s\n" + deployment.log_tail("airflow-triggerer")
    run = deployment.wait_for_run(new[0]["dag_run_id"], timeout=300)
    queued, started = _seconds(run.get("queued_at")), _seconds(run.get("start_date"))
    print(f"{label}: upload -> run queued {queued - uploaded:.1f} s, -> run started {started - uploaded:.1f} s "
          f"(run {run['dag_run_id']}, {run['state']})")
    time.sleep(3)  # a second run for the same upload would be queued by now
    assert {r["dag_run_id"] for r in _data_runs(deployment)} - before == {run["dag_run_id"]}, label
    return run


@pytest.fixture(scope="module")
def watching(deployment):
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    deployment.set_time_scale(0)
    # The watcher's trigger is handed to the triggerer once the DAG is active; wait until it polls the queue.
    unpaused = time.monotonic()
    log = deployment.log_dir / "airflow-triggerer.log"
    while "SqsSensor checking for message on queue" not in log.read_text(errors="replace"):
        assert time.monotonic() - unpaused < START_BOUND, deployment.log_tail("airflow-triggerer")
        time.sleep(0.5)
    print(f"watcher polling the queue {time.monotonic() - unpaused:.1f} s after the DAG was unpaused")
    yield deployment
    deployment.set_time_scale(1.0)


def test_one_object_starts_one_run_on_it_and_the_served_model_names_its_bytes(watching):
    deployment = watching
    # Outside the prefix, and the wrong suffix: no notification, no run (checked with the next upload's run).
    run = _upload_and_wait(deployment, [
        ("sagemaker-retrain/elsewhere/housing.csv", HOUSING),
        (WATCH_PREFIX + "notes.txt", b"not data"),
        (WATCH_PREFIX + "2026-05/housing.csv", HOUSING),
    ], "one object")
    assert run["state"] == "success", deployment.task_instances(run["dag_run_id"])
    plan = deployment.xcom(run["dag_run_id"], "prepare")
    sha = hashlib.sha256(HOUSING).hexdigest()
    assert plan["dataset_uri"] == f"s3://{deployment.bucket}/{WATCH_PREFIX}2026-05/housing.csv"
    assert plan["data"]["trigger"].startswith("new data: object")
    assert plan["data"]["source"]["sha256"] == sha
    assert plan["data"]["source"]["version_id"]  # the versioned bucket's version, from the notification
    assert deployment.task_instances(run["dag_run_id"])["publish"]["state"] == "success"

    # Which data trained the model behind the endpoint, from the records alone.
    answer = lineage.data_behind_endpoint(deployment.sagemaker(), ENDPOINT, s3=deployment.s3(),
                                          bucket=deployment.bucket, prefix="sagemaker-retrain")
    assert answer["data"]["sha256"] == sha and answer["consistent"], answer
    assert answer["records"] == {"model_package": sha, "training_job": sha, "history": sha}
    assert answer["data"]["version_id"] == plan["data"]["source"]["version_id"]
    # … and the served model's Asset event says the same.
    events = deployment.api("GET", "/api/v2/assets/events?source_run_id=" + quote(run["dag_run_id"], safe=""))["asset_events"]
    served = [e for e in events if e.get("asset", {}).get("name") == "sagemaker_retrain_served_model"
              or e.get("uri") == "s3://sagemaker-retrain/served-model"]
    assert served and served[0]["extra"]["data"]["sha256"] == sha, events


def test_identical_bytes_again_are_recognised_and_skipped(watching):
    deployment = watching
    run = _upload_and_wait(deployment, [(WATCH_PREFIX + "2026-06/housing-again.csv", HOUSING)], "same bytes")
    assert run["state"] == "success"
    tis = deployment.task_instances(run["dag_run_id"])
    assert tis["prepare"]["state"] == "skipped" and tis["train"]["state"] == "skipped", tis
    assert "same sha256" in deployment.task_log(run["dag_run_id"], "prepare")
    assert (tis["prepare"].get("rendered_map_index") or "").startswith("Skipped:")


def test_a_three_part_drop_with_its_manifest_is_one_run_over_all_parts(watching):
    deployment = watching
    header, *rows = HOUSING.decode().splitlines(keepends=True)
    thirds = [rows[i::3] for i in range(3)]
    parts = [(f"sagemaker-retrain/staging/drop-7/part-{i}.csv", (header + "".join(p)).encode())
             for i, p in enumerate(thirds)]
    manifest = (WATCH_PREFIX + "drop-7.manifest.json",
                json.dumps({"parts": [f"s3://{deployment.bucket}/{k}" for k, _ in parts]}).encode())
    run = _upload_and_wait(deployment, [*parts, manifest], "three-part drop")
    assert run["state"] == "success", deployment.task_instances(run["dag_run_id"])
    plan = deployment.xcom(run["dag_run_id"], "prepare")
    source = plan["data"]["source"]
    assert [p["sha256"] for p in source["parts"]] == [hashlib.sha256(b).hexdigest() for _, b in parts]
    assert source["sha256"] == hashlib.sha256(b"".join(b for _, b in parts)).hexdigest()
    assert sum(plan["data"]["rows"].values()) == len(rows)
