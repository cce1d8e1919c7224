"""What a run's summary is built from: facts in S3 and SageMaker, read by the run's own identity.

The summary (``outcome.report_run``) pulls no other task's XCom: Airflow keeps the XCom of a task
skipped on a later pass of a cleared run, and an operator should take its inputs as arguments. Its
input is the run's plan (``prepare``'s output), which says where this run's facts are:

- the history record (``plan["history_uri"]``), written by whichever of ``publish``, ``keep_champion``
  and ``rejected`` ended the run: the decision, both scores, the approval's words;
- the gate's decision (:func:`gate_uri`), written by ``gate`` for runs that end before a record;
- what the endpoint serves now (``DescribeEndpoint`` and its config's tags): the fact behind
  "promoted" and "restored".

A clear that keeps the run's names (a clear of ``gate`` or later) writes at the same keys as the pass
before it. So each document carries the identity of the pass that wrote it (:func:`identity`: the run
id, the slug with its generation, and Airflow's clear number, which every clear raises since it also
clears ``prepare``), and a document of another pass is not read as this pass's.
"""

from __future__ import annotations

import json
import logging

from botocore.exceptions import ClientError

from sagemaker_retrain import history
from sagemaker_retrain.config import TAG_RUN, TAG_VERIFIED
from sagemaker_retrain.data_prep.source import split_s3_uri
from sagemaker_retrain.ownership import describe_endpoint
from sagemaker_retrain.undo import config_tags

log = logging.getLogger(__name__)

IDENTITY = ("run_id", "slug", "clear_number")


def identity(plan: dict) -> dict:
    """The pass that writes a document: what makes it this pass's and no other's."""
    return {"run_id": plan["run_id"], "slug": plan["slug"], "clear_number": plan.get("clear_number", 0)}


def gate_uri(plan: dict) -> str:
    """Where the gate writes its decision and evidence (beside the metrics, plot and predictions)."""
    return f"s3://{plan['settings']['bucket']}/{plan['run_prefix']}/evaluation/gate.json"


def record_gate(s3, plan: dict, evidence: dict) -> str:
    """Write the gate's decision and evidence, with the pass that took them; return its URI."""
    uri = gate_uri(plan)
    bucket, key = split_s3_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, ContentType="application/json",
                  Body=json.dumps({**identity(plan), **evidence}, indent=2, default=str).encode())
    return uri


def _read_json(s3, uri: str) -> dict | None:
    """The document at ``uri`` as the history page reads a record (size cap, a corrupt one a stub); None if absent."""
    try:
        return history.read_shown_record(s3, *split_s3_uri(uri))
    except ClientError as err:
        if err.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def of_this_pass(document: dict | None, plan: dict) -> dict | None:
    """``document`` if this pass of the run wrote it, else None (an earlier pass's, or another run's)."""
    if document is None:
        return None
    mine = identity(plan)
    if any(document.get(field) != mine[field] for field in IDENTITY):
        log.info("Not this pass's: %s (this pass: %s)", {f: document.get(f) for f in IDENTITY}, mine)
        return None
    return document


def history_record(s3, plan: dict) -> tuple[dict | None, str | None]:
    """``(record, its URI)`` when this pass wrote the run's history record, else ``(None, None)``."""
    uri = plan["history_uri"]
    record = of_this_pass(_read_json(s3, uri), plan)
    return (record, uri) if record else (None, None)


def evidence_of(record: dict | None) -> dict | None:
    """The gate's evidence as a history record keeps it (the summary's shape: decision, rows, artifacts)."""
    if not record or not record.get("gate"):
        return None
    return {"decision": record["gate"], "rows": record.get("scored_rows") or {},
            "artifacts": record.get("artifacts") or {}}


def gate_evidence(s3, plan: dict) -> dict | None:
    """The gate's evidence, when this pass's gate wrote it."""
    return of_this_pass(_read_json(s3, gate_uri(plan)), plan)


def serving(sm, endpoint_name: str, run_id: str) -> str:
    """What the endpoint serves now, in words: whose config, and whether its run verified it."""
    endpoint = describe_endpoint(sm, endpoint_name)
    if endpoint is None:
        return f"endpoint {endpoint_name} does not exist"
    config = endpoint.get("EndpointConfigName")
    tags = config_tags(sm, config) or {}
    maker = tags.get(TAG_RUN)
    whose = "this run's" if maker == run_id[:256] else f"run {maker}'s" if maker else "no run's tag"
    verified = "verified" if tags.get(TAG_VERIFIED) else "not verified"
    return f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}, serving {config} ({whose}, {verified})"
