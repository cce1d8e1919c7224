"""The run's outcome summary: decision, both scores on the same rows, endpoint and model, links."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from sagemaker_retrain import evaluation, gate, history, naming, outcome, pipeline, run_facts
from sagemaker_retrain.config import TAG_VERIFIED, tags
from sagemaker_retrain.images import linear_learner_image
from sagemaker_retrain.settings import DeploymentSettings

EVIDENCE = {
    "decision": {"deploy": False, "reason": "test:rmse=5.1000 misses the threshold (at most 1.0)",
                 "metric": "test:rmse", "candidate": 5.1, "champion": 4.9, "champion_model": "m-old",
                 "threshold": 1.0},
    "scores": {"challenger": {"rmse": 5.1}, "champion": {"rmse": 4.9}},
    "rows": {"count": 51, "split_seed": 42},
    "artifacts": {"plot": "s3://bucket/sagemaker-retrain/runs/x/evaluation/predicted_vs_actual.png"},
}
DONE = {"prepare": "success", "train": "success", "pin_champion": "success", "stage": "success", "score_0": "success",
        "score_1": "success", "gate": "success"}


@pytest.mark.parametrize(("states", "mode", "decision"), [
    ({**DONE, "keep_champion": "success", "deploy": "skipped"}, "persistent", "Kept the champion"),
    ({**DONE, "deploy": "success", "wait_for_endpoint": "success", "publish": "success"}, "persistent", "Promoted"),
    ({**DONE, "deploy": "success", "wait_for_endpoint": "success", "publish": "skipped"}, "ephemeral",
     "Evaluated, then deleted (ephemeral)"),
    ({**DONE, "approve": "failed", "deploy": "upstream_failed"}, "persistent", "Failed"),
    # approve skipped, nothing after it ran: no decision was taken (not "rejected by a person")
    ({**DONE, "approve": "skipped", "deploy": "skipped"}, "persistent", "Ended without a decision"),
    ({**DONE, "deploy": "success", "wait_for_endpoint": "failed", "restore": "success"}, "persistent", "Failed"),
])
def test_decision_from_task_states(states, mode, decision):
    assert outcome.decide_outcome(states, EVIDENCE, mode)[0] == decision


def test_failure_names_the_failed_tasks_not_the_teardown():
    decision, why = outcome.decide_outcome({**DONE, "deploy": "failed", "teardown": "failed"}, EVIDENCE, "persistent")
    assert decision == "Failed" and "deploy" in why and "teardown" not in why


def test_summary_has_both_scores_endpoint_model_and_links():
    headline, note = outcome.summarize(
        decision="Kept the champion", why=EVIDENCE["decision"]["reason"], evidence=EVIDENCE, endpoint="ep",
        model="m-new", endpoint_param="ep", base_url="http://airflow:8080/", history="s3://b/h.json")
    assert headline == "Kept the champion · test:rmse: challenger 5.1 vs champion 4.9 (threshold 1) on 51 test rows"
    assert note.startswith(outcome.MARKER + "Kept the champion** — test:rmse=5.1000 misses")
    assert "Endpoint `ep`, model `m-new`" in note
    assert ("[plot: predicted vs actual](http://airflow:8080/model-history/plot?uri=s3%3A%2F%2Fbucket%2F"
            "sagemaker-retrain%2Fruns%2Fx%2Fevaluation%2Fpredicted_vs_actual.png)") in note
    assert "[model history](http://airflow:8080/model-history/?endpoint=ep)" in note


def test_summary_without_champion_or_evidence():
    evidence = {**EVIDENCE, "decision": {**EVIDENCE["decision"], "champion": None, "champion_model": None}}
    headline, _ = outcome.summarize(decision="Promoted", why="", evidence=evidence, endpoint="ep", model="m",
                                    endpoint_param="ep", base_url="")
    assert "challenger 5.1 vs no champion serving" in headline
    headline, note = outcome.summarize(decision="Failed", why="train failed", evidence=None, endpoint=None,
                                       model=None, endpoint_param="ep", base_url="", serving="endpoint ep does not exist")
    assert headline == "Failed: train failed" and "Now: endpoint ep does not exist" in note
    assert "(/model-history/?endpoint=ep)" in note


def test_note_fits_airflows_column_and_keeps_the_links():
    _, note = outcome.summarize(decision="Failed", why="x" * 3000, evidence=EVIDENCE, endpoint="ep", model="m",
                                endpoint_param="ep", base_url="http://a")
    assert len(note) <= outcome.NOTE_MAX_CHARS
    assert note.rstrip().endswith("(http://a/model-history/?endpoint=ep)")


def test_a_persons_note_is_kept_and_an_earlier_summary_replaced():
    summary = outcome.MARKER + "Promoted**"
    assert outcome.merge_note("", summary) == summary
    assert outcome.merge_note("looked at by Ana", summary) == "looked at by Ana\n\n" + summary
    assert outcome.merge_note("looked at by Ana\n\n" + outcome.MARKER + "Failed**", summary) == (
        "looked at by Ana\n\n" + summary)


def test_label_is_the_tasks_rendered_map_index():
    from jinja2 import Template

    context: dict = {}
    outcome.label_task(context, "Promoted · test:rmse: challenger 3 vs champion 4 {{ not a template }}")
    rendered = Template(context["map_index_template"]).render(context)
    assert rendered == "Promoted · test:rmse: challenger 3 vs champion 4 {{ not a template }}"


def test_no_api_connection_leaves_the_note_alone(monkeypatch):
    from airflow.sdk import Connection

    def missing(conn_id):
        raise LookupError(conn_id)

    monkeypatch.setattr(Connection, "get", staticmethod(missing))
    assert outcome.set_run_note("d", "r", "note") is False


# --- a rejection at approval, in the approval step's own words (issue 21 / 24) ----------------------------
REJECTED = {**DONE, "approve": "success", "deploy": "skipped", "rejected": "success"}


@pytest.mark.parametrize(("description", "decision", "why"), [
    ("Rejected by bob: drift in the new data", "Rejected by bob", "drift in the new data"),
    ("Rejected by bob", "Rejected by bob", ""),
    ("Rejected: no answer within 24 h (timeout)", "Rejected", "no answer within 24 h (timeout)"),
    ("Rejected: alice triggered this run and may not approve it", "Rejected",
     "alice triggered this run and may not approve it"),
])
def test_a_rejection_reads_as_the_approval_says(description, decision, why):
    approval = {"status": "Rejected", "description": description, "approver": "bob"}
    assert outcome.decide_outcome(REJECTED, EVIDENCE, "persistent", approval=approval) == (decision, why)
    headline, note = outcome.summarize(decision=decision, why=why, evidence=EVIDENCE, endpoint="ep", model="m",
                                       endpoint_param="ep", base_url="")
    assert headline.startswith(description + " · test:rmse")
    assert note.startswith(f"{outcome.MARKER}{decision}**")


def test_a_rejection_without_the_approvals_words_still_says_rejected():
    decision, why = outcome.decide_outcome(REJECTED, EVIDENCE, "persistent", approval=None)
    assert decision == "Rejected at approval" and why.startswith("gate: test:rmse=5.1000")


# --- report_run: the summary from facts (this pass's records in S3, the endpoint now), never an XCom ---------
BUCKET = "outcome-bucket"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
ENDPOINT = "ep-outcome"
RUN_ID = "manual__2026-12-06T10:00:00+00:00"
CHAMPION_RUN = "scheduled__2026-11-29T00:00:00+00:00"
METRIC = "test:mse"


class NoXComTI:
    """The reporting task instance: a summary that pulled any task's XCom would fail the test."""

    dag_id, run_id, task_id = "sagemaker_retrain", RUN_ID, "teardown"

    def xcom_pull(self, *args, **kwargs):
        raise AssertionError(f"the summary pulled an XCom: {args} {kwargs}")


@pytest.fixture
def sm(s3):
    """moto's SageMaker (in the S3 fixture's mock), with ENDPOINT serving a verified config of an earlier run."""
    import boto3

    client = boto3.client("sagemaker", region_name=REGION)
    champion = _config(client, f"{ENDPOINT}-champion", CHAMPION_RUN)
    client.add_tags(ResourceArn=client.describe_endpoint_config(EndpointConfigName=champion)["EndpointConfigArn"],
                    Tags=[{"Key": TAG_VERIFIED, "Value": f"by {CHAMPION_RUN}"}])
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=champion, Tags=tags(ENDPOINT, CHAMPION_RUN))
    return client


@pytest.fixture
def shown(monkeypatch):
    """The notes report_run sets (the API call replaced), links relative to the UI."""
    notes: list[str] = []
    monkeypatch.setattr(outcome, "set_run_note", lambda dag_id, run_id, note: notes.append(note) or True)
    monkeypatch.setattr(outcome, "base_url", lambda: "")
    return notes


def _config(sm, name: str, run_id: str) -> str:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": linear_learner_image(REGION), "ModelDataUrl": f"s3://{BUCKET}/models/{name}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, Tags=tags(ENDPOINT, run_id), ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    return name


def _plan(generation: int = 0, clear_number: int = 0) -> dict:
    """A pass's plan as prepare names it: the slug carries the generation, the pass its clear number."""
    settings = DeploymentSettings(bucket=BUCKET, role_arn=ROLE, region=REGION, aws_conn_id=None)
    slug = naming.run_slug(RUN_ID, datetime(2026, 12, 6, 10, tzinfo=UTC), generation)
    name = naming.resource_name(ENDPOINT, slug)
    return {
        "run_id": RUN_ID, "slug": slug, "clear_number": clear_number, "settings": settings.as_dict(),
        "run_prefix": f"{settings.prefix}/runs/{slug}",
        "history_uri": f"s3://{BUCKET}/{history.record_key(settings.prefix, ENDPOINT, slug)}",
        "names": {"training_job": name, "model": name, "endpoint_config": name, "endpoint": ENDPOINT},
        "data": {"rows": {"test": 40}, "source": {}, "trigger": "manual"}, "dataset_uri": f"s3://{BUCKET}/data.csv",
    }


def _params(mode: str = "persistent") -> dict:
    return {"mode": mode, "endpoint_name": ENDPOINT, "dataset_uri": f"s3://{BUCKET}/data.csv", "split_seed": 7}


def _gate(s3, plan: dict, challenger_noise: float, champion_noise: float, seed: int) -> dict:
    """What this pass's gate decides and writes: both models scored on the same rows, the real gate rule."""
    rng = np.random.default_rng(seed)
    y = rng.normal(20, 5, size=plan["data"]["rows"]["test"])
    scores = {role: evaluation.regression_metrics(y, y + rng.normal(0, noise, size=y.size))
              for role, noise in (("challenger", challenger_noise), ("champion", champion_noise))}
    decision = gate.decide(METRIC, scores["challenger"]["mse"], 100.0, scores["champion"]["mse"],
                           f"{ENDPOINT}-champion")
    evidence = {"decision": decision.as_dict(), "scores": scores, "rows": {"count": y.size, "split_seed": seed},
                "artifacts": {"plot": f"s3://{BUCKET}/{plan['run_prefix']}/evaluation/predicted_vs_actual.png"},
                "package": None, "champion_package": None}
    run_facts.record_gate(s3, plan, evidence)
    return evidence


def _deploy_and_publish(sm, plan: dict, evidence: dict) -> str:
    """deploy's switch to this pass's config, then publish: the record and the verified tag."""
    config = _config(sm, plan["names"]["endpoint_config"], RUN_ID)
    # moto has no UpdateEndpoint: the endpoint made again on this config is what the summary reads alike
    sm.delete_endpoint(EndpointName=ENDPOINT)
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config, Tags=tags(ENDPOINT, CHAMPION_RUN))
    approval = pipeline.decide_approval(plan, None, True, pipeline.NO_APPROVAL_REASON, approver="policy")
    return pipeline.publish(plan, _params(), evidence, {"endpoint_config_name": config}, approval)["history"]


def _report(s3, sm, plan: dict, states: dict, mode: str = "persistent"):
    context = {"ti": NoXComTI(), "params": _params(mode)}
    return outcome.report_run(context, states, plan=plan, mode=mode, make_s3=lambda: s3, sagemaker=sm)


def _challenger(evidence: dict) -> str:
    return f"challenger {evidence['decision']['candidate']:.4g} vs champion {evidence['decision']['champion']:.4g}"


PROMOTED = {**DONE, "approve": "success", "deploy": "success", "wait_for_endpoint": "success",
            "publish": "success", "keep_champion": "skipped", "rejected": "skipped", "restore": "success"}
KEPT = {**DONE, "keep_champion": "success", "approve": "skipped", "deploy": "skipped", "rejected": "skipped",
        "wait_for_endpoint": "skipped", "publish": "skipped"}


def test_a_promoted_run_from_its_record_and_the_endpoint(s3, sm, shown):
    plan = _plan()
    evidence = _gate(s3, plan, challenger_noise=0.5, champion_noise=3.0, seed=1)
    record = _deploy_and_publish(sm, plan, evidence)
    headline, note = _report(s3, sm, plan, PROMOTED)
    assert headline.startswith(f"Promoted · {METRIC}: {_challenger(evidence)}")
    assert f"on {evidence['rows']['count']} test rows" in headline
    assert record == plan["history_uri"] and f"History record: `{record}`" in note
    assert f"serving {plan['names']['endpoint_config']} (this run's, verified)" in note
    assert shown == [note]


def test_a_kept_champion_from_its_record_and_the_endpoint(s3, sm, shown):
    plan = _plan()
    evidence = _gate(s3, plan, challenger_noise=3.0, champion_noise=0.5, seed=2)
    record = pipeline.keep_champion(plan, _params(), evidence)
    headline, note = _report(s3, sm, plan, KEPT)
    assert headline.startswith(f"Kept the champion · {METRIC}: {_challenger(evidence)}")
    assert note.startswith(f"{outcome.MARKER}Kept the champion** — {evidence['decision']['reason']}")
    assert f"History record: `{record}`" in note
    assert f"serving {ENDPOINT}-champion (run {CHAMPION_RUN}'s, verified)" in note


def test_a_rejection_in_the_words_its_record_keeps(s3, sm, shown):
    plan = _plan()
    evidence = _gate(s3, plan, challenger_noise=0.5, champion_noise=3.0, seed=3)
    who, comment = "bob", "drift in the new data"
    approval = pipeline.decide_approval(plan, None, False, f"Rejected by {who}: {comment}", approver=who,
                                        comment=comment)
    record = pipeline.rejected(plan, _params(), evidence, approval)
    headline, note = _report(s3, sm, plan, {**DONE, "approve": "success", "deploy": "skipped", "rejected": "success"})
    assert headline.startswith(f"Rejected by {who}: {comment} · {METRIC}: {_challenger(evidence)}")
    assert note.startswith(f"{outcome.MARKER}Rejected by {who}** — {comment}") and f"`{record}`" in note
    assert "Ended without a decision" not in note


def test_a_failure_after_the_gate_shows_the_gates_scores_and_what_serves_now(s3, sm, shown):
    plan = _plan()
    evidence = _gate(s3, plan, challenger_noise=0.5, champion_noise=3.0, seed=4)
    headline, note = _report(s3, sm, plan, {**DONE, "approve": "success", "deploy": "success",
                                            "wait_for_endpoint": "failed", "publish": "upstream_failed",
                                            "restore": "success"})
    assert headline.startswith("Failed: ") and "(first: wait_for_endpoint;" in headline
    assert _challenger(evidence) in headline
    assert "History record" not in note
    assert f"serving {ENDPOINT}-champion (run {CHAMPION_RUN}'s, verified)" in note


def test_a_whole_run_clear_that_kept_the_champion_does_not_show_the_first_pass(s3, sm, shown):
    """Pass 1 promoted (record, verified config); the Clear trains anew (generation 1) and keeps the champion:
    publish is skipped in pass 2, and the summary is pass 2's, never pass 1's record."""
    first = _plan()
    first_evidence = _gate(s3, first, challenger_noise=0.5, champion_noise=3.0, seed=5)
    first_record = _deploy_and_publish(sm, first, first_evidence)
    second = _plan(generation=1, clear_number=1)
    second_evidence = _gate(s3, second, challenger_noise=3.0, champion_noise=0.5, seed=6)
    second_record = pipeline.keep_champion(second, _params(), second_evidence)
    headline, note = _report(s3, sm, second, KEPT)
    assert headline.startswith(f"Kept the champion · {METRIC}: {_challenger(second_evidence)}")
    assert f"`{second_record}`" in note and first_record not in note and "Promoted" not in note
    # What serves now is the first pass's model, verified: said as a fact, not as this pass's decision.
    assert f"serving {first['names']['endpoint_config']} (this run's, verified)" in note


def test_a_clear_that_keeps_the_names_does_not_read_the_first_pass_at_the_same_keys(s3, sm, shown):
    """A clear of gate keeps the names (same slug, so the same record and gate keys); pass 2's gate fails:
    pass 1's promoted record and gate decision, still at those keys, are not this pass's."""
    first = _plan()
    first_evidence = _gate(s3, first, challenger_noise=0.5, champion_noise=3.0, seed=7)
    _deploy_and_publish(sm, first, first_evidence)
    second = _plan(clear_number=1)
    assert second["history_uri"] == first["history_uri"]
    states = {**DONE, "gate": "failed", "approve": "upstream_failed", "keep_champion": "upstream_failed",
              "deploy": "upstream_failed", "publish": "upstream_failed"}
    headline, note = _report(s3, sm, second, states)
    assert headline.startswith("Failed: ") and "(first: gate;" in headline and "Promoted" not in note
    assert "History record" not in note and _challenger(first_evidence) not in note and "Scores" not in note


def test_report_run_never_raises(s3, sm):
    plan = {**_plan(), "history_uri": "s3://no-such-bucket/history/x.json"}
    assert _report(s3, sm, plan, PROMOTED) is None

    def no_client():
        raise RuntimeError("no S3 client for this connection")

    context = {"ti": NoXComTI(), "params": _params()}
    assert outcome.report_run(context, PROMOTED, plan=_plan(), mode="persistent", make_s3=no_client,
                              sagemaker=sm) is None
