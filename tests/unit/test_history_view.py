"""The model history page reads the DAG's records from S3 and shows them per endpoint."""

from __future__ import annotations

import boto3
import pytest
from fastapi.testclient import TestClient

from offline_aws.server import start_emulator
from sagemaker_retrain import history
from sagemaker_retrain.history_view import create_app


@pytest.fixture()
def client(monkeypatch):
    emulator = start_emulator(time_scale=0)
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET", "hist")
    monkeypatch.setenv("SAGEMAKER_RETRAIN_AWS_CONN_ID", "")
    s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1")
    s3.create_bucket(Bucket="hist")
    try:
        yield TestClient(create_app()), s3
    finally:
        emulator.stop()


def test_page_lists_runs_with_metrics_and_plot(client):
    http, s3 = client
    assert "No runs recorded yet" in http.get("/").text
    s3.put_object(Bucket="hist", Key="sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png", Body=b"\x89PNG")
    history.record_run(s3, "hist", "sagemaker-retrain", "ep", "r1", {
        "recorded_at": "2026-11-26T10:00:00", "outcome": "deployed", "model": "ep-r1",
        "endpoint_metrics": {"rmse": 3.8, "mae": 2.9, "r2": 0.76}, "gate": {"reason": "no model serving yet"},
        "artifacts": {"plot": "s3://hist/sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png"}})
    history.record_run(s3, "hist", "sagemaker-retrain", "ep", "r2", {
        "recorded_at": "2026-11-27T10:00:00", "outcome": "rejected", "model": "ep-r2",
        "training_metrics": {"test:rmse": 4.5}, "gate": {"reason": "does not beat the serving model"}})
    page = http.get("/").text
    assert "<h2>ep</h2>" in page
    assert page.index("ep-r2") < page.index("ep-r1")  # newest first
    assert "rmse=3.8" in page and "rmse=4.5" in page and "does not beat" in page
    assert [r["model"] for r in http.get("/api/ep").json()] == ["ep-r1", "ep-r2"]
    plot = http.get("/plot", params={"uri": "s3://hist/sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png"})
    assert plot.status_code == 200 and plot.content == b"\x89PNG"
    assert http.get("/plot", params={"uri": "s3://hist/secrets.png"}).status_code == 400


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
