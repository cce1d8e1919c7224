"""Load: ten runs at once on one persistent endpoint, then the inventory.

Ten ``airflow dags test`` processes start together (a different split seed each, so their models
differ). ``dags test`` does not enforce the DAG's ``max_active_runs=1`` (a scheduler would queue
the ten triggers and run them one by one), so this is the worst case: the runs really overlap.
Checked: every run ends, no two runs share a resource name, no endpoint update ever starts while
another is in progress (the emulator refuses that as AWS does; the pipeline must not rely on it
by accident), the previous model keeps answering, and afterwards the endpoint holds exactly what
persistent mode keeps: the serving config and model plus one rollback config and model.

Every run's outcome is asserted. Runs that overlap on one endpoint fail for reasons the pipeline
means, and only those (``MEANT_FAILURES``): a later run's deployment replaced this run's config
before its sensor saw it serve (``superseded``), SageMaker refused this run's update because
another run's was in progress (``update_refused``), or another run promoted its model after this
run pinned the champion it was compared with, so deploy refused to replace a model this one never
beat (``champion_moved``). Either way the teardowns remove this run's config and model and leave the
newer verified deployment serving, and the watcher fails the run. Any other
exception in any run is an unexplained crash and fails the test. With the scheduler (the native
deployment, ``test_native_load.py``) ``max_active_runs=1`` queues the runs and none of this happens.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from reliability_harness import BIN, Probe, Row, describe_left, run_errors, verified_by

pytestmark = pytest.mark.slow
RUNS = 10
# Why an overlapping run may fail: (task, words of the exception it raised). Teardown then fails the run.
MEANT_FAILURES = {
    "superseded": ("wait_for_endpoint", "another deployment replaced this run's config"),
    "update_refused": ("deploy", "it must be InService to be updated"),
    "champion_moved": ("deploy", "the endpoint changed since the champion was pinned"),
}
RUN_FAILED = ("watcher", "A task of this run failed")


def classify(errors) -> tuple[str, list[str]]:
    """The run's meant failure cause ("" if none), and every exception that is not a meant one."""
    causes, unexplained = [], []
    for error in errors:
        meant = [name for name, (task, words) in MEANT_FAILURES.items()
                 if error.task == task and words in error.message]
        if meant:
            causes += meant
        elif not (error.task == RUN_FAILED[0] and error.message.startswith(RUN_FAILED[1])):
            unexplained.append(str(error))
    return (causes[-1] if causes else ""), unexplained


def test_ten_overlapping_runs(rel):
    endpoint = "rel-load"
    # The DAG must be in the metadata DB before ten processes race to write it there (SQLite, one writer).
    subprocess.run([str(BIN / "airflow"), "dags", "reserialize"], env=rel.env, capture_output=True, check=True)
    rel.seed_serving_endpoint(endpoint)
    before = rel.calls()
    probe = Probe(lambda: rel.emulator.url, endpoint).start()
    started = time.monotonic()
    logs = [rel.home / f"load-{i}.log" for i in range(RUNS)]
    procs = []
    for i in range(RUNS):  # a second apart: ten triggers in a row; every run still overlaps the others
        procs.append(rel.start_run({"endpoint_name": endpoint, "gate_threshold": 1000.0, "epochs": 5,
                                    "split_seed": i}, log=logs[i]))
        time.sleep(1)
    for proc in procs:
        proc.wait(timeout=900)
    seconds = round(time.monotonic() - started, 1)
    time.sleep(0.3)
    probe.stop()
    outputs = [log.read_text() for log in logs]
    run_ids = sorted({m for out in outputs for m in re.findall(r"run_id='(manual__[^']+)'", out)})
    results = [rel.result(run_id) for run_id in run_ids]
    states = [r.state for r in results]
    slugs = [r.xcoms["prepare"]["slug"] for r in results if isinstance(r.xcoms.get("prepare"), dict)]
    collisions = [o for o in outputs if "Cannot create already existing" in o or "ResourceInUse" in o]
    refused_updates = sum(o.count("it must be InService to be updated") + o.count("Cannot update in-progress")
                          for o in outputs)
    calls = {k: v - before.get(k, 0) for k, v in rel.calls().items()}
    decisions = [(r.xcoms.get("gate.evidence") or {}).get("decision", {}).get("deploy") for r in results]
    inventory = rel.inventory(endpoint)
    orphans = rel.orphans(endpoint, inventory)
    jobs = inventory["training_jobs"]
    summary = probe.summary()
    by_run = {m: out for out in outputs for m in re.findall(r"run_id='(manual__[^']+)'", out)[:1]}
    outcomes = {}  # run id -> "promoted" / "kept the champion" / a meant failure cause
    unexplained = {}
    for r in results:
        cause, other = classify(run_errors(by_run.get(r.run_id, "")))
        if other:
            unexplained[r.run_id] = other
        if r.state == "success":
            decision = (r.xcoms.get("gate.evidence") or {}).get("decision", {}).get("deploy")
            outcomes[r.run_id] = "promoted" if decision else "kept the champion"
        else:
            outcomes[r.run_id] = cause or "unexplained"
    counts = {k: list(outcomes.values()).count(k) for k in sorted(set(outcomes.values()))}
    did = (f"{len(results)} runs: {states.count('success')} succeeded, {states.count('failed')} failed "
           f"({', '.join(f'{k}: {v}' for k, v in counts.items())}); "
           f"{decisions.count(True)} passed the gate, {decisions.count(False)} kept the champion; "
           f"{calls.get('UpdateEndpoint', 0)} UpdateEndpoint calls, {refused_updates} update attempts refused "
           f"because another was in progress; {len(collisions)} name collisions")
    reasons = {cause: f"{MEANT_FAILURES[cause][0]}: ...{MEANT_FAILURES[cause][1]}" for cause in counts
               if cause in MEANT_FAILURES}
    Row(scenario="load_10_overlapping_runs", injected=f"{RUNS} `airflow dags test` processes at once, one endpoint",
        expected_state="all runs end, nothing leaked", state=",".join(sorted(set(map(str, states)))),
        pipeline_did=did, reason="; ".join(f"{k}: {v}" for k, v in reasons.items()),
        resources_left=describe_left(inventory), orphans=orphans, downtime_s=summary["downtime_s"],
        failed_calls=summary["failed_calls"], answers_other=summary["answers_other"], training_jobs=len(jobs),
        sagemaker_calls=sum(calls.values()), seconds=seconds,
        note="`airflow dags test` ignores max_active_runs=1, so the ten runs overlap on one endpoint: a run whose "
             "config a later run replaced before its check fails (superseded), as does one whose update SageMaker "
             "refused while another was in progress; teardown left the newer deployment serving.").write()
    print(did, outcomes, unexplained, inventory, orphans)
    assert len(results) == RUNS and all(s in ("success", "failed") for s in states), states
    # Every run's outcome is one the pipeline means; no exception in any run that is not one of those.
    assert unexplained == {} and "unexplained" not in outcomes.values(), (outcomes, unexplained)
    # The endpoint ends on the config of a run that succeeded (the last deployment wins and is verified).
    serving = inventory["endpoints"][endpoint]["config"]
    winners = [r for r in results if serving in str(r.xcoms.get("deploy"))]
    assert winners and winners[0].state == "success", (serving, outcomes)
    # The model serving at the end is verified, and every promotion replaced exactly the champion its gate
    # beat on the same rows: production only ever moved to a model better than the one it replaced.
    assert verified_by(rel.sm, endpoint, winners[0].run_id) == serving, serving
    for r in results:
        if r.states.get("deploy") == "success" and (r.xcoms.get("deploy") or {}).get("operation") == "update":
            assert r.xcoms["deploy"]["previous_config_name"] == r.xcoms["pin_champion"]["endpoint_config"], r.run_id
    assert len(set(slugs)) == RUNS and not collisions
    assert len(jobs) == RUNS and all(len([j for j in jobs if s in j]) == 1 for s in slugs)
    assert summary["failed_calls"] == 0, summary
    assert orphans == [], orphans
    assert len(inventory["configs"]) <= 2 and len(inventory["models"]) <= 2, inventory
