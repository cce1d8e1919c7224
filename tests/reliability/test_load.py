"""Load: ten runs at once on one persistent endpoint, then the inventory.

Ten ``airflow dags test`` processes start together (a different split seed each, so their models
differ). ``dags test`` does not enforce the DAG's ``max_active_runs=1`` (a scheduler would queue
the ten triggers and run them one by one), so this is the worst case: the runs really overlap.
Checked: every run ends, no two runs share a resource name, no endpoint update ever starts while
another is in progress (the emulator refuses that as AWS does; the pipeline must not rely on it
by accident), the previous model keeps answering, and afterwards the endpoint holds exactly what
persistent mode keeps: the serving config and model plus one rollback config and model.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from reliability_harness import BIN, Probe, Row, describe_left

pytestmark = pytest.mark.slow
RUNS = 10


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
    did = (f"{len(results)} runs: {states.count('success')} succeeded, {states.count('failed')} failed; "
           f"{decisions.count(True)} passed the gate, {decisions.count(False)} kept the champion; "
           f"{calls.get('UpdateEndpoint', 0)} UpdateEndpoint calls, {refused_updates} update attempts refused "
           f"because another was in progress; {len(collisions)} name collisions")
    failed_reasons = sorted({t for r in results if r.state == "failed" for t, s in r.states.items() if s == "failed"})
    Row(scenario="load_10_overlapping_runs", injected=f"{RUNS} `airflow dags test` processes at once, one endpoint",
        expected_state="all runs end, nothing leaked", state=",".join(sorted(set(map(str, states)))),
        pipeline_did=did, reason=f"failed tasks: {failed_reasons}" if failed_reasons else "",
        resources_left=describe_left(inventory), orphans=orphans, downtime_s=summary["downtime_s"],
        failed_calls=summary["failed_calls"], answers_other=summary["answers_other"], training_jobs=len(jobs),
        sagemaker_calls=sum(calls.values()), seconds=seconds).write()
    print(did, failed_reasons, inventory, orphans)
    assert len(results) == RUNS and all(s in ("success", "failed") for s in states), states
    assert len(set(slugs)) == RUNS and not collisions
    assert len(jobs) == RUNS and all(len([j for j in jobs if s in j]) == 1 for s in slugs)
    assert summary["failed_calls"] == 0, summary
    assert orphans == [], orphans
    assert len(inventory["configs"]) <= 2 and len(inventory["models"]) <= 2, inventory
