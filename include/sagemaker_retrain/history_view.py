"""Model history as a page in the Airflow UI: per model of the catalog and per endpoint a trend of the
gate metric, the serving model, and every run's outcome, registry version and approval, metrics,
data version and plot, with links to the model's DAG and runs.

Served by the API server through the plugin in ``plugins/``. It reads the records that each
model's DAG writes to S3 (``sagemaker_retrain.history``, under the model's own history path) and
the SageMaker Model Registry (the package behind the serving model, each shown run's package and
its approval), with the model's Variables and the AWS connection, at request time, so the page
needs no database of its own. Styled with the UI's colours; it follows the UI's light/dark mode.

Every route needs a JWT (``Authorization: Bearer …`` or the ``_token`` cookie the UI sets; 401
without one) and shows only the models whose DAG runs and approvals the auth manager lets that user
read (``history_access``): 403 for a user who may read none, or who asks for another model by name.
Every response carries the headers of ``history_headers`` (Content-Security-Policy, nosniff). Every
route is bounded: it lists at most ``history.MAX_LISTED_KEYS`` keys and reads at most ``MAX_LIMIT``
records (limit/offset); a record that is not a JSON object shows as unreadable, the rest of the page as usual.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from sagemaker_retrain import history, history_access
from sagemaker_retrain.catalog import ModelSpec
from sagemaker_retrain.history_headers import security_headers
from sagemaker_retrain.history_store import Store

log = logging.getLogger(__name__)

DAG_ID = "sagemaker_retrain"  # the first model's DAG (records and links written before the catalog)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
OVERVIEW_MODELS = 10
OVERVIEW_ENDPOINTS = 10  # endpoint sections on one overview, across its models (each reads OVERVIEW_ROWS records)
OVERVIEW_ROWS = 5
MAX_PLOT_LOOKUPS = 200
MAX_PLOT_BYTES = 10 * 1024 * 1024
ENDPOINT_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PLOT_KEY = re.compile(r"^runs/[A-Za-z0-9-]{1,80}/evaluation/predicted_vs_actual\.png$")

METRIC_ORDER = ("rmse", "mae", "r2", "accuracy", "f1", "auc")


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
THEME_JS = ("try{var m=localStorage.getItem('chakra-ui-color-mode');"
            "if(!m&&matchMedia('(prefers-color-scheme: dark)').matches)m='dark';"
            "if(m)document.documentElement.dataset.theme=m}catch(e){}")
THEME_SCRIPT = f"<script>{THEME_JS}</script>"
# The page's only inline script and style, allowed by hash in its Content-Security-Policy.
HEADERS = security_headers(scripts=(THEME_JS,), styles=(STYLE,))


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _run_links(record: dict, dag_id: str = DAG_ID) -> str:
    run_id = record.get("run_id")
    if not run_id:
        return _e(record.get("recorded_at", ""))
    base = f"/dags/{quote(dag_id, safe='')}/runs/{quote(str(run_id), safe='')}"
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


def _row(record: dict, packages: dict[str, dict], serving_arn: str | None, dag_id: str = DAG_ID,
         where: dict | None = None) -> str:
    """One run's table row; a record whose fields are not what a run writes shows as unreadable (and is logged)."""
    try:
        return _row_cells(record, packages, serving_arn, dag_id, where or {})
    except (AttributeError, TypeError, ValueError, KeyError) as err:
        log.warning("Unreadable history record %s: %s: %s", record.get("key") or record.get("run_id"),
                    type(err).__name__, err)
        return (f'<tr class="unreadable"><td>{_e(record.get("run_id") or record.get("key") or "")}</td>'
                '<td class="outcome" colspan="7">unreadable record (fields of an unexpected type; see the API '
                "server's log)</td></tr>")


def _row_cells(record: dict, packages: dict[str, dict], serving_arn: str | None, dag_id: str, where: dict) -> str:
    plot = (record.get("artifacts") or {}).get("plot")
    query = _e(urlencode({"uri": plot, **where})) if plot else ""
    image = (f'<a target="_blank" href="plot?{query}"><img alt="predicted vs actual" '
             f'src="plot?{query}"></a>') if plot else ""
    gate = (record.get("gate") or {}).get("reason", "")
    arn = (record.get("package") or {}).get("arn")
    serving = bool(arn) and arn == serving_arn
    mark = ' <span class="badge Approved">serving</span>' if serving else ""
    return (f'<tr class="{"serving" if serving else ""}"><td>{_run_links(record, dag_id)}</td>'
            f'<td class="outcome">{_e(outcome_text(record))}{mark}</td>'
            f"<td>{_package_cell(record, packages)}</td>"
            f"<td>{_e(record.get('model', ''))}</td>"
            f"<td>{_e(_metrics_cell(record))}</td><td>{_data_cell(record)}</td><td>{_e(gate)}</td>"
            f"<td>{image}</td></tr>")


def _points(records: list[dict]) -> list[dict]:
    """Chart points, oldest first: the gate metric of challenger and champion, and whether it was promoted."""
    out = []
    for record in reversed(records):
        gate = record.get("gate")
        if not isinstance(gate, dict) or not isinstance(gate.get("candidate"), int | float):
            continue  # no gate score, or not one a run writes
        out.append({"challenger": float(gate["candidate"]),
                    "champion": float(gate["champion"]) if isinstance(gate.get("champion"), int | float) else None,
                    "threshold": gate.get("threshold"), "metric": gate.get("metric", ""),
                    "promoted": record.get("outcome") == "promoted", "run_id": record.get("run_id", ""),
                    "arn": _package_arn(record)})
    return out


def _package_arn(record: dict) -> str | None:
    package = record.get("package")
    arn = package.get("arn") if isinstance(package, dict) else None
    return arn if isinstance(arn, str) else None


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
    return f'<a href="?{html.escape(urlencode({k: v for k, v in query.items() if v is not None}))}">{html.escape(text)}</a>'


def _endpoint_section(page: dict, info: dict, paged: bool, model: str | None, dag_id: str) -> list[str]:
    """One endpoint of one model: the serving model, its lineage, the trend chart and the runs' table."""
    endpoint = page["endpoint"]
    serving = info.get("serving")
    serving_arn = (serving or {}).get("arn")
    parts = [f"<h3>{html.escape(endpoint)}</h3>" if model else f"<h2>{html.escape(endpoint)}</h2>"]
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
    where = {"model": model, "endpoint": endpoint} if model else {}
    parts.extend(_row(record, info.get("packages") or {}, serving_arn, dag_id, where) for record in page["records"])
    parts.append("</table>")
    shown = f"{page['offset'] + 1}–{page['offset'] + len(page['records'])}" if page["records"] else "none"
    nav = [f"runs {shown} of {page['total']}{'+' if page['total_is_lower_bound'] else ''}"]
    if paged and page["offset"] > 0:
        nav.append(_link("newer", model=model, endpoint=endpoint, limit=page["limit"],
                         offset=max(0, page["offset"] - page["limit"])))
    if page["next_offset"] is not None:
        nav.append(_link("older" if paged else "all runs", model=model, endpoint=endpoint, limit=page["limit"],
                         offset=page["next_offset"] if paged else 0))
    parts.append(f"<p>{' · '.join(nav)}</p>")
    return parts


def model_section(pages: list[dict], endpoints: list[str] | None = None, more_endpoints: bool = False,
                  paged: bool = False, registry_info: dict[str, dict] | None = None,
                  model: ModelSpec | None = None) -> str:
    """One model: a link to its DAG, its endpoints, and per endpoint page (``history.read_page`` answers)
    the serving model, trend and runs; ``registry_info`` maps an endpoint to ``registry_view``'s answer."""
    registry_info = registry_info or {}
    name = model.name if model else None
    dag_id = model.dag_id if model else DAG_ID
    parts = []
    if model:
        parts.append(f'<h2 class="model" id="model-{_e(name)}">{_e(name)} <span class="muted">· DAG '
                     f'<a target="_top" href="/dags/{_e(quote(dag_id, safe=""))}">{_e(dag_id)}</a> · endpoint '
                     f'{_e(model.endpoint_name)}</span></h2>')
    if endpoints:
        links = " · ".join(_link(e, model=name, endpoint=e) for e in endpoints)
        parts.append(f"<p>Endpoints: {links}{' (first ' + str(len(endpoints)) + ' shown)' if more_endpoints else ''}</p>")
    if not pages:
        parts.append('<p class="no-runs">Open an endpoint above to see its runs.</p>' if endpoints else
                     '<p class="no-runs">No runs recorded yet.</p>')
    for page in pages:
        parts.extend(_endpoint_section(page, registry_info.get(page["endpoint"]) or {}, paged, name, dag_id))
    return "".join(parts)


def page_html(sections: list[str], models: list[ModelSpec] | None = None, more_models: bool = False) -> str:
    """The HTML document: the readable models' links (to their history and their DAG), then the sections."""
    parts = ['<!doctype html><html><head><meta charset="utf-8"><title>Model history</title>', THEME_SCRIPT,
             f"<style>{STYLE}</style></head><body><h1>Model history</h1>"]
    if models:
        links = " · ".join(f'{_link(m.name, model=m.name)} (<a target="_top" href="/dags/{_e(quote(m.dag_id, safe=""))}">'
                           f"DAG</a>)" for m in models)
        more = f" (the first {OVERVIEW_MODELS} shown below)" if more_models else ""
        parts.append(f'<p class="models">Models: {links}{more}</p>')
    parts.extend(sections)
    parts.append("</body></html>")
    return "".join(parts)


def render(pages: list[dict], endpoints: list[str] | None = None, more_endpoints: bool = False,
           paged: bool = False, registry_info: dict[str, dict] | None = None, model: ModelSpec | None = None) -> str:
    """One model's page (``model_section`` in the document)."""
    return page_html([model_section(pages, endpoints, more_endpoints, paged, registry_info, model)])


def registry_view(sm, endpoint: str, records: list[dict], s3=None, bucket: str | None = None,
                  prefix: str | None = None, history_path: str = "history") -> dict:
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
            info["lineage"] = lineage.data_behind_endpoint(sm, endpoint, s3=s3, bucket=bucket, prefix=prefix,
                                                           history_path=history_path)
    except Exception:  # noqa: BLE001 - the page still shows the S3 records
        pass
    for record in records:
        arn = _package_arn(record)
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


async def _reader(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> list[ModelSpec]:
    """The models this request's user may read: Airflow's ``get_user`` (Bearer header, else the UI's
    ``_token`` cookie; 401 without a token), then the auth manager per model's DAG (``history_access``);
    403 when there is none.

    Imported here rather than at module level: the plugin module is imported by every Airflow
    process, and only the API server needs the API's security module.
    """
    from airflow.api_fastapi.core_api.security import get_user

    user = await get_user(request, None, bearer)
    models = await run_in_threadpool(history_access.readable, history_access.catalog_models(), user)
    if not models:
        raise HTTPException(403, "Forbidden: no model's DAG runs you may read")
    return models


Readable = Annotated[list[ModelSpec], Depends(_reader)]


def _chosen(models: list[ModelSpec], name: str | None) -> list[ModelSpec]:
    """The model asked for by name (403 if this user may not read it, 404 if the catalog has none), else all."""
    if name is None:
        return models
    for model in models:
        if model.name == name:
            return [model]
    if any(m.name == name for m in history_access.catalog_models()):
        raise HTTPException(403, f"Forbidden: you may not read model {name}'s DAG runs")
    raise HTTPException(404, f"no model {name} in the catalog")


def _stores(models: list[ModelSpec]) -> list[Store]:
    clients: dict = {}
    return [Store(m, clients) for m in models]


def _with_endpoint(models: list[ModelSpec], endpoint: str) -> Store:
    """The first readable model with runs on ``endpoint`` (links made before the catalog name the endpoint only)."""
    stores = _stores(models)
    for store in stores:
        if history.list_record_keys(store.s3, store.bucket, store.prefix, endpoint, 1, path=store.path)[0]:
            return store
    return stores[0]


def create_app() -> FastAPI:
    # No /docs, /redoc or /openapi.json: they would not pass through the access check.
    app = FastAPI(title="SageMaker model history", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_reader)])
    limit_query = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset_query = Query(0, ge=0, le=history.MAX_LISTED_KEYS)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)  # errors (401, 403, 404, 422) too: they are answered inside
        response.headers.update(HEADERS)
        return response

    def section(store: Store, endpoint: str | None, limit: int, offset: int, budget: list[int]) -> str:
        """One model's section; ``budget``: the endpoint sections the overview may still read (shared by its models)."""
        names, more = store.endpoints()
        if endpoint is not None:
            pages = [store.page(_endpoint(endpoint), limit, offset)]
        else:
            pages = [store.page(e, OVERVIEW_ROWS) for e in names[:budget[0]]]
            budget[0] -= len(pages)
        sm = store.sagemaker() if pages else None
        info = {p["endpoint"]: registry_view(sm, p["endpoint"], p["records"], store.s3, store.bucket, store.prefix,
                                             store.path) for p in pages}
        return model_section(pages, names, more, paged=endpoint is not None, registry_info=info, model=store.model)

    @app.get("/", response_class=HTMLResponse)
    def page(readable: Readable, model: str | None = Query(None, max_length=63), endpoint: str | None = None,
             limit: int = limit_query, offset: int = offset_query) -> str:
        if model is None and endpoint is not None:  # a link that names the endpoint only
            store = _with_endpoint(readable, _endpoint(endpoint))
            return page_html([section(store, endpoint, limit, offset, [1])], readable)
        shown = _chosen(readable, model)
        budget = [OVERVIEW_ENDPOINTS]
        sections = [section(store, endpoint, limit, offset, budget) for store in _stores(shown[:OVERVIEW_MODELS])]
        return page_html(sections, readable, more_models=len(shown) > OVERVIEW_MODELS)

    @app.get("/api/models")
    def models(readable: Readable) -> dict:
        return {"models": [{"name": m.name, "dag_id": m.dag_id, "endpoint": m.endpoint_name,
                            "history_path": m.history_path} for m in readable]}

    @app.get("/api/endpoints")
    def endpoint_names(readable: Readable, model: str | None = Query(None, max_length=63)) -> dict:
        names, more = set(), False
        for store in _stores(_chosen(readable, model)):
            found, truncated = store.endpoints()
            names.update(found)
            more = more or truncated
        return {"endpoints": sorted(names), "truncated": more}

    @app.get("/api/{endpoint}")
    def records(readable: Readable, endpoint: str, model: str | None = Query(None, max_length=63),
                limit: int = limit_query, offset: int = offset_query) -> dict:
        endpoint = _endpoint(endpoint)
        store = Store(_chosen(readable, model)[0]) if model else _with_endpoint(readable, endpoint)
        return {"model": store.model.name, **store.page(endpoint, limit, offset)}

    @app.get("/plot")
    def plot(readable: Readable, uri: str = Query(..., max_length=1024), model: str | None = Query(None, max_length=63),
             endpoint: str | None = None) -> Response:
        store = _plot_store(_chosen(readable, model), uri, endpoint)
        obj = store.s3.get_object(Bucket=store.bucket, Key=uri[len(f"s3://{store.bucket}/"):])
        if obj.get("ContentLength", 0) > MAX_PLOT_BYTES:
            obj["Body"].close()
            raise HTTPException(413, "plot too large")
        return Response(obj["Body"].read(MAX_PLOT_BYTES + 1), media_type="image/png")

    return app


def _plot_store(models: list[ModelSpec], uri: str, endpoint: str | None) -> Store:
    """The store of a readable model one of whose runs made this plot (its record is in the model's history).

    Only a pipeline plot (``s3://BUCKET/PREFIX/runs/RUN/evaluation/predicted_vs_actual.png``) of a
    readable model's bucket and prefix (else 400), of a run recorded in that model's history (else
    404): a user who may read one model cannot fetch another's plots by guessing run names.
    """
    stores = _stores(models)
    mine = [s for s in stores if uri.startswith(f"s3://{s.bucket}/{s.prefix}/")
            and PLOT_KEY.match(uri[len(f"s3://{s.bucket}/{s.prefix}/"):])]
    if not mine:
        raise HTTPException(400, "only the pipeline's own plots can be shown")
    slug = uri.split("/runs/", 1)[1].split("/", 1)[0]
    lookups = 0
    for store in mine:
        for name in [_endpoint(endpoint)] if endpoint else store.endpoints()[0]:
            lookups += 1
            if lookups > MAX_PLOT_LOOKUPS:
                break
            if store.has_run(name, slug):
                return store
    raise HTTPException(404, "no run of a model you may read made this plot")
