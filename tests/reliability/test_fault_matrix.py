"""The fault matrix: one end-to-end DAG run per injected fault, then an inventory.

Each scenario has its own endpoint, with a known model already serving behind it (the
"previous model", answering a constant); a probe invokes it for the whole run. After the run:
the run ended in the right state with a clear reason, nothing is orphaned, the previous model
answered throughout (no failed call; no answer from another model unless the run rightly
deployed one), and at most one training job carries the run's name.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from reliability_harness import Probe, Reliability, Row, describe_left, reason_line, slug_of

pytestmark = pytest.mark.slow
GOOD = {"gate_threshold": 1000.0, "epochs": 5}


@dataclass
class Outcome:
    result: object
    endpoint: str
    baseline: str | None
    inventory: dict
    orphans: list[str]
    probe: dict | None
    jobs: list[str]
    calls: int
    row: Row
    extra: dict = field(default_factory=dict)


def _did(result) -> str:
    states = result.states
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed") and t != "__run__")
    bits = [f"failed: {', '.join(failed)}" if failed else "all tasks ok"]
    for key in ("rollback", "teardown"):
        value = result.xcoms.get(key)
        if value:
            bits.append(f"{key}: {value if isinstance(value, str) else '; '.join(map(str, value))}")
    return ". ".join(bits)


def scenario(rel: Reliability, name: str, injected: str, *, expected: str, needles: tuple[str, ...],
             faults: dict | None = None, conf: dict | None = None, seed: bool = True, runner=None,
             note: str = "") -> Outcome:
    endpoint = f"rel-{name.replace('_', '-')}"
    baseline = rel.seed_serving_endpoint(endpoint) if seed else None
    before = sum(rel.calls().values())
    probe = Probe(lambda: rel.emulator.url, endpoint).start() if seed else None
    started = time.monotonic()
    extra: dict = {}
    try:
        if faults:
            rel.faults.configure(faults)
        run_conf = {**GOOD, "endpoint_name": endpoint, **(conf or {})}
        result = runner(rel, run_conf, probe, extra) if runner else rel.run(run_conf)
    finally:
        rel.faults.clear()
        rel.set_time_scale(0)
        if probe:
            time.sleep(0.3)
            probe.stop()
    seconds = round(time.monotonic() - started, 1)
    calls = sum(rel.calls().values()) - before
    inventory = rel.inventory(endpoint)
    orphans = rel.orphans(endpoint, inventory)
    slug = slug_of(result)
    jobs = rel.jobs_of_run(endpoint, slug)
    summary = probe.summary() if probe else None
    reason = reason_line(result.output, *needles) if result.state != "success" else ""
    row = Row(
        scenario=name, injected=injected, expected_state=expected, state=result.state,
        pipeline_did=_did(result), reason=reason or ("run succeeded" if result.state == "success" else "(none found)"),
        resources_left=describe_left(inventory) + (f"; S3 runs/{slug}/{{{','.join(rel.s3_prefixes(slug))}}}"
                                                   if slug else ""),
        orphans=orphans, downtime_s=summary["downtime_s"] if summary else None,
        failed_calls=summary["failed_calls"] if summary else None,
        answers_other=summary["answers_other"] if summary else None,
        training_jobs=len(jobs), sagemaker_calls=calls, seconds=seconds, note=note,
    )
    row.write()
    return Outcome(result, endpoint, baseline, inventory, orphans, summary, jobs, calls, row, extra)


def assert_failed_safe(out: Outcome, *reason_words: str) -> None:
    """A run that must fail: right state, a reason, nothing orphaned, the previous model untouched."""
    tail = out.result.output[-8000:]
    assert out.result.state == "failed", tail
    assert out.row.reason not in ("", "(none found)"), tail
    for word in reason_words:
        assert word in out.result.output, (word, tail)
    assert out.orphans == [], out.orphans
    assert len(out.jobs) <= 1, out.jobs
    if out.baseline:
        assert out.inventory["endpoints"][out.endpoint] == {"status": "InService", "config": out.baseline}
        assert out.probe["failed_calls"] == 0, out.probe
        assert out.probe["answers_previous"] > 0, out.probe


def assert_succeeded(out: Outcome) -> None:
    tail = out.result.output[-8000:]
    assert out.result.state == "success", tail
    assert out.orphans == [], out.orphans
    assert len(out.jobs) == 1, out.jobs
    plan = out.result.xcoms["prepare"]
    assert out.inventory["endpoints"][out.endpoint]["config"] == plan["names"]["endpoint_config"]
    assert out.probe["failed_calls"] == 0, out.probe
    assert out.probe["answers_previous"] > 0 and out.probe["answers_other"] > 0, out.probe
    assert out.row.downtime_s == 0


def test_training_job_failed(rel):
    reason = "AlgorithmError: injected by the reliability suite"
    out = scenario(rel, "training_failed", f"fail_next_training_job: {reason!r}", expected="failed",
                   needles=("injected by the reliability suite",), faults={"fail_next_training_job": reason})
    assert_failed_safe(out, reason)
    assert out.result.states["train"] == "failed"
    assert out.result.states["deploy"] in ("upstream_failed", "skipped")
    assert len(out.jobs) == 1


def test_endpoint_create_failed(rel):
    reason = "The primary container did not pass the ping health check (injected)"
    out = scenario(rel, "endpoint_create_failed", f"ephemeral run, fail_next_endpoint_create: {reason!r}",
                   expected="failed", needles=("(injected)",), faults={"fail_next_endpoint_create": reason},
                   conf={"mode": "ephemeral"})
    assert_failed_safe(out, reason)
    assert out.result.states["wait_for_endpoint"] == "failed"
    assert out.result.states["rollback"] == "success"
    assert list(out.inventory["endpoints"]) == [out.endpoint]  # the run's own endpoint is gone


def test_endpoint_create_failed_first_deployment(rel):
    reason = "Insufficient capacity for ml.m5.large (injected)"
    out = scenario(rel, "endpoint_create_failed_first", f"persistent first deployment (nothing serving yet), "
                   f"fail_next_endpoint_create: {reason!r}", expected="failed", needles=("(injected)",),
                   faults={"fail_next_endpoint_create": reason}, seed=False)
    assert_failed_safe(out, reason)
    assert out.inventory["endpoints"] == {} and out.inventory["configs"] == [] and out.inventory["models"] == []


def test_endpoint_update_failed_and_rolled_back(rel):
    reason = "Failed to download model data (injected)"
    out = scenario(rel, "endpoint_update_rolled_back", f"fail_next_endpoint_update: {reason!r} (SageMaker rolls "
                   "back to the old config)", expected="failed", needles=("rolled back",),
                   faults={"fail_next_endpoint_update": reason})
    assert_failed_safe(out, reason, "the update failed and was rolled back")
    assert out.probe["answers_other"] == 0, out.probe


def test_smoke_test_answers_garbage(rel):
    out = scenario(rel, "smoke_garbage", "nan_weights_next_training_job: the artifact has NaN weights behind "
                   "good metrics, so the endpoint answers NaN", expected="failed", needles=("no finite score",),
                   faults={"nan_weights_next_training_job": 1},
                   note="blue/green switches traffic before the smoke test can ask the new model, so the probe saw "
                        "the bad model's answers until the rollback (counted in 'answers not from the previous "
                        "model'); there were no failed calls.")
    assert_failed_safe(out, "no finite score")
    assert out.result.states["rollback"] == "success"
    assert "rolled back to" in out.result.xcoms["rollback"]


def test_evaluation_raises_midway(rel):
    out = scenario(rel, "evaluation_midway", "server_error 500 on every InvokeEndpoint after the smoke request "
                   "and 3 scoring batches (11 batches of 5 rows)", expected="failed",
                   needles=("InternalFailure", "InvokeEndpoint"),
                   faults={"server_error": {"share": 1.0, "after": 4, "status": 500, "operations": ["InvokeEndpoint"]}},
                   conf={"eval_batch_rows": 5},
                   note="the probe saw the new model between the switch and the rollback (answers not from the "
                        "previous model), no failed call.")
    assert_failed_safe(out)
    assert out.result.states["evaluate"] == "failed"
    assert out.result.states["rollback"] == "success"
    assert "rolled back to" in out.result.xcoms["rollback"]


def test_throttling_half_of_all_calls(rel):
    out = scenario(rel, "throttle_50pct", "ThrottlingException on every second SageMaker call "
                   "(control plane and InvokeEndpoint) for the whole run", expected="success", needles=(),
                   faults={"throttle": {"share": 0.5}})
    assert_succeeded(out)


def _bursts_runner(rel, conf, probe, extra):
    """Inject a burst of 8 x 503 at the start and each time the run reaches a new deployment step."""
    stop = threading.Event()
    burst = {"server_error": {"share": 1.0, "count": 8, "status": 503}}
    bursts = []

    def watch():
        seen = set()
        rel.faults.configure(burst)
        bursts.append("start")
        while not stop.is_set():
            calls = rel.calls()
            for op in ("CreateTrainingJob", "CreateModel", "UpdateEndpoint"):
                if op not in seen and calls.get(op, 0) > extra["base"].get(op, 0):
                    seen.add(op)
                    rel.faults.configure(burst)
                    bursts.append(op)
            time.sleep(0.01)

    extra["base"] = rel.calls()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return rel.run(conf)
    finally:
        stop.set()
        watcher.join(5)
        extra["bursts"] = bursts


def test_5xx_bursts(rel):
    out = scenario(rel, "5xx_bursts", "bursts of 8 consecutive 503s: at the start, after CreateTrainingJob, "
                   "CreateModel and UpdateEndpoint", expected="success", needles=(), runner=_bursts_runner)
    assert_succeeded(out)
    assert len(out.extra["bursts"]) == 4, out.extra
