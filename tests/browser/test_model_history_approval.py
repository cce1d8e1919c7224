"""A person approves a model in the UI and sees it on the model history page.

Log in, open Browse → Model history from the nav (every model of the catalog, each linked to its DAG;
the chart: one point per run), approve a run
that waits in the task's Required actions form, watch the run finish and the chart gain the
promoted, serving point; the page's own URL without a login is refused. Screenshots under
artifacts/browser/.
"""

from __future__ import annotations

import time

import pytest
from native_deployment import DAG_ID, OPERATOR_USER, PROJECT_DIR
from playwright.sync_api import expect

from sagemaker_retrain.catalog import load_catalog

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = PROJECT_DIR / "artifacts" / "browser"
ENDPOINT = "browser-approval"
CONF = {"endpoint_name": ENDPOINT, "require_approval": "yes", "gate_threshold": 1000.0,
        "deployment_strategy": "all_at_once", "bake_seconds": 0, "termination_wait_seconds": 0}


def _wait_for_state(deployment, run_id: str, task_id: str, states: tuple[str, ...], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (deployment.task_instances(run_id).get(task_id) or {}).get("state") in states:
            return
        time.sleep(1)
    raise AssertionError(f"{task_id} never reached {states}\n" + deployment.all_log_tails())


def _history_frame(page, deployment, every_model: bool = False):
    page.goto(f"{deployment.base_url}/dags")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Model history").click()
    frame = page.frame_locator("iframe").first
    frame.get_by_role("heading", name="Model history").wait_for(timeout=60_000)
    if every_model:  # the admin reads every model of the catalog: a section and a DAG link each
        models = load_catalog(PROJECT_DIR / "include" / "models").specs
        assert len(models) >= 2
        expect(frame.locator("h2.model")).to_have_count(len(models))
        for model in models:
            expect(frame.locator(f"#model-{model.name} a[href='/dags/{model.dag_id}']")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "model-history-models.png"), full_page=True)
    frame.get_by_role("link", name=ENDPOINT).first.click()
    return frame


def test_approve_in_the_ui_and_see_the_history(deployment, page, browser, log_in):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    log_in(page)

    # A first run, approved through the API, so the chart has a point before the one approved here.
    # Triggered by the operator (role User): the admin, who did not trigger them, approves.
    first = deployment.trigger({**CONF, "epochs": 1, "learning_rate": 0.0005}, user=OPERATOR_USER)  # weak
    _wait_for_state(deployment, first, "approve", ("awaiting_input", "deferred"))
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{first}/taskInstances/approve/-1/hitlDetails",
                   {"chosen_options": ["Approve"], "params_input": {"comment": "first"}})
    assert deployment.wait_for_run(first)["state"] == "success"

    second = deployment.trigger(CONF, user=OPERATOR_USER)
    _wait_for_state(deployment, second, "approve", ("awaiting_input", "deferred"))

    frame = _history_frame(page, deployment, every_model=True)
    expect(frame.locator("svg.chart .point-challenger")).to_have_count(1)
    expect(frame.locator("svg.chart .point-serving")).to_have_count(1)
    expect(frame.locator(".serving-model")).to_contain_text("v1")
    page.screenshot(path=str(ARTIFACTS / "model-history-before.png"), full_page=True)

    # The Required actions form of the waiting run: both scores and the gate's reason, then Approve.
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs/{second}/tasks/approve/required_actions")
    expect(page.get_by_text("Promote model version 2").first).to_be_visible(timeout=60_000)
    expect(page.get_by_role("cell", name="score").first).to_be_visible()
    expect(page.get_by_text("beats the serving model").first).to_be_visible()
    page.locator("#element_comment").fill("better on the same rows")  # the form field of the Param "comment"
    page.screenshot(path=str(ARTIFACTS / "required-action.png"), full_page=True)
    page.get_by_role("button", name="Approve").click()
    assert deployment.wait_for_run(second)["state"] == "success"
    package = deployment.sagemaker().describe_model_package(ModelPackageName=deployment.xcom(second, "register")["arn"])
    assert package["ModelApprovalStatus"] == "Approved" and package["ApprovalDescription"] == "Approved by admin: better on the same rows"

    frame = _history_frame(page, deployment)
    expect(frame.locator("svg.chart .point-challenger")).to_have_count(2)
    expect(frame.locator("svg.chart .point-promoted")).to_have_count(2)
    expect(frame.locator(".serving-model")).to_contain_text("v2")
    expect(frame.get_by_text("Approved by admin: better on the same rows").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "model-history.png"), full_page=True)

    # The page itself, without a login: refused.
    anonymous = browser.new_context()
    try:
        response = anonymous.new_page().goto(f"{deployment.base_url}/model-history/")
        assert response.status in (401, 403) or "/auth/login" in response.url
    finally:
        anonymous.close()
