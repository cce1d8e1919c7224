"""Human approval on the production-shaped deployment: the run waits for a person, who answers
through the REST API the UI's *Required actions* form uses.

With ``require_approval=yes`` the ``approve`` task parks in ``awaiting_input`` (no worker slot,
no trigger) until ``PATCH …/taskInstances/approve/-1/hitlDetails`` answers it. Approve: the model
package becomes Approved (the approver named) and the run deploys it. Reject: the package is
Rejected with the approver and the comment, nothing is deployed, and the run succeeds.

Separation of duties: ``operator`` (role User) triggers; with Variable ``sagemaker_retrain_approvers``
naming ``admin`` the operator's own answer is refused by Airflow (403, not an assigned user) and the
request stays pending; an admin who triggered a run cannot approve it either (recorded as a rejection).
"""

from __future__ import annotations

import time

import pytest
from native_deployment import DAG_ID, OPERATOR_USER, DeploymentError

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


APPROVERS = "sagemaker_retrain_approvers"


def _set_approvers(deployment, value: str | None) -> None:
    """What an Op does in Admin → Variables."""
    try:
        deployment.api("DELETE", f"/api/v2/variables/{APPROVERS}")
    except DeploymentError:
        pass  # not set
    if value is not None:
        deployment.api("POST", "/api/v2/variables", {"key": APPROVERS, "value": value})


@pytest.fixture(scope="module")
def unpaused(deployment):
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    _set_approvers(deployment, "admin")
    yield deployment
    _set_approvers(deployment, None)


def test_approved_through_the_rest_api_then_deployed(unpaused):
    deployment = unpaused
    run_id = deployment.trigger({**CONF, **WEAK}, user=OPERATOR_USER)
    tis = _wait_for_approval_request(deployment, run_id)
    assert tis["deploy"]["state"] in (None, "none", "")  # nothing deployed while it waits
    time.sleep(3)  # still waiting: no answer, no timeout
    assert deployment.task_instances(run_id)["approve"]["state"] in WAITING
    request = deployment.api("GET", _hitl_path(run_id))
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert request["subject"].startswith("Promote model version") and "| score |" in request["body"]
    assert "/model-history/plot?uri=" in request["body"]
    assert _package(deployment, run_id)["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["assigned_users"] == [{"id": "admin", "name": "admin"}]
    # The operator who triggered it may not answer: Airflow refuses, the request stays pending.
    with pytest.raises(DeploymentError, match="-> 403"):
        deployment.api("PATCH", _hitl_path(run_id), {"chosen_options": ["Approve"], "params_input": {"comment": "mine"}},
                       user=OPERATOR_USER)
    assert deployment.task_instances(run_id)["approve"]["state"] in WAITING

    answer = deployment.api("PATCH", _hitl_path(run_id),
                            {"chosen_options": ["Approve"], "params_input": {"comment": "ship it"}})
    assert answer["responded_by"]["name"] == "admin"
    final = deployment.wait_for_run(run_id, timeout=600)
    tis = deployment.task_instances(run_id)
    assert final["state"] == "success", ({t: ti["state"] for t, ti in tis.items()}, deployment.all_log_tails())
    assert tis["deploy"]["state"] == "success" and tis["rejected"]["state"] == "skipped"
    package = _package(deployment, run_id)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "Approved by admin: ship it"
    sm = deployment.sagemaker()
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["Containers"][0]["ModelPackageName"] == package["ModelPackageArn"]


def test_rejected_deploys_nothing_and_the_run_succeeds(unpaused):
    deployment = unpaused
    sm = deployment.sagemaker()
    serving = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    run_id = deployment.trigger(CONF, user=OPERATOR_USER)
    _wait_for_approval_request(deployment, run_id)
    deployment.api("PATCH", _hitl_path(run_id), {"chosen_options": ["Reject"], "params_input": {"comment": "drift"}})
    final = deployment.wait_for_run(run_id, timeout=600)
    tis = deployment.task_instances(run_id)
    assert final["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert tis["deploy"]["state"] == "skipped" and tis["rejected"]["state"] == "success"
    package = _package(deployment, run_id)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"] == "Rejected by admin: drift"
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == serving
    record_uri = deployment.xcom(run_id, "rejected")
    record = deployment.s3().get_object(Bucket=deployment.bucket, Key=record_uri.split("/", 3)[3])["Body"].read()
    assert b'"rejected at approval"' in record and b'"Rejected by admin: drift"' in record
    # The run page says who rejected it, not "Ended without a decision" (the teardown's label).
    labels = [ti.get("rendered_map_index") or "" for ti in tis.values()]
    assert any(label.startswith("Rejected by admin: drift") for label in labels), labels


def test_the_person_who_triggered_a_run_cannot_approve_it(unpaused):
    """Without the Variable anyone who may edit the run may answer, but the triggering user's
    Approve is recorded as a rejection with that reason; nothing is deployed."""
    deployment = unpaused
    _set_approvers(deployment, None)
    try:
        sm = deployment.sagemaker()
        serving = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
        run_id = deployment.trigger(CONF)  # the admin triggers
        _wait_for_approval_request(deployment, run_id)
        assert deployment.api("GET", _hitl_path(run_id))["assigned_users"] == []
        deployment.api("PATCH", _hitl_path(run_id), {"chosen_options": ["Approve"], "params_input": {"comment": "ok"}})
        final = deployment.wait_for_run(run_id, timeout=600)
        tis = deployment.task_instances(run_id)
        assert final["state"] == "success" and tis["deploy"]["state"] == "skipped", {t: ti["state"] for t, ti in tis.items()}
        package = _package(deployment, run_id)
        assert package["ModelApprovalStatus"] == "Rejected"
        assert package["ApprovalDescription"] == "Rejected: admin triggered this run and may not approve it"
        assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == serving
    finally:
        _set_approvers(deployment, "admin")
