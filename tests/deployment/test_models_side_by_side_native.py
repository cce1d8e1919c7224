"""Two models of the catalog at once on the native deployment: each its own DAG, data and endpoint.

The walkthrough's housing model (Linear Learner, DAG ``sagemaker_retrain``) and the breast cancer
classifier (the team's scikit-learn script, DAG ``retrain_breast_cancer``) are triggered together,
ephemeral (each deploys to an endpoint of its own run, then deletes it). Both must succeed, with their
runs going on at the same time: runs of different endpoints do not wait on each other (each endpoint
has its own pool; ``max_active_runs`` is per DAG). The wall time of the pair and of each run
is printed (emulator at time scale 0 for the test).
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from native_deployment import EMULATOR_TIME_SCALE

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

MODELS = ("sagemaker_retrain", "retrain_breast_cancer")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _wait_for(deployment, dag_id: str, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"{dag_id} run {run_id} not finished in {timeout:.0f} s\n" + deployment.all_log_tails())


def test_two_models_run_side_by_side(deployment):
    for dag_id in MODELS:  # the dag-processor parsed every DAG of the catalog's file
        deployment.wait_for_dag(dag_id=dag_id)
        deployment.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    deployment.set_time_scale(0)  # instant jobs: the test is about the runs, not SageMaker's pace
    try:
        started = time.monotonic()
        runs = {dag_id: deployment.api("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                       {"logical_date": None, "conf": {"mode": "ephemeral"}})["dag_run_id"]
                for dag_id in MODELS}
        finished = {dag_id: _wait_for(deployment, dag_id, run_id) for dag_id, run_id in runs.items()}
        wall = time.monotonic() - started
    finally:
        deployment.set_time_scale(EMULATOR_TIME_SCALE)
    for dag_id, run in finished.items():
        states = {ti["task_id"]: ti["state"] for ti in deployment.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{runs[dag_id]}/taskInstances")["task_instances"]}
        assert run["state"] == "success", (dag_id, states, deployment.all_log_tails())
        assert states["wait_for_endpoint"] == "success" and states["teardown"] == "success", (dag_id, states)

    # the two runs ran at the same time (neither queued behind the other), each on its own endpoint
    spans = {dag_id: (_seconds(run["start_date"]), _seconds(run["end_date"])) for dag_id, run in finished.items()}
    (a_start, a_end), (b_start, b_end) = spans.values()
    assert a_start < b_end and b_start < a_end, f"the two runs did not overlap: {spans}"
    plans = {dag_id: deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{runs[dag_id]}/taskInstances/prepare"
                                           f"/xcomEntries/return_value?deserialize=true")["value"] for dag_id in MODELS}
    endpoints = {dag_id: (plan if isinstance(plan, dict) else json.loads(plan))["names"]["endpoint"]
                 for dag_id, plan in plans.items()}
    assert len(set(endpoints.values())) == 2, endpoints
    per_run = {dag_id: round(end - start, 1) for dag_id, (start, end) in spans.items()}
    print(f"two models side by side: both succeeded in {wall:.1f} s (each run: {per_run}); endpoints {endpoints}")
