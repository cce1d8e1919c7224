"""Model history as a page in the Airflow UI: every run's outcome, metrics and plot, per endpoint.

Served by the API server through the plugin in ``plugins/``. It reads the records that the
DAG writes to S3 (``sagemaker_retrain.history``), with the same Variables and AWS connection, at
request time, so the page needs no database of its own.
"""

from __future__ import annotations

import html
import os

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from sagemaker_retrain import history

METRIC_ORDER = ("rmse", "mae", "r2", "accuracy", "f1", "auc")


def _settings() -> tuple[str, str, object]:
    """(bucket, prefix, s3 client) from the pipeline's Variables, read per request."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import Variable

    bucket = Variable.get("sagemaker_retrain_bucket", default=None)
    if not bucket:
        raise HTTPException(503, "Variable sagemaker_retrain_bucket is not set")
    prefix = (Variable.get("sagemaker_retrain_prefix", default=None) or "sagemaker-retrain").strip("/")
    conn_id = os.environ.get("SAGEMAKER_RETRAIN_AWS_CONN_ID", "aws_default")
    region = Variable.get("sagemaker_retrain_region", default=None)
    return bucket, prefix, S3Hook(aws_conn_id=conn_id, region_name=region).get_conn()


def endpoints(s3, bucket: str, prefix: str) -> list[str]:
    response = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/history/", Delimiter="/")
    return sorted(p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in response.get("CommonPrefixes", []))


def _metrics_cell(record: dict) -> str:
    metrics = record.get("endpoint_metrics") or {
        k.split(":", 1)[1]: v for k, v in (record.get("training_metrics") or {}).items() if k.startswith("test:")
    }
    shown = [f"{k}={metrics[k]:.4g}" for k in METRIC_ORDER if isinstance(metrics.get(k), int | float)]
    return ", ".join(shown) or "–"


def render(records_by_endpoint: dict[str, list[dict]]) -> str:
    parts = ["<html><head><title>Model history</title><style>body{font-family:sans-serif;margin:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
             "img{height:120px}</style></head><body><h1>Model history</h1>"]
    if not records_by_endpoint:
        parts.append("<p>No runs recorded yet.</p>")
    for endpoint, records in records_by_endpoint.items():
        parts.append(f"<h2>{html.escape(endpoint)}</h2><table><tr><th>run</th><th>outcome</th><th>model</th>"
                     "<th>metrics</th><th>gate</th><th>plot</th></tr>")
        for record in reversed(records):
            plot = (record.get("artifacts") or {}).get("plot")
            image = f'<img alt="predicted vs actual" src="plot?uri={html.escape(plot)}">' if plot else ""
            gate = (record.get("gate") or {}).get("reason", "")
            parts.append(
                f"<tr><td>{html.escape(str(record.get('recorded_at', '')))}</td>"
                f"<td>{html.escape(str(record.get('outcome', '')))}</td>"
                f"<td>{html.escape(str(record.get('model', '')))}</td>"
                f"<td>{html.escape(_metrics_cell(record))}</td><td>{html.escape(gate)}</td><td>{image}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def create_app() -> FastAPI:
    app = FastAPI(title="SageMaker model history")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        bucket, prefix, s3 = _settings()
        return render({e: history.read_history(s3, bucket, prefix, e) for e in endpoints(s3, bucket, prefix)})

    @app.get("/api/{endpoint}")
    def records(endpoint: str) -> list[dict]:
        bucket, prefix, s3 = _settings()
        return history.read_history(s3, bucket, prefix, endpoint)

    @app.get("/plot")
    def plot(uri: str) -> Response:
        bucket, prefix, s3 = _settings()
        if not uri.startswith(f"s3://{bucket}/{prefix}/runs/") or not uri.endswith(".png"):
            raise HTTPException(400, "only the pipeline's own plots can be shown")
        key = uri[len(f"s3://{bucket}/"):]
        return Response(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), media_type="image/png")

    return app
