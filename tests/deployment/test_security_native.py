"""Security surfaces on the native deployment: the plugin behind Airflow's login, limits via the REST API."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from native_deployment import DAG_ID, DeploymentError

pytestmark = [pytest.mark.deployment, pytest.mark.slow]


def _get(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_model_history_plugin_needs_an_airflow_login(deployment):
    deployment.wait_for_dag()
    base = f"{deployment.base_url}/model-history"
    for path in ("/", "/api/endpoints", "/api/linear-learner-housing"):
        assert _get(base + path) == 401, path
        assert _get(base + path, {"Authorization": f"Bearer {deployment.token()}"}) == 200, path
        assert _get(base + path, {"Cookie": f"_token={deployment.token()}"}) == 200, path  # what the UI sends


def test_rest_trigger_beyond_the_limits_is_refused_before_anything_is_spent(deployment):
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    runs = f"/api/v2/dags/{DAG_ID}/dagRuns"

    # Outside the form's enum: the REST API refuses the trigger itself, no run is created.
    with pytest.raises(DeploymentError, match="400"):
        deployment.api("POST", runs, {"logical_date": None, "conf": {"training_instance_type": "ml.p5.48xlarge"}})

    # Within the form's bounds but over the admins' limit: prepare fails the run, no training job.
    jobs_before = len(deployment.sagemaker().list_training_jobs(MaxResults=100)["TrainingJobSummaries"])
    run = deployment.api("POST", runs, {"logical_date": None, "conf": {"training_instance_count": 3}})
    started = time.monotonic()
    final = deployment.wait_for_run(run["dag_run_id"], timeout=300)
    assert final["state"] == "failed"
    tis = {ti["task_id"]: ti for ti in
           deployment.api("GET", f"{runs}/{run['dag_run_id']}/taskInstances")["task_instances"]}
    assert tis["prepare"]["state"] == "failed" and tis["prepare"]["try_number"] == 1  # not retried
    assert tis["train"]["state"] in (None, "upstream_failed")
    log = deployment.task_log(run["dag_run_id"], "prepare")
    assert "Param training_instance_count=3 is over the limit max_training_instance_count=2" in log
    assert len(deployment.sagemaker().list_training_jobs(MaxResults=100)["TrainingJobSummaries"]) == jobs_before
    print(f"refused run in {time.monotonic() - started:.0f} s")
