"""Human approval on the production-shaped deployment: the run waits for a person, who answers
through the REST API the UI's *Required actions* form uses.

With ``require_approval=yes`` the ``approve`` task parks in ``awaiting_input`` (no worker slot,
no trigger) until ``PATCH …/taskInstances/approve/-1/hitlDetails`` answers it. Approve: the model
package becomes Approved (the approver named) and the run deploys it. Reject: the package is
Rejected with the approver and the comment, nothing is deployed, and the run succeeds.
"""

from __future__ import annotations

import time

import pytest
from native_deployment import DAG_ID, DeploymentError

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

ENDPOINT = "approval-native"
CONF = {"endpoint_name": ENDPOINT, "require_approval": "yes", "gate_threshold": 1000.0,
        "bake_seconds": 0, "termination_wait_seconds": 0, "deployment_strategy": "all_at_once"}
WEAK = {"epochs": 1, "learning_rate": 0.0005}  # the first model is weak: the next one (defaults) beats it
WAITING = ("awaiting_input", "deferred")


def _hitl_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"


def _wait_for_approval_request(deployment, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = deployment.task_instances(run_id)
        state = (tis.get("approve") or {}).get("state")
        if state in WAITING:
            return tis
        run = deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            raise AssertionError(f"run ended before asking: {({t: ti['state'] for t, ti in tis.items()})}")
        time.sleep(1)
    raise DeploymentError(f"approve never waited in {timeout} s\n" + deployment.all_log_tails())


def _package(deployment, run_id: str) -> dict:
    arn = deployment.xcom(run_id, "register")["arn"]
    return deployment.sagemaker().describe_model_package(ModelPackageName=arn)


@pytest.fixture(scope="module")
def unpaused(deployment):
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    return deployment


def test_approved_through_the_rest_api_then_deployed(unpaused):
    deployment = unpaused
    run_id = deployment.trigger({**CONF, **WEAK})
    tis = _wait_for_approval_request(deployment, run_id)
    assert tis["deploy"]["state"] in (None, "none", "")  # nothing deployed while it waits
    time.sleep(3)  # still waiting: no answer, no timeout
    assert deployment.task_instances(run_id)["approve"]["state"] in WAITING
    request = deployment.api("GET", _hitl_path(run_id))
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert request["subject"].startswith("Promote model version") and "| score |" in request["body"]
    assert "/model-history/plot?uri=" in request["body"]
    assert _package(deployment, run_id)["ModelApprovalStatus"] == "PendingManualApproval"

    answer = deployment.api("PATCH", _hitl_path(run_id),
                            {"chosen_options": ["Approve"], "params_input": {"comment": "ship it"}})
    assert answer["responded_by"]["name"] == "admin"
    final = deployment.wait_for_run(run_id, timeout=600)
    tis = deployment.task_instances(run_id)
    assert final["state"] == "success", ({t: ti["state"] for t, ti in tis.items()}, deployment.all_log_tails())
    assert tis["deploy"]["state"] == "success" and tis["rejected"]["state"] == "skipped"
    package = _package(deployment, run_id)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"].startswith("approved by admin") and "ship it" in package["ApprovalDescription"]
    sm = deployment.sagemaker()
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["Containers"][0]["ModelPackageName"] == package["ModelPackageArn"]


def test_rejected_deploys_nothing_and_the_run_succeeds(unpaused):
    deployment = unpaused
    sm = deployment.sagemaker()
    serving = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    run_id = deployment.trigger(CONF)
    _wait_for_approval_request(deployment, run_id)
    deployment.api("PATCH", _hitl_path(run_id), {"chosen_options": ["Reject"], "params_input": {"comment": "drift"}})
    final = deployment.wait_for_run(run_id, timeout=600)
    tis = deployment.task_instances(run_id)
    assert final["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert tis["deploy"]["state"] == "skipped" and tis["rejected"]["state"] == "success"
    package = _package(deployment, run_id)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"] == "rejected by admin: drift"
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == serving
    record_uri = deployment.xcom(run_id, "rejected")
    record = deployment.s3().get_object(Bucket=deployment.bucket, Key=record_uri.split("/", 3)[3])["Body"].read()
    assert b'"rejected at approval"' in record and b"drift" in record
