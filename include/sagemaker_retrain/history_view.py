"""Model history as a page in the Airflow UI: per endpoint a trend of the gate metric, the serving
model, and every run's outcome, registry version and approval, metrics, data version and plot.

Served by the API server through the plugin in ``plugins/``. It reads the records that the
DAG writes to S3 (``sagemaker_retrain.history``) and the SageMaker Model Registry (the package
behind the serving model, each shown run's package and its approval), with the same Variables
and AWS connection, at request time, so the page needs no database of its own. Styled with the
UI's colours; it follows the UI's light/dark mode.

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
from urllib.parse import quote, urlencode

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



def aws_conn_id() -> str:
    """The AWS connection of the model history page: ``[sagemaker_retrain] aws_conn_id`` (provider config),
    else env ``SAGEMAKER_RETRAIN_AWS_CONN_ID`` (the DAG's), else ``aws_default``."""
    from airflow.sdk import conf

    return (conf.get("sagemaker_retrain", "aws_conn_id", fallback="")
            or os.environ.get("SAGEMAKER_RETRAIN_AWS_CONN_ID", "aws_default"))

def _settings() -> tuple[str, str, object]:
    """(bucket, prefix, s3 client) from the pipeline's Variables, read per request."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import Variable

    bucket = Variable.get("sagemaker_retrain_bucket", default=None)
    if not bucket:
        raise HTTPException(503, "Variable sagemaker_retrain_bucket is not set")
    prefix = (Variable.get("sagemaker_retrain_prefix", default=None) or "sagemaker-retrain").strip("/")
    conn_id = aws_conn_id()
    region = Variable.get("sagemaker_retrain_region", default=None)
    return bucket, prefix, S3Hook(aws_conn_id=conn_id, region_name=region).get_conn()


def _sagemaker():
    """A SageMaker client with the pipeline's connection and region (the registry and the endpoint)."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.sdk import Variable

    conn_id = aws_conn_id()
    return SageMakerHook(aws_conn_id=conn_id, region_name=Variable.get("sagemaker_retrain_region", default=None)).conn


def _metrics_cell(record: dict) -> str:
    metrics = record.get("endpoint_metrics") or ((record.get("scores") or {}).get("challenger")) or {
        k.split(":", 1)[1]: v for k, v in (record.get("training_metrics") or {}).items() if k.startswith("test:")
    }
    shown = [f"{k}={metrics[k]:.4g}" for k in METRIC_ORDER if isinstance(metrics.get(k), int | float)]
    return ", ".join(shown) or "–"


# Airflow's UI (Chakra) keeps its colour mode in localStorage; the page is served from the same
# origin (and shown in the UI's iframe), so it follows the UI's light/dark choice, else the system's.
STYLE = """
:root{--bg:#fff;--fg:#1a202c;--muted:#4a5568;--line:#e2e8f0;--card:#f7fafc;--accent:#017cee;
--ok:#2f855a;--bad:#c53030;--warn:#b7791f;--champ:#805ad5;--serving:#ebf8ff}
:root[data-theme=dark]{--bg:#1a202c;--fg:#e2e8f0;--muted:#a0aec0;--line:#2d3748;--card:#171923;
--accent:#63b3ed;--ok:#68d391;--bad:#fc8181;--warn:#f6e05e;--champ:#b794f4;--serving:#1c3a56}
body{background:var(--bg);color:var(--fg);font:14px/1.45 Inter,system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;margin:16px 20px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:17px;margin:24px 0 8px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.muted{color:var(--muted)}.card{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:10px 14px;margin:8px 0}
table{border-collapse:collapse;width:100%;margin-top:8px}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;font-size:13px;text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600}tr.serving{background:var(--serving)}
.badge{display:inline-block;border-radius:9999px;padding:0 8px;font-size:12px;font-weight:600;
border:1px solid currentColor}.Approved{color:var(--ok)}.Rejected{color:var(--bad)}
.PendingManualApproval{color:var(--warn)}img{height:96px;border-radius:4px}
svg text{fill:var(--muted);font-size:11px}.chal{stroke:var(--accent);fill:var(--accent)}
.champ{stroke:var(--champ);fill:var(--champ)}.thr{stroke:var(--bad);stroke-dasharray:5 4}
.axis{stroke:var(--line)}.promoted{fill:var(--ok);stroke:var(--ok)}.ring{fill:none;stroke:var(--ok);stroke-width:2}
"""
THEME_SCRIPT = ("<script>try{var m=localStorage.getItem('chakra-ui-color-mode');"
                "if(!m&&matchMedia('(prefers-color-scheme: dark)').matches)m='dark';"
                "if(m)document.documentElement.dataset.theme=m}catch(e){}</script>")


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _run_links(record: dict) -> str:
    run_id = record.get("run_id")
    if not run_id:
        return _e(record.get("recorded_at", ""))
    base = f"/dags/{DAG_ID}/runs/{quote(str(run_id), safe='')}"
    when = _e(str(record.get("recorded_at", ""))[:19].replace("T", " "))
    return (f'<a target="_top" href="{_e(base)}">{when}</a><br><span class="muted">{_e(run_id)}</span><br>'
            f'<a target="_top" href="{_e(base)}/tasks/gate">gate log</a> · '
            f'<a target="_top" href="{_e(base)}/tasks/approve/required_actions">approval</a>')


def _package_cell(record: dict, packages: dict[str, dict]) -> str:
    ref = record.get("package") or {}
    package = packages.get(ref.get("arn", "")) or {}
    approval = record.get("approval") or {}
    status = package.get("approval") or approval.get("status")
    description = package.get("approval_description") or approval.get("description")
    if not ref and not status:
        return "–"
    parts = [f"v{_e(ref.get('version', '?'))}"]
    if status:
        parts.append(f'<span class="badge {_e(status)}">{_e(status)}</span>')
    if description:
        parts.append(f'<br><span class="muted">{_e(description)}</span>')
    return " ".join(parts)


def _data_cell(record: dict) -> str:
    data = record.get("data_source") or (record.get("scored_rows") or {}).get("data") or {}
    version = (data.get("sha256") or "")[:12] or data.get("version_id") or data.get("etag") or ""
    rows = data.get("rows") or record.get("rows") or {}
    count = sum(v for v in rows.values() if isinstance(v, int)) if isinstance(rows, dict) else rows
    parts = f" · {len(data['parts'])} parts" if data.get("parts") else ""
    trigger = f"<br><span class=\"muted\">{_e(record['trigger'])}</span>" if record.get("trigger") else ""
    code = record.get("code") or {}
    made = ""
    if record.get("algorithm") or code:  # which code made the model, beside which bytes
        sha = f" · code sha256 <code class=\"sha256\">{_e(code['sha256'][:12])}</code>" if code.get("sha256") else ""
        made = f"<br><span class=\"muted\">{_e(record.get('algorithm') or '')}{sha}</span>"
    return (f"{_e(record.get('dataset_uri', ''))}<br><span class=\"muted\">"
            f"{_e(version) or 'version –'} · {_e(count)} rows{parts}</span>{trigger}{made}")


def lineage_card(answer: dict | None) -> str:
    """Which data trained the serving model (``lineage.data_behind_endpoint``), and whether its records agree."""
    if not answer or not answer.get("data"):
        return ""
    data = answer["data"]
    rows = data.get("rows") or {}
    facts = [f"sha256 <code class=\"sha256\">{_e(data.get('sha256'))}</code>"]
    if data.get("version_id"):
        facts.append(f"version {_e(data['version_id'])}")
    if data.get("etag"):
        facts.append(f"ETag {_e(data['etag'])}")
    if data.get("parts"):
        facts.append(f"{_e(data['parts'])} parts")
    if rows:
        facts.append(" / ".join(f"{_e(k)} {_e(v)}" for k, v in rows.items()) + " rows")
    if data.get("split_seed") is not None:
        facts.append(f"split seed {_e(data['split_seed'])}")
    agree = ("records agree" if answer.get("consistent") else
             '<b class="Rejected">records disagree</b>')
    sources = ", ".join(f"{_e(k)}: {_e((v or '–')[:12])}" for k, v in (answer.get("records") or {}).items())
    return (f'<div class="card lineage">Trained on <b>{_e(data.get("uri"))}</b> · {" · ".join(facts)}<br>'
            f'<span class="muted">training job {_e(answer.get("training_job"))} · run {_e(answer.get("run_id"))} · '
            f'{agree} ({sources})</span></div>')


def outcome_text(record: dict) -> str:
    """The outcome column: a rejection at approval in the approval step's own words ("Rejected by USER:
    comment", "Rejected: no answer within N h (timeout)"), any other outcome as recorded."""
    outcome = str(record.get("outcome", ""))
    approval = record.get("approval") if isinstance(record.get("approval"), dict) else {}
    description = str(approval.get("description") or "")
    if outcome == "rejected at approval" and description.startswith("Rejected"):
        return description
    return outcome


def _row(record: dict, packages: dict[str, dict], serving_arn: str | None) -> str:
    plot = (record.get("artifacts") or {}).get("plot")
    image = (f'<a target="_blank" href="plot?{_e(urlencode({"uri": plot}))}"><img alt="predicted vs actual" '
             f'src="plot?{_e(urlencode({"uri": plot}))}"></a>') if plot else ""
    gate = (record.get("gate") or {}).get("reason", "")
    arn = (record.get("package") or {}).get("arn")
    serving = bool(arn) and arn == serving_arn
    mark = ' <span class="badge Approved">serving</span>' if serving else ""
    return (f'<tr class="{"serving" if serving else ""}"><td>{_run_links(record)}</td>'
            f'<td class="outcome">{_e(outcome_text(record))}{mark}</td>'
            f"<td>{_package_cell(record, packages)}</td>"
            f"<td>{_e(record.get('model', ''))}</td>"
            f"<td>{_e(_metrics_cell(record))}</td><td>{_data_cell(record)}</td><td>{_e(gate)}</td>"
            f"<td>{image}</td></tr>")


def _points(records: list[dict]) -> list[dict]:
    """Chart points, oldest first: the gate metric of challenger and champion, and whether it was promoted."""
    out = []
    for record in reversed(records):
        gate = record.get("gate") or {}
        if not isinstance(gate.get("candidate"), int | float):
            continue
        out.append({"challenger": float(gate["candidate"]),
                    "champion": float(gate["champion"]) if isinstance(gate.get("champion"), int | float) else None,
                    "threshold": gate.get("threshold"), "metric": gate.get("metric", ""),
                    "promoted": record.get("outcome") == "promoted", "run_id": record.get("run_id", ""),
                    "arn": (record.get("package") or {}).get("arn")})
    return out


def chart(records: list[dict], serving_arn: str | None = None, width: int = 720, height: int = 220) -> str:
    """An inline SVG: the gate metric per run (challenger line, champion dots, threshold, promoted and serving)."""
    points = _points(records)
    if not points:
        return '<p class="muted">No gate scores recorded yet.</p>'
    values = [p["challenger"] for p in points] + [p["champion"] for p in points if p["champion"] is not None]
    low, high = min(values), max(values)
    span = (high - low) or max(abs(high), 1.0) * 0.1
    low, high = low - span * 0.15, high + span * 0.15
    threshold = points[-1]["threshold"]
    show_threshold = isinstance(threshold, int | float) and low - span <= threshold <= high + span
    if show_threshold:
        low, high = min(low, threshold - span * 0.05), max(high, threshold + span * 0.05)
    left, right, top, bottom = 56, 16, 14, 30
    inner_w, inner_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (inner_w / 2 if len(points) == 1 else inner_w * i / (len(points) - 1))

    def y(v: float) -> float:
        return top + inner_h * (1 - (v - low) / (high - low))

    parts = [f'<svg role="img" aria-label="gate metric per run" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             f'<line class="axis" x1="{left}" y1="{top + inner_h}" x2="{width - right}" y2="{top + inner_h}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + inner_h}"/>']
    for v in (low, (low + high) / 2, high):
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    if show_threshold:
        parts.append(f'<line class="thr" x1="{left}" y1="{y(threshold):.1f}" x2="{width - right}" '
                     f'y2="{y(threshold):.1f}"/><text x="{width - right}" y="{y(threshold) - 4:.1f}" '
                     f'text-anchor="end">threshold {threshold:g}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(p['challenger']):.1f}" for i, p in enumerate(points))
    parts.append(f'<path class="chal" fill="none" stroke-width="2" d="{path}"/>')
    for i, p in enumerate(points):
        title = _e(f"{p['run_id']}: challenger {p['challenger']:.4g}"
                   + (f", champion {p['champion']:.4g}" if p["champion"] is not None else "")
                   + (" (promoted)" if p["promoted"] else ""))
        if p["champion"] is not None:
            parts.append(f'<rect class="champ point-champion" x="{x(i) - 4:.1f}" y="{y(p["champion"]) - 4:.1f}" '
                         f'width="8" height="8"><title>{title}</title></rect>')
        css = "promoted point-promoted" if p["promoted"] else "chal"
        parts.append(f'<circle class="{css} point-challenger" cx="{x(i):.1f}" cy="{y(p["challenger"]):.1f}" '
                     f'r="{6 if p["promoted"] else 4}"><title>{title}</title></circle>')
        if p["arn"] and p["arn"] == serving_arn:
            parts.append(f'<circle class="ring point-serving" cx="{x(i):.1f}" '
                         f'cy="{y(p["challenger"]):.1f}" r="10"><title>serving</title></circle>')
        parts.append(f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="middle">{i + 1}</text>')
    parts.append("</svg>")
    legend = (f'<p class="muted">{_e(points[-1]["metric"])} per run, oldest left: <span class="chal">●</span> '
              'challenger, <span class="champ">■</span> champion on the same rows, <span class="promoted">●</span> '
              'promoted, ◯ serving' + ("" if show_threshold or threshold is None
                                        else f", threshold {_e(threshold)} off the scale") + ".</p>")
    return "".join(parts) + legend


def _link(text: str, **query) -> str:
    return f'<a href="?{html.escape(urlencode(query))}">{html.escape(text)}</a>'


def render(pages: list[dict], endpoints: list[str] | None = None, more_endpoints: bool = False,
           paged: bool = False, registry_info: dict[str, dict] | None = None) -> str:
    """The HTML page: per endpoint page (``history.read_page`` answers, newest first) a trend chart,
    the serving model and a table of runs; ``registry_info`` maps an endpoint to
    ``{"serving": package summary or None, "packages": {arn: summary}}``."""
    registry_info = registry_info or {}
    parts = ['<!doctype html><html><head><meta charset="utf-8"><title>Model history</title>', THEME_SCRIPT,
             f"<style>{STYLE}</style></head><body><h1>Model history</h1>"]
    if endpoints:
        links = " · ".join(_link(e, endpoint=e) for e in endpoints)
        parts.append(f"<p>Endpoints: {links}{' (first ' + str(len(endpoints)) + ' shown)' if more_endpoints else ''}</p>")
    if not pages:
        parts.append("<p>No runs recorded yet.</p>")
    for page in pages:
        endpoint = page["endpoint"]
        info = registry_info.get(endpoint) or {}
        serving = info.get("serving")
        serving_arn = (serving or {}).get("arn")
        parts.append(f"<h2>{html.escape(endpoint)}</h2>")
        if serving:
            parts.append(
                f'<div class="card serving-model">Serving: model package <b>v{_e(serving.get("version"))}</b> '
                f'<span class="badge {_e(serving.get("approval"))}">{_e(serving.get("approval"))}</span> '
                f'<span class="muted">{_e(serving.get("approval_description"))} · {_e(serving_arn)} · run '
                f'{_e((serving.get("metadata") or {}).get("run-id"))}</span></div>')
        if serving or info.get("endpoint_model"):
            parts.append(lineage_card(info.get("lineage")))
        if not serving and info.get("endpoint_model"):
            parts.append(f'<div class="card serving-model">Serving: model {_e(info["endpoint_model"])} '
                         '<span class="muted">(not from the registry)</span></div>')
        parts.append(chart(page["records"], serving_arn))
        parts.append("<table><tr><th>run</th><th>outcome</th><th>package / approval</th><th>model</th>"
                     "<th>metrics</th><th>data</th><th>gate</th><th>plot</th></tr>")
        parts.extend(_row(record, info.get("packages") or {}, serving_arn) for record in page["records"])
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


def registry_view(sm, endpoint: str, records: list[dict], s3=None, bucket: str | None = None,
                  prefix: str | None = None) -> dict:
    """What the registry says for a page: the serving package, and each shown record's package now.

    Bounded: one DescribeEndpoint/EndpointConfig/Model for the serving package, one
    DescribeModelPackage per record shown (at most ``MAX_LIMIT``). A registry that cannot be read
    leaves the page to the S3 records.
    """
    from sagemaker_retrain import gate, lineage, registry
    from sagemaker_retrain.ownership import describe_endpoint

    info: dict = {"serving": None, "packages": {}, "endpoint_model": None, "lineage": None}
    try:
        model = gate.serving_model(sm, describe_endpoint(sm, endpoint))
        info["endpoint_model"] = model
        info["serving"] = registry.package_of_model(sm, model)
        if model:
            info["lineage"] = lineage.data_behind_endpoint(sm, endpoint, s3=s3, bucket=bucket, prefix=prefix)
    except Exception:  # noqa: BLE001 - the page still shows the S3 records
        pass
    for record in records:
        arn = (record.get("package") or {}).get("arn")
        if arn and arn not in info["packages"]:
            try:
                info["packages"][arn] = registry.summary(sm, arn)
            except Exception:  # noqa: BLE001 - a deleted package: the record's own status is shown
                pass
    return info


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
        else:
            pages = [history.read_page(s3, bucket, prefix, e, OVERVIEW_ROWS) for e in names[:OVERVIEW_ENDPOINTS]]
        sm = _sagemaker() if pages else None
        info = {p["endpoint"]: registry_view(sm, p["endpoint"], p["records"], s3, bucket, prefix) for p in pages}
        return render(pages, names, more, paged=endpoint is not None, registry_info=info)

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
