"""The model history page: Airflow's own auth on every route, per model (its DAG, its Variables, its history path), bounded pages, records from S3."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from offline_aws.server import start_emulator
from sagemaker_retrain import history
from sagemaker_retrain.catalog import load_catalog
from sagemaker_retrain.history_view import MAX_LIMIT, create_app

PROJECT_DIR = Path(__file__).resolve().parents[2]

PLOT = "s3://hist/sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png"
# Every route of the plugin's app, as (path, query): each must refuse a caller without a token.
ROUTES = [("/", {}), ("/", {"endpoint": "ep"}), ("/api/endpoints", {}), ("/api/ep", {}), ("/plot", {"uri": PLOT})]


@pytest.fixture(scope="module")
def auth_manager():
    """Airflow's configured auth manager (SimpleAuthManager), as the API server makes it."""
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager, purge_cached_app
    from airflow.models.revoked_token import RevokedToken

    # Token validation asks the metadata DB whether the token was revoked (logout): that table only.
    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    purge_cached_app()
    yield create_auth_manager()
    purge_cached_app()


@pytest.fixture()
def tokens(auth_manager, monkeypatch):
    """Real Airflow JWTs: a viewer (may read DAGs), a user without a role (may not)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.dag import DagModel

    # requires_access_dag looks up the DAG's team in the metadata DB; these tests have none.
    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id, **_: None))
    return {
        "viewer": auth_manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer")),
        "nobody": auth_manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None)),
    }


@pytest.fixture(scope="module")
def emulator():
    """One emulator for the module (a start costs seconds); each test empties the bucket first."""
    started = start_emulator(time_scale=0)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture()
def client(monkeypatch, tokens, emulator):
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET", "hist")
    monkeypatch.setenv("SAGEMAKER_RETRAIN_AWS_CONN_ID", "")
    s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1")
    s3.create_bucket(Bucket="hist")
    for obj in s3.list_objects_v2(Bucket="hist").get("Contents", []):  # the emulator's S3 outlives a test
        s3.delete_object(Bucket="hist", Key=obj["Key"])
    yield TestClient(create_app()), s3


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _record(s3, endpoint: str, slug: str, **fields) -> None:
    history.record_run(s3, "hist", "sagemaker-retrain", endpoint, slug, {"recorded_at": slug, **fields})


@pytest.mark.parametrize(("path", "query"), ROUTES)
def test_every_route_refuses_without_a_token(client, path, query):
    http, s3 = client
    s3.put_object(Bucket="hist", Key=PLOT.split("/", 3)[3], Body=b"\x89PNG")
    response = http.get(path, params=query)
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Not authenticated"}
    assert http.get(path, params=query, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)


@pytest.mark.parametrize(("path", "query"), ROUTES)
def test_every_route_refuses_a_user_who_may_not_read_the_dag(client, tokens, path, query):
    http, _ = client
    assert http.get(path, params=query, headers=_bearer(tokens["nobody"])).status_code == 403


@pytest.mark.parametrize(("path", "query"), ROUTES)
def test_every_route_answers_a_viewer_by_header_or_ui_cookie(client, tokens, path, query):
    http, s3 = client
    s3.put_object(Bucket="hist", Key=PLOT.split("/", 3)[3], Body=b"\x89PNG")
    _record(s3, "ep", "r1", outcome="deployed")
    assert http.get(path, params=query, headers=_bearer(tokens["viewer"])).status_code == 200
    http.cookies.set("_token", tokens["viewer"])
    assert http.get(path, params=query).status_code == 200


def test_no_unauthenticated_docs_or_schema(client):
    http, _ = client
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert http.get(path).status_code in (401, 404)


def test_page_lists_runs_with_metrics_and_plot(client, tokens):
    http, s3 = client
    http.headers.update(_bearer(tokens["viewer"]))
    assert "No runs recorded yet" in http.get("/").text
    s3.put_object(Bucket="hist", Key="sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png", Body=b"\x89PNG")
    history.record_run(s3, "hist", "sagemaker-retrain", "ep", "r1", {
        "recorded_at": "2026-11-26T10:00:00", "outcome": "deployed", "model": "ep-r1",
        "endpoint_metrics": {"rmse": 3.8, "mae": 2.9, "r2": 0.76}, "gate": {"reason": "no model serving yet"},
        "artifacts": {"plot": PLOT}})
    history.record_run(s3, "hist", "sagemaker-retrain", "ep", "r2", {
        "recorded_at": "2026-11-27T10:00:00", "outcome": "rejected", "model": "ep-r2",
        "training_metrics": {"test:rmse": 4.5}, "gate": {"reason": "does not beat the serving model"}})
    page = http.get("/").text
    assert "<h3>ep</h3>" in page
    assert page.index("ep-r2") < page.index("ep-r1")  # newest first
    assert "rmse=3.8" in page and "rmse=4.5" in page and "does not beat" in page
    answer = http.get("/api/ep").json()
    assert [r["model"] for r in answer["records"]] == ["ep-r2", "ep-r1"] and answer["total"] == 2
    assert http.get("/api/endpoints").json() == {"endpoints": ["ep"], "truncated": False}
    plot = http.get("/plot", params={"uri": PLOT})
    assert plot.status_code == 200 and plot.content == b"\x89PNG"
    for uri in ("s3://hist/secrets.png", "s3://hist/sagemaker-retrain/runs/../history/x.png",
                "s3://other/sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png",
                "s3://hist/sagemaker-retrain/runs/r1/input/train/part-00000.csv"):
        assert http.get("/plot", params={"uri": uri}).status_code == 400, uri
    assert http.get("/api/bad name!").status_code == 400


def test_pages_are_bounded_and_read_only_the_records_shown(client, tokens, monkeypatch):
    http, s3 = client
    http.headers.update(_bearer(tokens["viewer"]))
    for i in range(25):
        _record(s3, "ep", f"r{i:03d}", model=f"m{i:03d}")
    reads = []
    real = history.read_record
    monkeypatch.setattr(history, "read_record", lambda *a, **k: reads.append(a[2]) or real(*a, **k))

    answer = http.get("/api/ep", params={"limit": 10, "offset": 5}).json()
    assert [r["model"] for r in answer["records"]] == [f"m{i:03d}" for i in range(19, 9, -1)]
    assert (answer["total"], answer["next_offset"], len(reads)) == (25, 15, 10)
    assert http.get("/api/ep", params={"offset": 20}).json()["next_offset"] is None
    reads.clear()
    page = http.get("/", params={"endpoint": "ep", "limit": 3}).text
    assert len(reads) == 3 and "runs 1–3 of 25" in page and "older" in page
    reads.clear()
    http.get("/")  # the overview reads a few newest records per endpoint, never all of them
    assert 0 < len(reads) <= 5
    for query in ({"limit": MAX_LIMIT + 1}, {"limit": 0}, {"offset": -1}):
        assert http.get("/api/ep", params=query).status_code == 422, query
        assert http.get("/", params={"endpoint": "ep", **query}).status_code == 422, query


def test_plugin_registers_app_and_nav_link():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "model_history", Path(__file__).resolve().parents[2] / "plugins" / "model_history.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.ModelHistoryPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/model-history"
    assert plugin.external_views[0]["href"] == "/model-history/"
    assert plugin.fastapi_apps[0]["app"].router.dependencies  # the access check guards every route


def test_chart_and_registry_columns():
    """One point per run (oldest left), the promoted ones marked, the serving package highlighted."""
    from sagemaker_retrain.history_view import render

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/ep/{}"
    records = [  # newest first, as read_page answers
        {"run_id": f"manual__r{i}", "recorded_at": f"2026-11-2{i}T10:00:00", "model": f"ep-r{i}",
         "outcome": outcome, "dataset_uri": "include/data/housing.csv",
         "gate": {"metric": "test:rmse", "candidate": 5.0 - i, "champion": None if i == 1 else 5.5 - i,
                  "threshold": 10.0, "reason": "r"},
         "package": {"arn": arn.format(i), "version": i}, "approval": {"status": status, "description": desc},
         "scored_rows": {"data": {"sha256": "ab" * 32, "rows": {"train": 400, "test": 51}}}}
        for i, outcome, status, desc in ((3, "rejected at approval", "Rejected", "Rejected by bob: drift"),
                                         (2, "promoted", "Approved", "Approved by alice"),
                                         (1, "promoted", "Approved", "policy: no approval required"))]
    page = {"endpoint": "ep", "records": records, "total": 3, "total_is_lower_bound": False, "offset": 0,
            "limit": 20, "next_offset": None}
    serving = {"arn": arn.format(2), "version": 2, "approval": "Approved", "approval_description": "Approved by alice",
               "metadata": {"run-id": "manual__r2"}}
    html_page = render([page], ["ep"], registry_info={"ep": {"serving": serving, "packages": {}}})
    assert html_page.count("point-challenger") == 3 and html_page.count("point-champion") == 2
    assert html_page.count("point-promoted") == 2 and html_page.count("point-serving") == 1
    assert "threshold 10" in html_page
    assert 'Serving: model package <b>v2</b>' in html_page and html_page.count('<tr class="serving">') == 1
    assert 'href="/dags/sagemaker_retrain/runs/manual__r3"' in html_page
    # a person's rejection is the run's outcome, in their words (not "Ended without a decision")
    assert '<td class="outcome">Rejected by bob: drift</td>' in html_page
    assert '<td class="outcome">promoted <span class="badge Approved">serving</span></td>' in html_page
    assert "/tasks/gate" in html_page and "abababababab" in html_page and "451 rows" in html_page
    assert "chakra-ui-color-mode" in html_page and "[data-theme=dark]" in html_page


def test_serving_model_shows_the_data_that_trained_it():
    """The lineage card: from the registry and job records, and whether they agree."""
    from sagemaker_retrain.history_view import render

    page = {"endpoint": "ep", "records": [{
        "run_id": "asset_triggered__r1", "outcome": "promoted", "dataset_uri": "s3://b/incoming/drop.manifest.json",
        "data_source": {"sha256": "cd" * 32, "parts": [{"uri": "s3://b/p0.csv"}, {"uri": "s3://b/p1.csv"}]},
        "trigger": "new data: 2 part(s) named by manifest s3://b/incoming/drop.manifest.json", "rows": {"train": 9}}],
        "total": 1, "total_is_lower_bound": False, "offset": 0, "limit": 20, "next_offset": None}
    answer = {"data": {"uri": "s3://b/incoming/drop.manifest.json", "sha256": "cd" * 32, "version_id": "v9",
                       "rows": {"train": 400, "test": 51}, "split_seed": "42", "parts": "2"},
              "records": {"model_package": "cd" * 32, "training_job": "cd" * 32}, "consistent": True,
              "training_job": "job-1", "run_id": "asset_triggered__r1"}
    serving = {"arn": "arn:p/1", "version": 1, "approval": "Approved", "metadata": {}}
    html_page = render([page], ["ep"], registry_info={"ep": {"serving": serving, "packages": {}, "lineage": answer}})
    assert f'Trained on <b>s3://b/incoming/drop.manifest.json</b> · sha256 <code class="sha256">{"cd" * 32}</code>' in html_page
    assert "version v9" in html_page and "split seed 42" in html_page and "records agree" in html_page
    assert "2 parts" in html_page and "new data: 2 part(s)" in html_page and "cdcdcdcdcdcd" in html_page
    disagree = render([page], ["ep"], registry_info={"ep": {"serving": serving, "packages": {},
                                                             "lineage": {**answer, "consistent": False}}})
    assert "records disagree" in disagree


def test_outcome_column_words():
    from sagemaker_retrain.history_view import outcome_text

    rejected = {"outcome": "rejected at approval", "approval": {"status": "Rejected",
                                                                "description": "Rejected: no answer within 6 h (timeout)"}}
    assert outcome_text(rejected) == "Rejected: no answer within 6 h (timeout)"
    assert outcome_text({"outcome": "kept the champion", "approval": {"description": "gate: lost"}}) == "kept the champion"
    assert outcome_text({"outcome": "rejected at approval", "approval": "garbled"}) == "rejected at approval"
    assert outcome_text({}) == ""


# --- every model the user may read, and only those ---------------------------------------------------------
TEAMS = {"sagemaker_retrain": "housing-team", "retrain_housing_lstat": "lstat-team",
         "retrain_breast_cancer": "cancer-team"}


@pytest.fixture()
def lstat_reader(auth_manager, monkeypatch):
    """A viewer who may read only housing_lstat's DAG: Airflow's multi-team mode, each DAG in its team's bundle."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.dag import DagModel

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    monkeypatch.setattr(DagModel, "get_dag_id_to_team_name_mapping",
                        staticmethod(lambda dag_ids, **_: {d: TEAMS[d] for d in dag_ids if d in TEAMS}))
    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="ana", role="viewer", teams=["lstat-team"]))


def _two_models(s3) -> None:
    s3.put_object(Bucket="hist", Key=PLOT.split("/", 3)[3], Body=b"\x89PNG")
    _record(s3, "ep", "r1", run_id="manual__r1", outcome="promoted", artifacts={"plot": PLOT})  # housing: history/
    history.record_run(s3, "hist", "sagemaker-retrain", "lstat-ep", "r2",
                       {"run_id": "manual__r2", "outcome": "kept the champion", "model": "lstat-m"},
                       path="model-history/housing_lstat")


def test_page_lists_every_model_with_links_to_its_dag(client, tokens):
    http, s3 = client
    _two_models(s3)
    http.headers.update(_bearer(tokens["viewer"]))
    page = http.get("/").text
    assert 'id="model-housing"' in page and 'id="model-housing_lstat"' in page
    assert 'href="/dags/sagemaker_retrain"' in page and 'href="/dags/retrain_housing_lstat"' in page
    assert 'href="/dags/retrain_housing_lstat/runs/manual__r2"' in page and "lstat-m" in page
    assert page.index('id="model-housing"') < page.index("<h3>ep</h3>") < page.index('id="model-housing_lstat"')
    shipped = {spec.name for spec in load_catalog(PROJECT_DIR / "include" / "models", root=PROJECT_DIR).specs}
    assert {"housing", "housing_lstat"} <= shipped
    assert {m["name"] for m in http.get("/api/models").json()["models"]} == shipped


def test_a_user_who_may_read_one_model_sees_only_that_model(client, lstat_reader):
    http, s3 = client
    _two_models(s3)
    # Every model's DAG in a team (a DAG of no team is everyone's in multi-team mode).
    assert {s.dag_id for s in load_catalog(PROJECT_DIR / "include" / "models", root=PROJECT_DIR).specs} <= set(TEAMS)
    http.headers.update(_bearer(lstat_reader))
    page = http.get("/").text
    assert 'id="model-housing_lstat"' in page and "lstat-m" in page
    assert 'id="model-housing"' not in page and "sagemaker_retrain" not in page and "manual__r1" not in page
    assert [m["name"] for m in http.get("/api/models").json()["models"]] == ["housing_lstat"]
    assert http.get("/api/endpoints").json()["endpoints"] == ["lstat-ep"]
    assert http.get("/api/lstat-ep").json()["model"] == "housing_lstat"
    # Another model asked for directly, its runs by endpoint, its plot: refused, never shown.
    for path, query in (("/", {"model": "housing"}), ("/api/endpoints", {"model": "housing"}),
                        ("/api/ep", {"model": "housing"}), ("/plot", {"uri": PLOT, "model": "housing"})):
        assert http.get(path, params=query).status_code == 403, (path, query)
    assert http.get("/api/ep").json()["records"] == []  # legacy link without a model: this user's models only
    assert http.get("/plot", params={"uri": PLOT}).status_code == 404
    assert http.get("/", params={"model": "nope"}).status_code == 404


def test_headers_on_every_answer(client, tokens):
    """A Content-Security-Policy that allows the page's own script and style only, and nosniff: on pages,
    JSON, plots and refusals alike."""
    import base64
    import hashlib

    from sagemaker_retrain.history_view import STYLE, THEME_JS

    http, s3 = client
    _two_models(s3)
    answers = [http.get("/"), http.get("/", headers=_bearer(tokens["nobody"]))]
    answers += [http.get(path, params=query, headers=_bearer(tokens["viewer"])) for path, query in ROUTES]
    assert [a.status_code for a in answers] == [401, 403] + [200] * len(ROUTES)
    for answer in answers:
        csp = answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp and "unsafe-inline" not in csp
    for source in (THEME_JS, STYLE):
        assert base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() in csp
    page = answers[2].text
    assert f"<script>{THEME_JS}</script>" in page and f"<style>{STYLE}</style>" in page  # exactly what is hashed
    assert page.count("<script") == 1 and " style=" not in page


def test_one_malformed_record_does_not_take_the_page_down(client, tokens):
    http, s3 = client
    http.headers.update(_bearer(tokens["viewer"]))
    _record(s3, "ep", "r1", run_id="manual__good", outcome="promoted", gate={"candidate": 3.0, "metric": "test:mse"})
    s3.put_object(Bucket="hist", Key="sagemaker-retrain/history/ep/r2.json", Body=b'{"outcome": "trunc')
    s3.put_object(Bucket="hist", Key="sagemaker-retrain/history/ep/r3.json", Body=b'["a list"]')
    _record(s3, "ep", "r4", run_id="manual__odd", gate="not a mapping", package="nor this", artifacts=[1])
    response = http.get("/", params={"model": "housing", "endpoint": "ep"})
    assert response.status_code == 200
    assert response.text.count("unreadable record") == 3 and "manual__good" in response.text
    assert len(http.get("/api/ep").json()["records"]) == 4


def test_the_overview_reads_at_most_ten_endpoints_across_models(client, tokens, monkeypatch):
    from sagemaker_retrain.history_view import OVERVIEW_ENDPOINTS

    http, s3 = client
    http.headers.update(_bearer(tokens["viewer"]))
    for i in range(OVERVIEW_ENDPOINTS + 2):
        _record(s3, f"ep{i:02d}", "r1", model=f"m{i:02d}")
    history.record_run(s3, "hist", "sagemaker-retrain", "lstat-ep", "r2", {"model": "lstat-m"},
                       path="model-history/housing_lstat")
    reads = []
    real = history.read_record
    monkeypatch.setattr(history, "read_record", lambda *a, **k: reads.append(a[2]) or real(*a, **k))
    page = http.get("/").text
    assert len(reads) == OVERVIEW_ENDPOINTS and "lstat-m" not in page
    assert "Open an endpoint above to see its runs." in page and "model=housing_lstat&amp;endpoint=lstat-ep" in page
    assert "lstat-m" in http.get("/", params={"model": "housing_lstat"}).text


def test_each_model_is_read_from_its_own_variables_and_history_path(client, tokens, monkeypatch, tmp_path):
    """A model with a Variables prefix of its own: its bucket and prefix come from its Variables, its records
    from its history path; the other models keep the deployment's."""
    import shutil

    import yaml

    http, s3 = client
    models = Path(__file__).resolve().parents[2] / "include" / "models"
    shutil.copy(models / "housing.yaml", tmp_path / "housing.yaml")
    own = yaml.safe_load((models / "housing_lstat.yaml").read_text())
    own.update(name="team_a", settings={"variables_prefix": "team_a_", "history_path": "audit/a"})
    (tmp_path / "team_a.yaml").write_text(yaml.safe_dump(own))
    monkeypatch.setenv("SAGEMAKER_RETRAIN_CATALOG_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_VAR_TEAM_A_BUCKET", "team-a")
    monkeypatch.setenv("AIRFLOW_VAR_TEAM_A_PREFIX", "teams/a")
    s3.create_bucket(Bucket="team-a")
    history.record_run(s3, "team-a", "teams/a", "a-ep", "r9", {"run_id": "manual__a", "model": "team-a-model"},
                       path="audit/a")
    _record(s3, "ep", "r1", model="housing-model")
    http.headers.update(_bearer(tokens["viewer"]))
    page = http.get("/").text
    assert 'id="model-team_a"' in page and "team-a-model" in page and "housing-model" in page
    assert 'href="/dags/retrain_team_a/runs/manual__a"' in page
    assert http.get("/api/a-ep", params={"model": "team_a"}).json()["total"] == 1
    assert http.get("/api/a-ep", params={"model": "housing"}).json()["total"] == 0
