"""A person's path through the UI: the Trigger form's sections and refusals, then the run page's outcome.

Drives Debian's Chromium with Playwright against the native deployment (CeleryExecutor,
Postgres, Redis, one process per Airflow component). Screenshots are saved as test artifacts
under artifacts/browser/: trigger-form-sections.png, trigger-form-refused.png,
run-refused-multiclass.png, dag-run.png, model-history.png, run-outcome.png, run-outcome-note.png.

The tests run in file order and share the deployment: the ephemeral run (form) comes before the
two persistent runs (API) whose second one has a champion to compare with.
"""

from __future__ import annotations

import re
import time

import pytest
from native_deployment import DAG_ID, PROJECT_DIR, DeploymentError
from playwright.sync_api import expect

from sagemaker_retrain.outcome import API_CONN_ID
from sagemaker_retrain.params import COLLAPSED_SECTIONS, ESSENTIALS, build_params

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = PROJECT_DIR / "artifacts" / "browser"
RUN_TIMEOUT_MS = 600_000
PERSISTENT_ENDPOINT = "linear-learner-browser-p"
# The machine may be busy (other suites): give the UI longer than Playwright's 5 s to render.
expect.set_options(timeout=20_000)
FAST_PROMOTION = {"bake_seconds": 0, "termination_wait_seconds": 0, "deployment_strategy": "all_at_once"}


def _runs(deployment) -> list[dict]:
    return deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=50")["dag_runs"]


@pytest.fixture(scope="module")
def ready(deployment):
    """The DAG unpaused, and the API connection the outcome note is written with (removed afterwards)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    connection = {"connection_id": API_CONN_ID, "conn_type": "http", "host": deployment.base_url,
                  "login": "admin", "password": deployment.password}
    try:
        deployment.api("POST", "/api/v2/connections", connection)
    except DeploymentError:  # left by an earlier session of the same deployment
        deployment.api("PATCH", f"/api/v2/connections/{API_CONN_ID}", connection)
    yield deployment
    deployment.api("DELETE", f"/api/v2/connections/{API_CONN_ID}")


def _open_form(page, deployment):
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    expect(form.get_by_text(ESSENTIALS)).to_be_visible()
    return form


def _label(form, title: str):
    """A field's label (a required field's label ends with an asterisk)."""
    return form.locator("label").filter(has_text=re.compile(rf"^{re.escape(title)}\W*$"))


def _open_section(form, name: str) -> None:
    form.get_by_role("button", name=name).click()


def _choose(page, form, title: str, option: str) -> None:
    form.get_by_role("combobox", name=title).click()
    page.get_by_role("option", name=option, exact=True).click()


def _trigger_and_open_run(page, form, deployment, runs_before: set[str]) -> str:
    # The click is dispatched to the button itself: an earlier error toast may lie over it.
    form.get_by_role("button", name="Trigger", exact=True).dispatch_event("click")
    expect(page).to_have_url(re.compile(rf"/dags/{DAG_ID}/runs/"), timeout=30_000)
    run_id = page.url.rsplit("/runs/", 1)[1].split("?")[0]
    assert [r["dag_run_id"] for r in _runs(deployment) if r["dag_run_id"] not in runs_before] == [run_id]
    return run_id


def _wait_for_end(page, run_id: str) -> str:
    badge = page.locator("h2", has_text=run_id).locator("xpath=following-sibling::span[@data-testid='state-badge']")
    expect(badge).to_be_visible(timeout=60_000)
    expect(badge).to_have_text(re.compile("Success|Failed"), timeout=RUN_TIMEOUT_MS)
    return badge.inner_text().strip()


def _task_row(page, task_id: str):
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=task_id, exact=True))


def _open_note(page):
    """The run's note as a person sees it on opening the run page (rendered markdown)."""
    page.reload()
    page.get_by_role("button", name="Edit note", exact=True).first.click()
    note = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name="Dag Run Note"))
    expect(note.get_by_role("button", name="Edit", exact=True)).to_be_visible()  # shown, not being edited
    return note


def _wait_for_run_api(deployment, run_id: str, timeout: float = RUN_TIMEOUT_MS / 1000) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not end: {deployment.all_log_tails()}")


def test_form_has_sections_and_names_the_field_a_bad_value_breaks(ready, page, log_in):
    deployment = ready
    runs_before = {r["dag_run_id"] for r in _runs(deployment)}
    log_in(page)
    form = _open_form(page, deployment)

    # Essentials open (data set ... endpoint name); every other section is there, collapsed.
    for title in ("Data set", "Target column", "Predictor type", "Number of classes", "Gate metric",
                  "Gate threshold", "Mode", "Endpoint name"):
        expect(_label(form, title)).to_be_visible()
    expect(form.get_by_text("multiclass_classifier only, and then required")).to_be_visible()
    # The housing model's form: its own algorithm's Training section, not the other algorithms'.
    shown = {p.schema["section"] for p in build_params(algorithm="linear-learner").values()}
    for section in COLLAPSED_SECTIONS:
        button = form.get_by_role("button", name=section)
        expect(button).to_be_visible() if section in shown else expect(button).to_have_count(0)
    for hidden in ("Epochs", "Training instances", "Canary share (%)", "Test share"):
        expect(form.get_by_role("spinbutton", name=hidden)).to_be_hidden()
    page.set_viewport_size({"width": 1400, "height": 2300})  # the whole dialog: essentials and sections
    page.screenshot(path=str(ARTIFACTS / "trigger-form-sections.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})

    # The browser enforces a number's bounds as you leave the field.
    _open_section(form, "Training (Linear Learner hyperparameters)")
    epochs = form.get_by_role("spinbutton", name="Epochs")
    epochs.fill("5000")
    epochs.blur()
    expect(epochs).to_have_value("1000")  # the Param's maximum: the field will not hold more
    expect(_label(form, "Data set")).to_be_hidden()  # one section open at a time

    # A value the browser cannot check (a pattern) is refused by the API: no run, field and rule named.
    _open_section(form, ESSENTIALS)
    form.locator("#element_endpoint_name").fill("not a valid name!")
    form.get_by_role("button", name="Trigger", exact=True).click()
    alert = form.get_by_test_id("error-alert")
    expect(alert).to_contain_text("Invalid input for param endpoint_name")
    expect(alert).to_contain_text("Endpoint name")
    expect(alert).to_contain_text("Letters, digits and hyphens")
    expect(form).to_be_visible()
    alert.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "trigger-form-refused.png"))
    assert {r["dag_run_id"] for r in _runs(deployment)} == runs_before


def test_multiclass_without_num_classes_is_refused_at_the_start_naming_both_fields(ready, page, log_in):
    deployment = ready
    runs_before = {r["dag_run_id"] for r in _runs(deployment)}
    log_in(page)
    form = _open_form(page, deployment)
    _choose(page, form, "Predictor type", "multiclass_classifier")
    _choose(page, form, "Gate metric", "test:multiclass_accuracy")
    run_id = _trigger_and_open_run(page, form, deployment, runs_before)

    assert _wait_for_end(page, run_id) == "Failed"
    refused = _task_row(page, "prepare")
    expect(refused).to_contain_text(re.compile(r"Refused: Param num_classes .* predictor_type"))
    note = _open_note(page)
    expect(note).to_contain_text("Refused before anything was spent")
    expect(note).to_contain_text("num_classes")
    expect(note).to_contain_text("predictor_type is multiclass_classifier")
    page.screenshot(path=str(ARTIFACTS / "run-refused-multiclass.png"))
    tis = deployment.task_instances(run_id)
    assert (tis["prepare"]["try_number"], tis["train"]["state"]) == (1, "upstream_failed")  # no retry, no job


def test_ephemeral_run_from_the_form_shows_its_outcome(ready, page, log_in):
    deployment = ready
    runs_before = {r["dag_run_id"] for r in _runs(deployment)}
    log_in(page)
    form = _open_form(page, deployment)
    _choose(page, form, "Mode", "ephemeral")
    expect(form.locator("input[name=element_mode]")).to_have_value("ephemeral")
    form.locator("#element_endpoint_name").fill("linear-learner-browser")
    _open_section(form, "Training (Linear Learner hyperparameters)")
    epochs = form.get_by_role("spinbutton", name="Epochs")
    epochs.fill("5")
    epochs.blur()
    run_id = _trigger_and_open_run(page, form, deployment, runs_before)
    run = deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    assert (run["conf"]["epochs"], run["conf"]["mode"], run["conf"]["endpoint_name"]) == (
        5, "ephemeral", "linear-learner-browser")

    try:
        assert _wait_for_end(page, run_id) == "Success", deployment.all_log_tails()
        for task_id in ("train", "score", "gate", "wait_for_endpoint", "teardown"):
            expect(_task_row(page, task_id).get_by_test_id("state-badge")).to_have_text("Success")
        expect(_task_row(page, "publish").get_by_test_id("state-badge")).to_have_text("Skipped")
        expect(_task_row(page, "teardown")).to_contain_text(
            re.compile(r"Evaluated, then deleted \(ephemeral\) · test:mse: challenger [0-9.]+ vs no champion"))
    finally:
        page.screenshot(path=str(ARTIFACTS / "dag-run.png"), full_page=True)

    # The task page's Details tab shows the provider's console links (extra links, registered in provider_info).
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs/{run_id}/tasks/train/details")
    expect(page.get_by_role("link", name="SageMaker Training Job")).to_be_visible(timeout=30000)
    href = page.get_by_role("link", name="SageMaker Training Job").get_attribute("href")
    assert href.startswith("https://console.aws.amazon.com/sagemaker/home?region=") and "/jobs/" in href, href
    page.screenshot(path=str(ARTIFACTS / "task-console-links.png"), full_page=True)

    # The model history page (the project's UI plugin) shows the run just made, from S3.
    page.goto(f"{deployment.base_url}/model-history/")
    expect(page.get_by_role("heading", name="linear-learner-browser", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="evaluated, then deleted (ephemeral)").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "model-history.png"), full_page=True)


def test_run_page_shows_both_scores_and_working_links(ready, page, log_in):
    deployment = ready
    conf = {"endpoint_name": PERSISTENT_ENDPOINT, "epochs": 5, **FAST_PROMOTION}
    first = _wait_for_run_api(deployment, deployment.trigger(conf))
    assert first["state"] == "success", deployment.all_log_tails()
    # A threshold nobody meets: the challenger is scored against the champion now serving, and kept out.
    run_id = deployment.trigger({**conf, "gate_threshold": 0.0001})
    assert _wait_for_run_api(deployment, run_id)["state"] == "success", deployment.all_log_tails()

    log_in(page)
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs/{run_id}")
    label = re.compile(r"Kept the champion · test:mse: challenger [0-9.]+ vs champion [0-9.]+ "
                       r"\(threshold 0\.0001\) on \d+ test rows")
    expect(_task_row(page, "teardown")).to_contain_text(label)
    expect(page.get_by_text(re.compile(r"Outcome: Kept the champion")).first).to_be_visible()  # the header's note
    page.screenshot(path=str(ARTIFACTS / "run-outcome.png"))
    note = _open_note(page)
    expect(note).to_contain_text("Outcome: Kept the champion")
    expect(note).to_contain_text("misses the threshold")
    expect(note).to_contain_text(re.compile(r"challenger [0-9.]+ vs champion [0-9.]+"))
    expect(note).to_contain_text(f"Endpoint {PERSISTENT_ENDPOINT}")
    page.wait_for_timeout(1000)  # the dialog's fade-in
    page.screenshot(path=str(ARTIFACTS / "run-outcome-note.png"))

    plot = note.get_by_role("link", name="plot: predicted vs actual")
    history = note.get_by_role("link", name="model history")
    plot_url, history_url = plot.get_attribute("href"), history.get_attribute("href")
    answer = page.request.get(plot_url)
    assert answer.ok and answer.headers["content-type"] == "image/png", answer.status
    page.goto(history_url)
    expect(page.get_by_role("heading", name=PERSISTENT_ENDPOINT, exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="kept the champion").first).to_be_visible()
