"""The run's outcome, readable on its page in the Airflow UI without opening a log.

When a run ends, :func:`report_run` (called once, at the end of the teardown) sums it up:
the decision (promoted / evaluated and deleted / kept the champion / "Rejected by USER: comment"
(or "Rejected: no answer within N h", "Rejected: USER triggered this run and may not approve it")
/ failed, and why), the challenger's and the champion's scores on the same test rows, the endpoint
and model, what the endpoint serves now, and links to the predicted-vs-actual plot and the model history
page. It is built from facts (this pass's history record and gate decision in S3, the endpoint as
SageMaker describes it: :mod:`sagemaker_retrain.run_facts`), never from another task's XCom. A run refused
at its start (a bad Param combination, an admin limit) is summed up by :func:`report_refusal`,
from prepare: the teardown does not run when its setup failed.

Where Airflow 3.3 shows it:

* **Always (Task SDK, no credentials):** the one-line headline becomes the reporting task's
  *rendered map index* (``map_index_template``, rendered by the task runner after execute, on
  success and on failure alike). The run page's task list shows it next to ``teardown`` (or
  ``prepare``), in the "Map Index" column, for tasks that are not mapped too.
* **With an API connection:** the whole markdown summary (links included) becomes the *run's
  note*, shown by the run page's "Note" button and the runs list. Airflow 3.3's execution API (the
  Task SDK's channel) cannot set a note, so this uses the public REST API
  (``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}``), with the Airflow connection
  :data:`API_CONN_ID` (type http; host: the API server's base URL; login/password of a user
  who may edit this DAG's runs, or ``{"token": ...}`` in extra). Without that connection the
  note is left alone.

Nothing here fails a run: a summary that cannot be shown is logged and skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

API_CONN_ID = "sagemaker_retrain_airflow_api"
NOTE_MAX_CHARS = 1000  # Airflow's dag_run_note.content column
LABEL_MAX_CHARS = 250  # task_instance.rendered_map_index column
FAILED = frozenset({"failed", "upstream_failed"})
HTTP_TIMEOUT = 10
MARKER = "**Outcome: "  # where this module's part of a note begins (a person's note before it is kept)


# --- the summary ------------------------------------------------------------------------------
def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and math.isfinite(value) else "—"


def _scores(evidence: Mapping | None) -> str:
    """``test:mse: challenger 10.3 vs champion 16.4 (threshold 100) on 51 test rows``."""
    if not evidence:
        return ""
    decision = evidence.get("decision") or {}
    rows = (evidence.get("rows") or {}).get("count")
    champion = (f"champion {_number(decision.get('champion'))}" if decision.get("champion_model")
                else "no champion serving")
    text = (f"{decision.get('metric', 'gate metric')}: challenger {_number(decision.get('candidate'))} vs {champion}"
            f" (threshold {_number(decision.get('threshold'))})")
    return f"{text} on {rows} test rows" if rows else text


def _links(base_url: str, endpoint_param: str | None, evidence: Mapping | None) -> list[tuple[str, str]]:
    """Links to the model history page (this endpoint) and to this run's plot, through the UI plugin."""
    base = base_url.rstrip("/")
    links = []
    plot = ((evidence or {}).get("artifacts") or {}).get("plot")
    if plot:
        links.append(("plot: predicted vs actual", f"{base}/model-history/plot?{urllib.parse.urlencode({'uri': plot})}"))
    if endpoint_param:
        links.append(("model history", f"{base}/model-history/?{urllib.parse.urlencode({'endpoint': endpoint_param})}"))
    return links


def rejection(approval: Mapping | None, gate_reason: str = "") -> tuple[str, str]:
    """``(decision, why)`` of a promotion rejected at approval, in the approval's own words.

    The approval step describes its decision as "Rejected by USER: comment", "Rejected by USER",
    "Rejected: no answer within N h (timeout)" or "Rejected: USER triggered this run and may not
    approve it"; the run page shows exactly that (decision before the first ": ", why after it).
    """
    description = str((approval or {}).get("description") or "").strip()
    if not description.startswith("Rejected"):
        return "Rejected at approval", f"gate: {gate_reason}" if gate_reason else ""
    decision, _, why = description.partition(": ")
    return decision, why


def decide_outcome(states: Mapping[str, str], evidence: Mapping | None, mode: str,
                   reporter: str = "teardown", approval: Mapping | None = None) -> tuple[str, str]:
    """``(decision, why)`` from the run's task states, the gate's evidence and the approval step's decision."""
    # The watcher fails because another task did (its ONE_FAILED rule fires at once): not a cause of its own.
    failed = sorted(t for t, s in states.items() if s in FAILED and t not in (reporter, "watcher"))
    reason = ((evidence or {}).get("decision") or {}).get("reason", "")
    if failed:
        first = next((t for t in ("prepare", "train", "register", "pin_champion", "stage", "score_0", "score_1",
                                  "gate", "approve", "deploy", "wait_for_endpoint", "publish", "keep_champion",
                                  "restore")
                      if t in failed), failed[0])
        return "Failed", f"{', '.join(failed)} failed (first: {first}; its log says why)"
    if states.get("keep_champion") == "success":
        return "Kept the champion", reason
    if states.get("rejected") == "success":  # the approval step branched there: a person (or the clock) said no
        return rejection(approval, reason)
    if states.get("publish") == "success":
        return "Promoted", reason
    if mode == "ephemeral" and states.get("wait_for_endpoint") == "success":
        return "Evaluated, then deleted (ephemeral)", reason
    return "Ended without a decision", reason


def _says_why(decision: str) -> bool:
    return decision == "Failed" or decision.startswith("Rejected")


def summarize(*, decision: str, why: str, evidence: Mapping | None, endpoint: str | None, model: str | None,
              endpoint_param: str | None, base_url: str, serving: str | None = None,
              history: str | None = None) -> tuple[str, str]:
    """``(headline, markdown)``: one line for the task list, a short markdown note for the run."""
    scores = _scores(evidence)
    said = f"{decision}: {why}" if why and _says_why(decision) else decision
    headline = " · ".join(part for part in (said, scores) if part)
    lines = [f"{MARKER}{decision}**" + (f" — {why}" if why else "")]
    if scores:
        lines.append(f"- Scores on the same rows: {scores}")
    if endpoint or model:
        lines.append(f"- Endpoint `{endpoint or '—'}`, model `{model or '—'}`")
    if serving:
        lines.append(f"- Now: {serving}")
    if history:
        lines.append(f"- History record: `{history}`")
    links = _links(base_url, endpoint_param, evidence)
    if links:
        lines.append("- " + " · ".join(f"[{text}]({url})" for text, url in links))
    return _cut(headline, LABEL_MAX_CHARS), _fit_note(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit_note(lines: list[str]) -> str:
    """The lines that fit the note column; the last line (the links) is kept whenever it fits at all."""
    note = "\n".join(lines)
    if len(note) <= NOTE_MAX_CHARS or len(lines) < 2:
        return _cut(note, NOTE_MAX_CHARS)
    tail = lines[-1]
    room = NOTE_MAX_CHARS - len(tail) - 1  # what the other lines may take, newline before the tail included
    if room < 2:
        return _cut(note, NOTE_MAX_CHARS)
    return f"{_cut(chr(10).join(lines[:-1]), room)}\n{tail}"


# --- showing it -----------------------------------------------------------------------------------
def base_url() -> str:
    """The UI's base URL for links (``[api] base_url``); empty for links relative to the UI."""
    url = os.environ.get("AIRFLOW__API__BASE_URL")
    if url is None:
        try:
            from airflow.sdk import conf

            url = conf.get("api", "base_url", fallback="")
        except Exception:  # noqa: BLE001 - no config: relative links
            url = ""
    return (url or "").rstrip("/")


def label_task(context: dict, headline: str) -> None:
    """Show ``headline`` next to this task in the run's task list (its rendered map index)."""
    context["sagemaker_retrain_outcome"] = _cut(headline, LABEL_MAX_CHARS)
    context["map_index_template"] = "{{ sagemaker_retrain_outcome }}"


def _api_token(conn) -> str:
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("token"):
        return extra["token"]
    answer = _http("POST", f"{_api_base(conn)}/auth/token", {"username": conn.login, "password": conn.password})
    return answer["access_token"]


def _api_base(conn) -> str:
    host = (conn.host or "").rstrip("/")
    if not host.startswith(("http://", "https://")):
        host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
    return host


def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 - http(s) from a connection
        raw = response.read()
    return json.loads(raw) if raw else None


def set_run_note(dag_id: str, run_id: str, note: str) -> bool:
    """Set the run's note through Airflow's REST API, if the API connection is configured."""
    try:
        from airflow.sdk import Connection

        conn = Connection.get(API_CONN_ID)
    except Exception:  # noqa: BLE001 - not configured: the task label is the summary
        log.info("No Airflow connection %s: the run's note is left alone (the outcome is teardown's label).",
                 API_CONN_ID)
        return False
    url = (f"{_api_base(conn)}/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns/"
           f"{urllib.parse.quote(run_id, safe='')}?update_mask=note")
    try:
        token = _api_token(conn)
        current = (_http("GET", url.split("?")[0], token=token) or {}).get("note") or ""
        _http("PATCH", url, {"note": merge_note(current, note)}, token=token)
    except (urllib.error.URLError, OSError, KeyError, ValueError) as err:
        log.warning("Could not set the run's note through %s: %s", API_CONN_ID, err)
        return False
    return True


def merge_note(current: str, summary: str) -> str:
    """A person's note stays first; this module's earlier summary (a retried teardown) is replaced."""
    person = current.split(MARKER, 1)[0].rstrip() if current else ""
    if not person:
        return summary
    room = NOTE_MAX_CHARS - len(summary) - 2
    return summary if room < 20 else f"{_cut(person, room)}\n\n{summary}"


def show(context: dict, headline: str, note: str) -> None:
    """Label the reporting task with the headline; make the markdown the run's note when possible."""
    log.info("Outcome: %s\n%s", headline, note)
    try:
        label_task(context, headline)
        ti = context["ti"]
        set_run_note(ti.dag_id, ti.run_id, note)
    except Exception:  # noqa: BLE001 - the summary must never fail the run
        log.warning("Could not show the run's outcome", exc_info=True)


# --- the two callers ------------------------------------------------------------------------------
def report_run(context: dict, states: Mapping[str, str], *, plan: Mapping, mode: str | None,
               make_s3: Callable[[], Any], sagemaker) -> tuple[str, str] | None:
    """Sum up a run that reached its teardown; called at the end of ``RunCleanupOperator.execute``.

    From facts, never from another task's XCom (:mod:`sagemaker_retrain.run_facts`): ``plan`` (the
    clean-up's own input) names this pass's history record and gate decision in S3, read only when
    this pass wrote them, and ``sagemaker`` says what the endpoint serves now. ``states`` (this pass's
    task states) say which outcome it was. ``make_s3`` makes the S3 client here, where a failure is logged.
    """
    try:
        from sagemaker_retrain import run_facts

        ti, params, s3 = context["ti"], context["params"], make_s3()
        record, history = run_facts.history_record(s3, plan)
        evidence = run_facts.evidence_of(record) or run_facts.gate_evidence(s3, plan)
        decision, why = decide_outcome(states, evidence, mode, reporter=ti.task_id,
                                       approval=(record or {}).get("approval"))
        names = plan["names"]
        headline, note = summarize(
            decision=decision, why=why, evidence=evidence, endpoint=names["endpoint"], model=names["model"],
            endpoint_param=params.get("endpoint_name"), base_url=base_url(),
            serving=run_facts.serving(sagemaker, names["endpoint"], plan["run_id"]), history=history,
        )
    except Exception:  # noqa: BLE001 - the summary must never fail the run
        log.warning("Could not sum up the run's outcome", exc_info=True)
        return None
    show(context, headline, note)
    return headline, note


def report_refusal(error: BaseException) -> None:
    """Sum up a run refused at its start (prepare): which Params, and why; nothing was spent."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # noqa: BLE001 - called outside a task (tests, scripts): nothing to show
        return
    message = str(error)
    show(context, _cut(f"Refused: {message}", LABEL_MAX_CHARS),
         _fit_note([f"{MARKER}Refused before anything was spent** — {message}",
                    "- Fix the Param(s) named above in the Trigger form and trigger again."]))


def report_skip(message: str) -> None:
    """Sum up a run that ended early on purpose (the data is what the serving model was trained on)."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # noqa: BLE001 - called outside a task (tests, scripts): nothing to show
        return
    show(context, _cut(message, LABEL_MAX_CHARS),
         _fit_note([f"{MARKER}Skipped: unchanged data** — {message}",
                    "- Nothing was trained; the serving model stays."]))
