"""Load as production sees it: ten runs triggered through the REST API, queued by the scheduler.

On the native deployment (CeleryExecutor, PostgreSQL, Redis, scheduler, triggerer; see
``tests/native_deployment.py``) ten runs are triggered at once on one persistent endpoint, as ten
presses of Trigger in the UI. The DAG's ``max_active_runs=1`` makes the scheduler queue them and run
them one by one. Checked: all ten end ``success`` (each promoted its model or kept the champion),
in the order they were triggered, none started before the one before it ended, the probe on the
serving endpoint saw no failed call, and afterwards the endpoint holds only what persistent mode
keeps. The emulator runs at time scale 0 and the runs train few epochs with no bake, so the
figure is the pipeline's and Airflow's own time.
"""

from __future__ import annotations

import time

import pytest
from native_deployment import DAG_ID, EMULATOR_TIME_SCALE
from reliability_harness import Probe, Row, describe_left
from test_native_faults import FINISHED, _dag_unpaused

pytestmark = [pytest.mark.slow, pytest.mark.deployment]
RUNS = 10
CONF = {"gate_threshold": 1000.0, "epochs": 2, "bake_seconds": 0, "termination_wait_seconds": 0}


@pytest.mark.timeout(1800)  # ten runs one after the other: on a loaded 2-core machine more than the default 900 s
def test_ten_runs_queued_by_the_scheduler_all_succeed_in_order(deployment, native):
    endpoint = "rel-native-load"
    native.set_time_scale(0)
    baseline = native.seed_serving_endpoint(endpoint, timeout=60)
    before = native.calls()
    probe = Probe(lambda: native.url, endpoint).start()
    started = time.monotonic()
    run_ids: list[str] = []
    try:
        with _dag_unpaused(deployment):
            for i in range(RUNS):  # ten presses of Trigger, one after the other
                run_ids.append(deployment.trigger({**CONF, "endpoint_name": endpoint, "split_seed": i}))
            queued = [deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{r}")["state"] for r in run_ids]
            finals = [deployment.wait_for_run(r, timeout=600) for r in run_ids]
        seconds = round(time.monotonic() - started, 1)
        inventory = native.inventory(endpoint)
        orphans = native.orphans(endpoint, inventory)
    finally:
        native.set_time_scale(EMULATOR_TIME_SCALE)
        time.sleep(0.3)
        probe.stop()
        for run_id in run_ids:
            if deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"] not in FINISHED:
                deployment.set_run_state(run_id, "failed", note="left unfinished by a failed reliability test")
    calls = {op: n - before.get(op, 0) for op, n in native.calls().items() if n - before.get(op, 0)}
    summary = probe.summary()
    states = [f["state"] for f in finals]
    decisions = [((deployment.xcom(r, "gate", key="evidence") or {}).get("decision") or {}).get("deploy")
                 for r in run_ids]
    outcomes = ["promoted" if d else "kept the champion" if d is False else "no gate decision" for d in decisions]
    # In order: each run started after the one triggered before it had ended.
    overlaps = [(a["dag_run_id"], b["dag_run_id"]) for a, b in zip(finals, finals[1:], strict=False)
                if not (a["end_date"] and b["start_date"] and b["start_date"] >= a["end_date"])]
    did = (f"{RUNS} runs triggered through the REST API ({queued.count('queued')} waited queued at trigger time): "
           f"{states.count('success')} succeeded ({outcomes.count('promoted')} promoted, "
           f"{outcomes.count('kept the champion')} kept the champion), {states.count('failed')} failed; "
           f"{'in trigger order, none overlapping' if not overlaps else f'overlapping: {overlaps}'}; "
           f"{calls.get('UpdateEndpoint', 0)} UpdateEndpoint calls")
    Row(scenario="load_10_queued_runs_native", injected=f"{RUNS} REST triggers at once on the native deployment "
        "(scheduler, CeleryExecutor, triggerer; max_active_runs=1), one endpoint", expected_state="all success, in order",
        state=",".join(sorted(set(states))), pipeline_did=did, reason="run succeeded" if set(states) == {"success"}
        else f"states {states}", resources_left=describe_left(inventory), orphans=orphans,
        downtime_s=summary["downtime_s"], failed_calls=summary["failed_calls"], answers_other=summary["answers_other"],
        training_jobs=len(inventory["training_jobs"]), sagemaker_calls=sum(calls.values()), seconds=seconds).write()
    print(did, summary, inventory, f"{seconds} s")
    assert states == ["success"] * RUNS, (states, [deployment.task_instances(r) for r in run_ids
                                                    if deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{r}")
                                                    ["state"] != "success"][:1])
    assert "no gate decision" not in outcomes, outcomes
    assert overlaps == [], overlaps
    assert summary["failed_calls"] == 0, summary
    assert orphans == [], orphans
    assert len(inventory["training_jobs"]) == RUNS, inventory["training_jobs"]
    assert inventory["endpoints"][endpoint]["status"] == "InService", inventory
    if outcomes.count("promoted") == 0:
        assert inventory["endpoints"][endpoint]["config"] == baseline, inventory
