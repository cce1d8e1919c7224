"""Model history as a page in the Airflow UI: every run's outcome, metrics and plot, per endpoint.

Served by the API server through the plugin in ``plugins/``. It reads the records that the
DAG writes to S3 (``sagemaker_retrain.history``), with the same Variables and AWS connection, at
request time, so the page needs no database of its own.

Every route needs what Airflow's own API needs to read the DAG ``sagemaker_retrain``: a JWT
(``Authorization: Bearer …`` or the ``_token`` cookie the UI sets) of a user the auth manager lets
read that DAG; 401 without one, 403 for a user who may not. Every route is bounded: it lists at
most ``history.MAX_LISTED_KEYS`` keys and reads at most ``MAX_LIMIT`` records (limit/offset).
"""

from __future__ import annotations

import html
import os
import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from sagemaker_retrain import history

DAG_ID = "sagemaker_retrain"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
OVERVIEW_ENDPOINTS = 10
OVERVIEW_ROWS = 5
MAX_PLOT_BYTES = 10 * 1024 * 1024
ENDPOINT_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PLOT_KEY = re.compile(r"^runs/[A-Za-z0-9-]{1,80}/evaluation/predicted_vs_actual\.png$")

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


def _metrics_cell(record: dict) -> str:
    metrics = record.get("endpoint_metrics") or {
        k.split(":", 1)[1]: v for k, v in (record.get("training_metrics") or {}).items() if k.startswith("test:")
    }
    shown = [f"{k}={metrics[k]:.4g}" for k in METRIC_ORDER if isinstance(metrics.get(k), int | float)]
    return ", ".join(shown) or "–"


def _row(record: dict) -> str:
    plot = (record.get("artifacts") or {}).get("plot")
    image = f'<img alt="predicted vs actual" src="plot?{html.escape(urlencode({"uri": plot}))}">' if plot else ""
    gate = (record.get("gate") or {}).get("reason", "")
    return (f"<tr><td>{html.escape(str(record.get('recorded_at', '')))}</td>"
            f"<td>{html.escape(str(record.get('outcome', '')))}</td>"
            f"<td>{html.escape(str(record.get('model', '')))}</td>"
            f"<td>{html.escape(_metrics_cell(record))}</td><td>{html.escape(str(gate))}</td><td>{image}</td></tr>")


def _link(text: str, **query) -> str:
    return f'<a href="?{html.escape(urlencode(query))}">{html.escape(text)}</a>'


def render(pages: list[dict], endpoints: list[str] | None = None, more_endpoints: bool = False,
           paged: bool = False) -> str:
    """The HTML page: a table per endpoint page (``history.read_page`` answers), newest first."""
    parts = ["<html><head><title>Model history</title><style>body{font-family:sans-serif;margin:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
             "img{height:120px}</style></head><body><h1>Model history</h1>"]
    if endpoints:
        links = " · ".join(_link(e, endpoint=e) for e in endpoints)
        parts.append(f"<p>Endpoints: {links}{' (first ' + str(len(endpoints)) + ' shown)' if more_endpoints else ''}</p>")
    if not pages:
        parts.append("<p>No runs recorded yet.</p>")
    for page in pages:
        endpoint = page["endpoint"]
        parts.append(f"<h2>{html.escape(endpoint)}</h2><table><tr><th>run</th><th>outcome</th><th>model</th>"
                     "<th>metrics</th><th>gate</th><th>plot</th></tr>")
        parts.extend(_row(record) for record in page["records"])
        parts.append("</table>")
        shown = f"{page['offset'] + 1}–{page['offset'] + len(page['records'])}" if page["records"] else "none"
        nav = [f"runs {shown} of {page['total']}{'+' if page['total_is_lower_bound'] else ''}"]
        if paged and page["offset"] > 0:
            nav.append(_link("newer", endpoint=endpoint, limit=page["limit"],
                             offset=max(0, page["offset"] - page["limit"])))
        if page["next_offset"] is not None:
            nav.append(_link("older" if paged else "all runs", endpoint=endpoint, limit=page["limit"],
                             offset=page["next_offset"] if paged else 0))
        parts.append(f"<p>{' · '.join(nav)}</p>")
    parts.append("</body></html>")
    return "".join(parts)


def _endpoint(endpoint: str) -> str:
    if not ENDPOINT_PATTERN.match(endpoint):
        raise HTTPException(400, "not an endpoint name")
    return endpoint


_bearer = HTTPBearer(auto_error=False)


async def _read_access(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Airflow's own check, as its API routes make it: ``get_user`` (Bearer header, else the UI's
    ``_token`` cookie; 401 without a token) then ``requires_access_dag("GET")`` on the DAG (403).

    Imported here rather than at module level: the plugin module is imported by every Airflow
    process, and only the API server needs the API's security module.
    """
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    user = await get_user(request, None, bearer)
    await run_in_threadpool(requires_access_dag("GET", param_dag_id=DAG_ID), request, user)


def create_app() -> FastAPI:
    # No /docs, /redoc or /openapi.json: they would not pass through the access check.
    app = FastAPI(title="SageMaker model history", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_read_access)])
    limit_query = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset_query = Query(0, ge=0, le=history.MAX_LISTED_KEYS)

    @app.get("/", response_class=HTMLResponse)
    def page(endpoint: str | None = None, limit: int = limit_query, offset: int = offset_query) -> str:
        bucket, prefix, s3 = _settings()
        names, more = history.list_endpoints(s3, bucket, prefix)
        if endpoint is not None:
            pages = [history.read_page(s3, bucket, prefix, _endpoint(endpoint), limit, offset)]
            return render(pages, names, more, paged=True)
        pages = [history.read_page(s3, bucket, prefix, e, OVERVIEW_ROWS) for e in names[:OVERVIEW_ENDPOINTS]]
        return render(pages, names, more)

    @app.get("/api/endpoints")
    def endpoint_names() -> dict:
        bucket, prefix, s3 = _settings()
        names, more = history.list_endpoints(s3, bucket, prefix)
        return {"endpoints": names, "truncated": more}

    @app.get("/api/{endpoint}")
    def records(endpoint: str, limit: int = limit_query, offset: int = offset_query) -> dict:
        bucket, prefix, s3 = _settings()
        return history.read_page(s3, bucket, prefix, _endpoint(endpoint), limit, offset)

    @app.get("/plot")
    def plot(uri: str = Query(..., max_length=1024)) -> Response:
        bucket, prefix, s3 = _settings()
        base = f"s3://{bucket}/{prefix}/"
        if not uri.startswith(base) or not PLOT_KEY.match(uri[len(base):]):
            raise HTTPException(400, "only the pipeline's own plots can be shown")
        obj = s3.get_object(Bucket=bucket, Key=uri[len(f"s3://{bucket}/"):])
        if obj.get("ContentLength", 0) > MAX_PLOT_BYTES:
            obj["Body"].close()
            raise HTTPException(413, "plot too large")
        return Response(obj["Body"].read(MAX_PLOT_BYTES + 1), media_type="image/png")

    return app
