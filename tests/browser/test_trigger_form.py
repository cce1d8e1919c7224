"""A person's path through the UI: log in, open the DAG, fill the Trigger form, watch the run succeed.

Drives Debian's Chromium with Playwright against the native deployment (CeleryExecutor,
Postgres, Redis, one process per Airflow component). The screenshot of the finished run is
saved as a test artifact under artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from native_deployment import DAG_ID, PROJECT_DIR
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = PROJECT_DIR / "artifacts" / "browser"
RUN_TIMEOUT_MS = 600_000


def _runs(deployment) -> list[dict]:
    return deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=50")["dag_runs"]


def test_trigger_form_refuses_bad_value_then_runs_to_success(deployment, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    runs_before = {r["dag_run_id"] for r in _runs(deployment)}

    # Log in (SimpleAuthManager's login page; the UI is behind it).
    page.goto(deployment.base_url)
    expect(page).to_have_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(deployment.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Dags").first).to_be_visible()

    # Open the DAG and its Trigger form.
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    expect(form.get_by_text("Run Parameters")).to_be_visible()

    # Change Params: fewer epochs, ephemeral mode (a select built from the Param's enum).
    epochs = form.get_by_role("spinbutton", name="Epochs")
    epochs.fill("5000")
    epochs.blur()
    expect(epochs).to_have_value("1000")  # the Param's maximum: the field will not hold more
    epochs.fill("5")
    epochs.blur()
    form.get_by_role("combobox", name="Mode").click()
    page.get_by_role("option", name="ephemeral").click()
    expect(form.locator("input[name=element_mode]")).to_have_value("ephemeral")

    # A bad value is refused by the form: no run is created, the Param's rule is shown.
    endpoint_name = form.locator("#element_endpoint_name")
    endpoint_name.fill("not a valid name!")
    form.get_by_role("button", name="Trigger").click()
    expect(form.get_by_text(re.compile(r"Invalid input for param endpoint_name"))).to_be_visible()
    expect(form).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "trigger-form-refused.png"))
    assert {r["dag_run_id"] for r in _runs(deployment)} == runs_before

    # Fix it and trigger: the UI opens the new run. (The error toast stays over the button, so the
    # click is dispatched to the button itself rather than at its screen position.)
    endpoint_name.fill("linear-learner-browser")
    form.get_by_role("button", name="Trigger").dispatch_event("click")
    expect(page).to_have_url(re.compile(rf"/dags/{DAG_ID}/runs/"), timeout=30_000)
    run_id = page.url.rsplit("/runs/", 1)[1].split("?")[0]
    new_runs = [r["dag_run_id"] for r in _runs(deployment) if r["dag_run_id"] not in runs_before]
    assert new_runs == [run_id]
    run = deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    assert run["conf"]["epochs"] == 5
    assert run["conf"]["mode"] == "ephemeral"
    assert run["conf"]["endpoint_name"] == "linear-learner-browser"

    # Wait for the run's state badge in the UI to say Success.
    badge = page.locator("h2", has_text=run_id).locator("xpath=following-sibling::span[@data-testid='state-badge']")
    expect(badge).to_be_visible()
    try:
        expect(badge).to_have_text(re.compile("Success|Failed"), timeout=RUN_TIMEOUT_MS)
        assert badge.inner_text().strip() == "Success", deployment.all_log_tails()
        for task_id in ("train", "wait_for_endpoint", "evaluate", "teardown"):
            row = page.get_by_role("row").filter(has=page.get_by_role("link", name=task_id, exact=True))
            expect(row.get_by_test_id("state-badge")).to_have_text("Success")
    finally:
        page.screenshot(path=str(ARTIFACTS / "dag-run.png"), full_page=True)

    # The model history page (the project's UI plugin) shows the run just made, from S3.
    page.goto(f"{deployment.base_url}/model-history/")
    expect(page.get_by_role("heading", name="linear-learner-browser")).to_be_visible()
    expect(page.get_by_role("cell", name="evaluated, then deleted (ephemeral)").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "model-history.png"), full_page=True)
