"""Fault-matrix scenarios that need separate Airflow processes, on the native deployment.

``airflow dags test`` runs triggers inline and has no scheduler, so two scenarios of issue 5 run
on ``tests/native_deployment.py`` (CeleryExecutor, Postgres, Redis, one process per component,
shared with ``tests/deployment`` for the session): the triggerer restarted while the train
trigger waits, and the DAG run marked failed by a person (the UI's "Mark run as failed", a PATCH
of the run's state) mid-training. As in ``test_fault_matrix``: a known model already serves the
scenario's endpoint, a probe invokes it for the whole run, and the run is followed by an inventory.
The emulator's time scale is raised while training must stay InProgress and put back afterwards.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from native_deployment import DAG_ID, EMULATOR_TIME_SCALE
from reliability_harness import Probe, Row, answers_from_failed_model, describe_left, verified_by, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.deployment]
HOLD = 1000.0  # emulator time scale that keeps a training job in Starting until released
# A short bake at the native deployment's realistic pace (time scale 1): the canary still bakes.
GOOD = {"gate_threshold": 1000.0, "epochs": 5, "bake_seconds": 2, "termination_wait_seconds": 0}
FINISHED = ("success", "failed")


@dataclass
class NativeOutcome:
    run_id: str
    state: str
    tis: dict
    endpoint: str
    baseline: str
    inventory: dict
    orphans: list[str]
    probe: dict
    jobs: list[str]
    calls: dict
    row: Row
    extra: dict = field(default_factory=dict)


@contextmanager
def _dag_unpaused(deployment):
    """Unpause the DAG for the scenario and pause it again (tests/deployment expects it paused at first)."""
    deployment.wait_for_dag()
    deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    try:
        yield
    finally:
        deployment.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": True})


def _did(deployment, run_id: str, tis: dict, extra: dict) -> str:
    failed = sorted(t for t, ti in tis.items() if ti["state"] in ("failed", "upstream_failed"))
    skipped = sorted(t for t, ti in tis.items() if ti["state"] == "skipped")
    bits = [f"failed: {', '.join(failed)}" if failed else "all tasks ok"]
    if skipped and failed:
        bits.append(f"skipped: {', '.join(skipped)}")
    bits += extra.get("did", [])
    for key in ("restore", "teardown"):
        value = deployment.xcom(run_id, key) if tis.get(key, {}).get("state") == "success" else None
        if isinstance(value, dict):  # the teardown's {"removed": [...]}
            value = f"removed: {'; '.join(value.get('removed') or []) or 'nothing'}"
        if value:
            bits.append(f"{key}: {value if isinstance(value, str) else '; '.join(map(str, value)) or 'nothing'}")
        elif key == "teardown" and tis.get(key, {}).get("state") == "failed":
            removed = _log_line(deployment, run_id, tis[key], "Clean-up removed:")
            bits.append(f"teardown (failed): {removed.split('Clean-up removed:', 1)[-1].strip()}")
    return ". ".join(bits)


def _log_line(deployment, run_id: str, ti: dict, needle: str) -> str:
    """The message of the first line of a task's log that holds ``needle``."""
    for line in deployment.task_log(run_id, ti["task_id"], ti["try_number"]).splitlines():
        if needle in line:
            try:
                record = json.loads(line)
            except ValueError:
                return line.strip()
            for error in record.get("error_detail") or []:  # "Task failed with exception": the exception itself
                if needle in str(error.get("exc_value", "")):
                    return f"{error.get('exc_type')}: {error['exc_value']}"
            return str(record.get("event", line.strip()))
    return ""


def native_scenario(deployment, native, name: str, injected: str, *, expected: str, runner, reason,
                    note="", serves: str | None = None) -> NativeOutcome:
    """Seed the endpoint, probe it, run ``runner`` (which triggers the run and acts on it), take the inventory
    (before the emulator's pace is put back, so a job left running is still seen running) and write the row.

    ``serves``: which model must serve at the end, ``previous`` (the seeded one) or ``new`` (the run's own,
    verified); by default ``new`` for a run expected to succeed, else ``previous``. ``runner`` may name the
    config it expects in ``extra["expected_serving"]`` (a Clear's first pass, say)."""
    endpoint = f"rel-{name.replace('_', '-')}"
    native.set_time_scale(0)
    baseline = native.seed_serving_endpoint(endpoint, timeout=60)
    before = native.calls()
    probe = Probe(lambda: native.url, endpoint).start()
    started = time.monotonic()
    extra: dict = {}
    run_id = None
    try:
        with _dag_unpaused(deployment):
            run_id, final = runner(deployment, native, {**GOOD, "endpoint_name": endpoint}, extra)
        seconds = round(time.monotonic() - started, 1)
        # A job teardown just stopped passes through Stopping: give it the moment it takes.
        wait_for(lambda: "Stopping" not in native.inventory(endpoint)["training_jobs"].values(), 30,
                 what="no training job Stopping")
        inventory = native.inventory(endpoint)
        orphans = native.orphans(endpoint, inventory)
    finally:
        native.set_time_scale(EMULATOR_TIME_SCALE)
        time.sleep(0.3)
        probe.stop()
        if run_id and deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"] not in FINISHED:
            deployment.set_run_state(run_id, "failed", note="left unfinished by a failed reliability test")
    after = native.calls()
    calls = {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}
    tis = deployment.task_instances(run_id)
    plan = deployment.xcom(run_id, "prepare") or {}
    slug = plan.get("slug")
    jobs = native.jobs_of_run(endpoint, slug)
    summary = probe.summary()
    state = final["state"]
    row = Row(
        scenario=name, injected=injected, expected_state=expected, state=state,
        pipeline_did=_did(deployment, run_id, tis, extra),
        reason="run succeeded" if state == expected == "success" else reason(deployment, run_id, tis, extra),
        resources_left=describe_left(inventory) + (f"; S3 runs/{slug}/{{{','.join(native.s3_prefixes(slug))}}}"
                                                   if slug else ""),
        orphans=orphans, downtime_s=summary["downtime_s"], failed_calls=summary["failed_calls"],
        answers_other=summary["answers_other"], training_jobs=len(jobs), sagemaker_calls=sum(calls.values()),
        seconds=seconds, note=note(state) if callable(note) else note,
        answers_failed_model=answers_from_failed_model(summary, verified_by(native.sm, endpoint, run_id) is not None),
        serving_at_end=inventory["endpoints"].get(endpoint, {}).get("config"),
        expected_serving=extra.get("expected_serving") or {
            "new": plan.get("names", {}).get("endpoint_config"), "previous": baseline,
        }[serves or ("new" if expected == "success" else "previous")],
    )
    row.write()
    return NativeOutcome(run_id, state, tis, endpoint, baseline, inventory, orphans, summary, jobs, calls, row,
                         extra)


def _train_waiting_in_triggerer(deployment, native, run_id: str, endpoint: str) -> tuple[dict, str]:
    """Wait until train is deferred, its trigger is held by a triggerer, and its job is InProgress."""
    def waiting():
        ti = deployment.task_instances(run_id).get("train") or {}
        if ti.get("state") == "deferred" and (ti.get("trigger") or {}).get("triggerer_id"):
            return ti
        return None

    ti = wait_for(waiting, 240, 0.5, what="train deferred with its trigger held by the triggerer")
    jobs = native.inventory(endpoint)["training_jobs"]
    job = next(j for j, s in jobs.items() if s == "InProgress")
    return ti, job


# --- the triggerer restarted while the train trigger waits -------------------------------------
def _restart_triggerer(deployment, native, conf, extra):
    native.set_time_scale(HOLD)
    run_id = deployment.trigger(conf)
    ti, job = _train_waiting_in_triggerer(deployment, native, run_id, conf["endpoint_name"])
    old = ti["trigger"]["triggerer_id"]
    extra.update(job=job, trigger_id=ti["trigger"]["id"], old_triggerer=old)
    extra["down_s"] = round(deployment.restart("airflow-triggerer"), 1)
    restarted = time.monotonic()

    def taken_over():
        t = deployment.task_instances(run_id)["train"]
        held_by = (t.get("trigger") or {}).get("triggerer_id")
        return t if t["state"] == "deferred" and held_by and held_by != old else None

    ti = wait_for(taken_over, 180, 0.5, what="the restarted triggerer to take the train trigger over")
    extra.update(new_triggerer=ti["trigger"]["triggerer_id"], takeover_s=round(time.monotonic() - restarted, 1),
                 job_status_at_takeover=native.sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"])
    native.set_time_scale(EMULATOR_TIME_SCALE)  # let the job finish: the new triggerer must see it through
    final = deployment.wait_for_run(run_id, timeout=600)
    extra["did"] = [f"train's trigger {extra['trigger_id']} moved from triggerer job {old} to {extra['new_triggerer']} "
                    f"{extra['takeover_s']} s after the restart (triggerer down {extra['down_s']} s); the job "
                    f"kept running and train resumed from the new triggerer's event"]
    return run_id, final


def _no_reason(deployment, run_id, tis, extra) -> str:
    return f"(unexpected) states {({t: ti['state'] for t, ti in tis.items()})}"


def test_triggerer_restarted_while_trigger_waits(deployment, native):
    out = native_scenario(
        deployment, native, "triggerer_restarted",
        "the triggerer process restarted (SIGTERM, then started again, as `docker compose restart "
        "airflow-triggerer`) while train is deferred on an InProgress training job",
        expected="success", runner=_restart_triggerer, reason=_no_reason,
        note="native deployment (CeleryExecutor, Postgres, Redis, one process per component). A triggerer "
             "shutdown is not a user action: the trigger was not killed and the job not stopped (no "
             "StopTrainingJob call); the new triggerer took the trigger over and fired on the job's completion.")
    assert out.state == "success", (out.tis, out.extra)
    assert out.extra["job_status_at_takeover"] == "InProgress", out.extra
    assert out.extra["new_triggerer"] != out.extra["old_triggerer"]
    assert out.tis["train"]["try_number"] == 1, out.tis["train"]  # no retry needed: the wait just moved
    assert out.calls.get("CreateTrainingJob") == 1 and out.calls.get("StopTrainingJob", 0) == 0, out.calls
    assert out.jobs == [out.extra["job"]]
    assert out.inventory["training_jobs"][out.extra["job"]] == "Completed"
    assert out.orphans == [], out.orphans
    plan = deployment.xcom(out.run_id, "prepare")
    assert out.inventory["endpoints"][out.endpoint]["config"] == plan["names"]["endpoint_config"]
    assert out.probe["failed_calls"] == 0 and out.probe["answers_previous"] > 0, out.probe


# --- the DAG run marked failed by a person mid-training -----------------------------------------
MARK_FAILED_NOTE = (
    "native deployment. Airflow 3.3's mark-run-failed (mark_tasks._set_dag_run_terminal_state) fails the running "
    "tasks (train, deferred: its trigger is cancelled, and SageMakerTrigger has no on_kill), skips the pending ones "
    "but leaves the teardown to run and the run 'running' until it has; teardown stops the training job.")
MARK_FAILED_BUG = (
    " BUG (open): the scheduler then marked the run successful, the person's 'failed' overridden: its leaves, the "
    "watcher included, were skipped by the mark (apache/airflow#45530's side effect). The clean-up teardown "
    "(on_failure_fail_dagrun) must fail when the mark skipped the watcher and a task failed.")
MARK_NOTE = "marked failed by the reliability suite: a person gave up on this run mid-training"


def _mark_failed(deployment, native, conf, extra):
    native.set_time_scale(HOLD)  # the job stays InProgress until something stops it
    run_id = deployment.trigger(conf)
    ti, job = _train_waiting_in_triggerer(deployment, native, run_id, conf["endpoint_name"])
    extra.update(job=job, trigger_id=ti["trigger"]["id"])
    answer = deployment.set_run_state(run_id, "failed", note=MARK_NOTE)
    extra["state_after_patch"] = answer["state"]
    final = deployment.wait_for_run(run_id, timeout=300)
    extra["job_status"] = native.sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"]
    extra["note"] = final.get("note")
    return run_id, final


def _mark_failed_reason(deployment, run_id, tis, extra) -> str:
    bits = [f"run note: {extra.get('note')!r}", f"train {tis['train']['state']} while deferred"]
    if tis["teardown"]["state"] == "failed":
        bits.append("teardown: " + _log_line(deployment, run_id, tis["teardown"], "marked failed by a person")[:400])
    return "; ".join(bits)


class RunStateOverridden(AssertionError):
    """The run a person marked failed did not end failed."""


def test_run_marked_failed_mid_training(deployment, native):
    out = native_scenario(
        deployment, native, "marked_failed_by_person",
        "PATCH dagRuns/{run} state=failed (the UI's 'Mark run as failed') while train is deferred on an "
        "InProgress training job", expected="failed", runner=_mark_failed, reason=_mark_failed_reason,
        note=lambda state: MARK_FAILED_NOTE + ("" if state == "failed" else MARK_FAILED_BUG))
    # Nothing left running or deployed, whatever the run's final state.
    assert out.extra["state_after_patch"] == "running", out.extra  # Airflow keeps it running for the teardown
    assert out.tis["train"]["state"] == "failed", out.tis["train"]
    assert out.extra["job_status"] == "Stopped", out.extra
    assert out.calls.get("CreateTrainingJob") == 1, out.calls
    assert out.calls.get("CreateEndpoint", 0) == 0 and out.calls.get("UpdateEndpoint", 0) == 0, out.calls
    assert out.jobs == [out.extra["job"]]
    assert out.orphans == [], out.orphans
    assert out.inventory["endpoints"][out.endpoint] == {"status": "InService", "config": out.baseline}
    assert out.probe["failed_calls"] == 0 and out.probe["answers_other"] == 0, out.probe
    assert out.probe["answers_previous"] > 0, out.probe
    # The person's verdict stands, with the reason.
    if out.state != "failed":
        raise RunStateOverridden(f"the run marked failed ended {out.state}: {out.row.pipeline_did}")
    assert out.tis["watcher"]["state"] == "skipped", out.tis["watcher"]  # skipped by the person's mark
    assert out.tis["teardown"]["state"] == "failed" and "marked failed by a person" in out.row.reason, out.row.reason



# --- the DAG run marked failed by a person during the canary's bake ----------------------------
BAKE_NOTE = "marked failed by the reliability suite: a person gave up on this run during the canary bake"


def _mark_failed_during_bake(deployment, native, conf, extra):
    conf = {**conf, "bake_seconds": 600}  # a long canary bake, held there until the person has spoken
    native.set_time_scale(EMULATOR_TIME_SCALE)  # native_scenario seeds at 0: the bake must take real time
    run_id = deployment.trigger(conf)
    endpoint = conf["endpoint_name"]

    def baking():
        d = native.sm.describe_endpoint(EndpointName=endpoint)
        variants = (d.get("PendingDeploymentSummary") or {}).get("ProductionVariants") or []
        statuses = {s["Status"] for v in variants for s in v.get("VariantStatus", [])}
        return d if d["EndpointStatus"] == "Updating" and "Baking" in statuses else None

    wait_for(baking, 600, 0.5, what="the canary baking on the run's new config")
    native.set_time_scale(HOLD)  # hold the bake while the person marks the run failed
    extra["sensor_state"] = deployment.task_instances(run_id)["wait_for_endpoint"]["state"]
    answer = deployment.set_run_state(run_id, "failed", note=BAKE_NOTE)
    extra["state_after_patch"] = answer["state"]
    native.set_time_scale(0)  # SageMaker finishes the deployment; the teardown must then put the old config back
    final = deployment.wait_for_run(run_id, timeout=600)
    extra["teardown"] = deployment.xcom(run_id, "teardown")
    return run_id, final


def _teardown_reason(deployment, run_id, tis, extra) -> str:
    return "teardown: " + _log_line(deployment, run_id, tis["teardown"], "marked failed by a person")[:400]


def test_run_marked_failed_during_the_bake(deployment, native):
    out = native_scenario(
        deployment, native, "marked_failed_during_bake",
        "PATCH dagRuns/{run} state=failed while the canary bakes (wait_for_endpoint deferred, the new config on "
        "10% of the traffic)", expected="failed", runner=_mark_failed_during_bake, reason=_teardown_reason,
        note="the canary had passed scoring and the gate, and took its canary share of the traffic before the person "
             "gave up (counted: it did not end the run verified); restore, the teardown of deploy, waited (deferred) "
             "for SageMaker to finish the deployment, then put the previous config back (its config carried no "
             "verified tag); the clean-up kept the person's verdict.")
    assert out.extra["state_after_patch"] == "running", out.extra  # Airflow keeps it running for the teardown
    assert out.extra["sensor_state"] == "deferred", out.extra
    assert out.state == "failed", out.tis
    assert out.tis["teardown"]["state"] == "failed", out.tis["teardown"]
    assert out.calls.get("UpdateEndpoint") == 2, out.calls  # the switch, and the teardown's switch back
    assert out.inventory["endpoints"][out.endpoint] == {"status": "InService", "config": out.baseline}
    assert out.orphans == [], out.orphans
    assert out.probe["failed_calls"] == 0 and out.probe["answers_previous"] > 0, out.probe
    assert out.tis["restore"]["state"] == "success", out.tis["restore"]
    assert out.row.serving_at_end == out.row.expected_serving == out.baseline, out.row
    assert out.row.answers_failed_model == out.probe["answers_other"], out.row


# --- Clear: production never moves backwards (issue 21) ----------------------------------------------------
def _clear(deployment, run_id: str, task_ids: list[str] | None = None) -> None:
    """The UI's Clear: the whole run, or ``task_ids`` with everything downstream (setups and teardowns follow)."""
    if task_ids is None:
        deployment.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False})
    else:
        deployment.api("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
            "dry_run": False, "dag_run_id": run_id, "task_ids": task_ids, "include_downstream": True,
            "include_upstream": False, "only_failed": False, "reset_dag_runs": True})
    wait_for(lambda: deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"] not in FINISHED,
             60, 0.2, what="the cleared run to start again")


def _passes(deployment, native, conf, extra, task_ids=None, first_faults=None):
    """A run, then a Clear of it (whole, or of ``task_ids``), each pass to its end; what each pass did."""
    if first_faults:
        native._admin("POST", "faults", first_faults)
    run_id = deployment.trigger(conf)
    first = deployment.wait_for_run(run_id, timeout=600)
    native._admin("POST", "faults/clear", {})
    plan = deployment.xcom(run_id, "prepare")
    extra.update(first_state=first["state"], first_job=plan["names"]["training_job"],
                 first_config=plan["names"]["endpoint_config"],
                 first_serving=native.sm.describe_endpoint(EndpointName=conf["endpoint_name"])["EndpointConfigName"])
    _clear(deployment, run_id, task_ids)
    final = deployment.wait_for_run(run_id, timeout=600)
    plan = deployment.xcom(run_id, "prepare")
    evidence = deployment.xcom(run_id, "gate", key="evidence") or {}
    extra.update(second_job=plan["names"]["training_job"], second_config=plan["names"]["endpoint_config"],
                 second_decision=(evidence.get("decision") or {}).get("deploy"))
    what = "Clear of the whole run" if task_ids is None else f"clear of {', '.join(task_ids)} (and downstream)"
    extra["did"] = [f"first pass {first['state']} ({extra['first_serving']} serving); {what}; second pass "
                    f"{final['state']} with {extra['second_job']} (gate: "
                    f"{'promote' if extra['second_decision'] else 'keep the champion'})"]
    return run_id, final


def _clear_promoted(deployment, native, conf, extra):
    run_id, final = _passes(deployment, native, conf, extra)
    # The second pass trains the same data with the same seed: its model does not beat its own first-pass one,
    # so the first pass's verified model must still serve; a second-pass win would serve the second-pass one.
    extra["expected_serving"] = extra["second_config"] if extra["second_decision"] else extra["first_config"]
    return run_id, final


def test_clear_of_a_promoted_run_keeps_production_on_the_best_verified_model(deployment, native):
    out = native_scenario(
        deployment, native, "cleared_finished_run",
        "POST dagRuns/{run}/clear (the UI's Clear) on a run that had promoted its model",
        expected="success", runner=_clear_promoted, reason=_no_reason,
        note="the second pass trained anew under the next generation's names (…-c1: prepare found the run's tagged "
             "job and train cleared); it pinned the first pass's model as champion and the gate kept it; restore "
             "read the serving config's tags (this run's, verified) and left it: production stayed on the best "
             "verified model, not the one the first pass had replaced.")
    assert out.extra["first_state"] == "success" and out.extra["first_serving"] == out.extra["first_config"]
    assert out.state == "success", out.tis
    assert out.extra["second_job"] == out.extra["first_job"] + "-c1", out.extra
    jobs = native.inventory(out.endpoint)["training_jobs"]
    assert jobs.get(out.extra["first_job"]) == "Completed" and jobs.get(out.extra["second_job"]) == "Completed", jobs
    assert out.calls.get("CreateTrainingJob") == 2, out.calls
    assert out.row.serving_at_end == out.row.expected_serving != out.baseline, out.row
    assert verified_by(native.sm, out.endpoint, out.run_id) == out.row.serving_at_end
    assert out.orphans == [], out.orphans
    assert out.probe["failed_calls"] == 0, out.probe


def _clear_kept(deployment, native, conf, extra):
    return _passes(deployment, native, {**conf, "gate_threshold": 0.5}, extra)  # no model meets 0.5: kept twice


def test_clear_of_a_run_that_kept_the_champion(deployment, native):
    out = native_scenario(
        deployment, native, "cleared_kept_run",
        "POST dagRuns/{run}/clear on a run that had kept the champion (gate_threshold 0.5: no model meets it)",
        expected="success", runner=_clear_kept, reason=_no_reason, serves="previous",
        note="both passes kept the champion; nothing was deployed, nothing restored.")
    assert out.state == "success", out.tis
    assert out.extra["second_decision"] is False, out.extra
    assert out.row.serving_at_end == out.row.expected_serving == out.baseline, out.row
    assert out.calls.get("UpdateEndpoint", 0) == 0 and out.calls.get("CreateEndpointConfig", 0) == 0, out.calls
    assert out.orphans == [], out.orphans
    assert out.row.answers_failed_model == 0 and out.probe["answers_other"] == 0, out.probe


@pytest.mark.parametrize("task_id", ["gate", "deploy"])
def test_clear_of_one_task_of_a_promoted_run_keeps_its_names(deployment, native, task_id):
    def runner(deployment, native, conf, extra):
        return _passes(deployment, native, conf, extra, task_ids=[task_id])

    out = native_scenario(
        deployment, native, f"cleared_{task_id}_of_finished_run",
        f"POST clearTaskInstances task_ids=[{task_id}], downstream included, on a run that had promoted its model "
        "(Airflow clears prepare, its setup, too)", expected="success", runner=runner, reason=_no_reason,
        note=f"prepare ran again but kept the run's names (train was not cleared: generation 0); {task_id} and "
             "what follows ran again on the same resources: deploy found the endpoint already on this run's config.")
    assert out.state == "success", out.tis
    assert out.extra["second_job"] == out.extra["first_job"], out.extra  # the same names: no new generation
    assert out.calls.get("CreateTrainingJob") == 1 and out.calls.get("UpdateEndpoint") == 1, out.calls
    assert out.row.serving_at_end == out.row.expected_serving == out.extra["first_config"], out.row
    assert verified_by(native.sm, out.endpoint, out.run_id) == out.row.serving_at_end
    assert out.orphans == [], out.orphans
    assert out.probe["failed_calls"] == 0, out.probe


def _clear_wait_of_failed(deployment, native, conf, extra):
    reason = "Failed to download model data (injected)"
    return _passes(deployment, native, conf, extra, task_ids=["wait_for_endpoint"],
                   first_faults={"fail_next_endpoint_update": reason})


def test_clear_of_wait_for_endpoint_of_a_failed_run_deploys_again(deployment, native):
    out = native_scenario(
        deployment, native, "cleared_wait_of_failed_run",
        "fail_next_endpoint_update (SageMaker rolls back, the run fails); the cause gone, POST clearTaskInstances "
        "task_ids=[wait_for_endpoint] (Airflow clears deploy, its setup, and the teardowns too)",
        expected="success", runner=_clear_wait_of_failed, reason=_no_reason,
        note="deploy ran again as the setup of wait_for_endpoint's restore, found the endpoint on the pinned champion "
             "again (SageMaker had rolled back) and this run's own config by its tags, switched, and this time the "
             "sensor verified it.")
    assert out.extra["first_state"] == "failed" and out.extra["first_serving"] == out.baseline, out.extra
    assert out.state == "success", out.tis
    assert out.extra["second_job"] == out.extra["first_job"], out.extra
    assert out.calls.get("CreateTrainingJob") == 1 and out.calls.get("UpdateEndpoint") == 2, out.calls
    assert out.row.serving_at_end == out.row.expected_serving == out.extra["first_config"], out.row
    assert out.orphans == [], out.orphans
    assert out.probe["failed_calls"] == 0, out.probe
