"""The run's outcome summary: decision, both scores on the same rows, endpoint and model, links."""

from __future__ import annotations

import pytest

from sagemaker_retrain import outcome

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
                                       model=None, endpoint_param="ep", base_url="", restore="nothing deployed")
    assert headline == "Failed: train failed" and "Restore: nothing deployed" in note and "(/model-history/?endpoint=ep)" in note


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


class FakeTI:
    dag_id, run_id, task_id = "sagemaker_retrain", "manual__1", "teardown"

    def __init__(self, xcoms):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get((task_ids, key))


def test_report_run_pulls_the_gate_and_publish_xcoms(monkeypatch):
    notes = []
    monkeypatch.setattr(outcome, "set_run_note", lambda dag_id, run_id, note: notes.append((run_id, note)))
    monkeypatch.setattr(outcome, "base_url", lambda: "http://a")
    ti = FakeTI({("prepare", "return_value"): {"names": {"endpoint": "ep", "model": "m-new"}},
                 ("gate", "evidence"): EVIDENCE, ("keep_champion", "return_value"): "s3://b/history.json"})
    context = {"ti": ti, "params": {"mode": "persistent", "endpoint_name": "ep"}}
    headline, note = outcome.report_run(context, {**DONE, "keep_champion": "success"}, restore="nothing")
    assert headline.startswith("Kept the champion · test:rmse: challenger 5.1 vs champion 4.9")
    assert notes == [("manual__1", note)] and "s3://b/history.json" in note
    assert context["sagemaker_retrain_outcome"] == headline


def test_report_run_never_raises(monkeypatch):
    class Broken(FakeTI):
        def xcom_pull(self, *args, **kwargs):
            raise RuntimeError("no XCom backend")

    assert outcome.report_run({"ti": Broken({}), "params": {}}, DONE) is None


def test_report_run_reads_no_xcom_of_a_task_that_did_not_succeed_in_this_pass(monkeypatch):
    """A cleared run's second pass skipped publish: its first-pass XCom (still stored) must not be read."""
    monkeypatch.setattr(outcome, "set_run_note", lambda dag_id, run_id, note: True)
    stale = {("publish", "return_value"): {"history": "s3://b/first-pass.json"},
             ("gate", "evidence"): EVIDENCE, ("keep_champion", "return_value"): "s3://b/second-pass.json"}
    context = {"ti": FakeTI(stale), "params": {"mode": "persistent", "endpoint_name": "ep"}}
    _, note = outcome.report_run(context, {**DONE, "keep_champion": "success", "publish": "skipped"})
    assert "second-pass.json" in note and "first-pass.json" not in note


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


def test_report_run_shows_who_rejected_on_the_run_page(monkeypatch):
    notes = []
    monkeypatch.setattr(outcome, "set_run_note", lambda dag_id, run_id, note: notes.append(note))
    monkeypatch.setattr(outcome, "base_url", lambda: "")
    approval = {"status": "Rejected", "description": "Rejected by bob: drift", "approver": "bob", "comment": "drift"}
    ti = FakeTI({("prepare", "return_value"): {"names": {"endpoint": "ep", "model": "m-new"}},
                 ("gate", "evidence"): EVIDENCE, ("approve", "approval"): approval})
    context = {"ti": ti, "params": {"mode": "persistent", "endpoint_name": "ep"}}
    headline, note = outcome.report_run(context, REJECTED)
    assert headline.startswith("Rejected by bob: drift · ") and "Ended without a decision" not in note
    assert note.startswith(f"{outcome.MARKER}Rejected by bob** — drift") and notes == [note]
