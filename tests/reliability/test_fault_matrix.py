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
from reliability_harness import (
    PREFIX,
    Probe,
    Reliability,
    Row,
    answers_from_failed_model,
    describe_left,
    run_reason,
    slug_of,
    verified_by,
)

from sagemaker_retrain.config import alarm_names, tags

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
    for key in ("restore", "teardown"):
        value = result.xcoms.get(key) if states.get(key) == "success" else None
        if isinstance(value, dict):  # the teardown's {"removed": [...]}
            value = f"removed: {'; '.join(value.get('removed') or []) or 'nothing'}"
        if value:
            bits.append(f"{key}: {value if isinstance(value, str) else '; '.join(map(str, value))}")
    return ". ".join(bits)


def scenario(rel: Reliability, name: str, injected: str, *, expected: str, needles: tuple[str, ...],
             faults: dict | None = None, conf: dict | None = None, seed: bool = True, runner=None,
             note: str = "", endpoint: str | None = None, serves: str | None = None) -> Outcome:
    """One run of a fault; ``serves`` says which model must serve the endpoint at the end: ``previous`` (what
    served before the run), ``new`` (the run's own, verified), or by default ``new`` for a run expected to
    succeed and ``previous`` otherwise."""
    endpoint = endpoint or f"rel-{name.replace('_', '-')}"
    baseline = rel.seed_serving_endpoint(endpoint) if seed else None
    before = rel.inventory(endpoint)["endpoints"].get(endpoint, {}).get("config")
    calls_before = sum(rel.calls().values())
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
    calls = sum(rel.calls().values()) - calls_before
    inventory = rel.inventory(endpoint)
    orphans = rel.orphans(endpoint, inventory)
    slug = slug_of(result)
    jobs = rel.jobs_of_run(endpoint, slug)
    summary = probe.summary() if probe else None
    reason = run_reason(result.output, *needles) if result.state != "success" else ""
    ours = ((result.xcoms.get("prepare") or {}).get("names") or {}).get("endpoint_config")
    serves = serves or ("new" if expected == "success" else "previous")
    expected_serving = {"new": ours, "previous": before}.get(serves, serves)  # or a config named outright
    verified = verified_by(rel.sm, endpoint, result.run_id) is not None
    row = Row(
        scenario=name, injected=injected, expected_state=expected, state=result.state,
        pipeline_did=_did(result), reason=reason or ("run succeeded" if result.state == "success" else "(none found)"),
        resources_left=describe_left(inventory) + (f"; S3 runs/{slug}/{{{','.join(rel.s3_prefixes(slug))}}}"
                                                   if slug else ""),
        orphans=orphans, downtime_s=summary["downtime_s"] if summary else None,
        failed_calls=summary["failed_calls"] if summary else None,
        answers_other=summary["answers_other"] if summary else None,
        training_jobs=len(jobs), sagemaker_calls=calls, seconds=seconds, note=note,
        answers_failed_model=answers_from_failed_model(summary, verified),
        serving_at_end=inventory["endpoints"].get(endpoint, {}).get("config"), expected_serving=expected_serving,
    )
    row.write()
    return Outcome(result, endpoint, baseline, inventory, orphans, summary, jobs, calls, row, extra)


def assert_failed_safe(out: Outcome, *reason_words: str, canary: bool = False) -> None:
    """A run that must fail: right state, a reason, nothing orphaned, the previous model untouched.

    ``canary``: the run's model took its canary share of the traffic before it was rolled back; those
    answers are counted (it did not end the run verified), and must be all the probe saw of it.
    """
    tail = out.result.output[-8000:]
    assert out.result.state == "failed", tail
    assert out.row.reason not in ("", "(none found)"), tail
    for word in reason_words:
        assert word in out.result.output, (word, tail)
    assert out.orphans == [], out.orphans
    assert len(out.jobs) <= 1, out.jobs
    assert out.row.serving_at_end == out.row.expected_serving, out.row
    if canary:
        assert out.row.answers_failed_model == out.probe["answers_other"], out.row
    else:
        assert out.row.answers_failed_model in (0, None), out.row
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
    assert out.row.serving_at_end == out.row.expected_serving == plan["names"]["endpoint_config"], out.row
    assert out.row.answers_failed_model == 0, out.row


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
    assert out.result.states["restore"] == "success"
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


def test_garbage_model_never_reaches_production(rel):
    out = scenario(rel, "garbage_model", "nan_weights_next_training_job: the artifact has NaN weights behind "
                   "good training metrics, so the model answers NaN", expected="failed", needles=("no finite score",),
                   faults={"nan_weights_next_training_job": 1},
                   note="caught by the batch-transform scoring of the test rows, before any production change: "
                        "no endpoint config was created and UpdateEndpoint was never called.")
    assert_failed_safe(out, "no finite score", "failed its checks on the test rows")
    assert out.result.states["gate"] == "failed"
    assert out.result.states["deploy"] == "upstream_failed"
    assert out.probe["answers_other"] == 0, out.probe


def test_scoring_job_fails_once_and_the_retry_scores_again(rel):
    reason = "InternalServerError: scoring instance lost (injected)"  # SageMaker's own, transient: retried
    out = scenario(rel, "scoring_retried", f"fail_next_transform_job: {reason!r} once (the first of the two "
                   "batch transforms over the test rows to start)", expected="success", needles=(),
                   faults={"fail_next_transform_job": reason},
                   note="the task's retry started a second transform job (the provider's timestamped name) and the "
                        "run went on.")
    assert_succeeded(out)
    assert out.calls >= 1


def test_scoring_job_fails_every_try(rel):
    reason = "InternalServerError: scoring instance lost (injected)"
    out = scenario(rel, "scoring_failed", f"fail_next_transform_job: {reason!r} on every try of both batch "
                   "transforms (challenger and champion, 3 tries each)", expected="failed", needles=("(injected)",),
                   faults={"fail_next_transform_job": [reason] * 6})
    assert_failed_safe(out, reason)
    assert out.result.states["score_0"] == "failed"
    assert out.result.states["deploy"] in ("upstream_failed", "skipped")
    assert out.probe["answers_other"] == 0, out.probe


def test_scoring_job_failing_on_the_model_or_input_is_not_retried(rel):
    reason = "ClientError: the model container answered 400 for every record (injected)"
    out = scenario(rel, "scoring_client_error", f"fail_next_transform_job: {reason!r} on the first transform to "
                   "start (a model or input error: deterministic)", expected="failed", needles=("(injected)",),
                   faults={"fail_next_transform_job": [reason]},
                   note="the failed score task was not retried: a ClientError is the model's or the input's and would "
                        "fail the same way; no further billed transform job was started for it.")
    assert_failed_safe(out, reason, "a retry cannot fix")
    failed = [t for t in ("score_0", "score_1") if out.result.states.get(t) == "failed"]
    assert len(failed) == 1, out.result.states
    # the job that failed was not started again: one transform job per model, no timestamped retry
    jobs = rel.sm.list_transform_jobs(NameContains=slug_of(out.result), MaxResults=100)["TransformJobSummaries"]
    assert len(jobs) == 2, [j["TransformJobName"] for j in jobs]


def _alarm_faults(endpoint: str) -> dict:
    return {"alarm_during_next_bake": alarm_names(PREFIX, endpoint)["errors"]}


def test_canary_alarm_rolls_back(rel):
    endpoint = "rel-canary-alarm"
    alarm = alarm_names(PREFIX, endpoint)["errors"]
    try:
        out = scenario(rel, "canary_alarm", f"the rollback alarm {alarm} goes into ALARM as the canary starts "
                       "baking (alarm_during_next_bake)", expected="failed", needles=("rolled back",),
                       faults=_alarm_faults(endpoint), endpoint=endpoint,
                       note="SageMaker's deployment guardrails rolled the endpoint back by themselves; the canary "
                            "had taken its share of production traffic (answers not from the previous model) as "
                            "a model that had passed every check: that is what a canary is for.")
    finally:
        import boto3

        boto3.client("cloudwatch", endpoint_url=rel.emulator.url, region_name="us-east-1", aws_access_key_id="t",
                     aws_secret_access_key="t").set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="reset")
    assert_failed_safe(out, alarm, canary=True)
    assert out.result.states["wait_for_endpoint"] == "failed"


def test_failing_keep_champion_fails_the_run(rel):
    out = scenario(rel, "keep_champion_failed", "gate_threshold 0.5 (no model meets it, so the champion stays) and "
                   "every S3 PUT under history/ answers 500 (s3_error), so keep_champion cannot record the decision",
                   expected="failed", needles=("history",),
                   faults={"s3_error": {"key_contains": "/history/", "method": "PUT"}},
                   conf={"gate_threshold": 0.5})
    assert_failed_safe(out)
    assert out.result.states["keep_champion"] == "failed"
    # The framework fails the run (the ONE_FAILED watcher); the teardown itself did its job.
    assert out.result.states["teardown"] == "success" and out.result.states["watcher"] == "failed"
    assert out.probe["answers_other"] == 0, out.probe


def test_foreign_endpoint_is_refused(rel):
    endpoint = "rel-foreign-endpoint"
    rel.seed_serving_endpoint(endpoint, tags=[])
    before = {op: n for op, n in rel.calls().items() if op.startswith(("Create", "Update", "Delete", "Stop"))}
    out = scenario(rel, "foreign_endpoint", "endpoint_name names an InService endpoint without the project's tags",
                   expected="failed", needles=("not created by this pipeline",), seed=False, endpoint=endpoint)
    after = {op: n for op, n in rel.calls().items() if op.startswith(("Create", "Update", "Delete", "Stop"))}
    assert out.result.state == "failed"
    assert out.result.states["prepare"] == "failed"
    assert after == before, "a mutating SageMaker call was made"
    assert out.inventory["endpoints"][endpoint]["status"] == "InService"


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


# --- the champion the gate compared is the one deploy replaces (issue 21) -----------------------------------
OTHER_RUN = "manual__another-run"


def _when_called(rel, operation: str, action, extra: dict) -> threading.Thread:
    """Run ``action()`` (in a thread) as soon as the pipeline has called ``operation`` once more."""
    base = rel.calls().get(operation, 0)

    def watch():
        for _ in range(60000):
            if rel.calls().get(operation, 0) > base:
                extra["acted"] = action()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _champion_replaced_runner(rel, conf, probe, extra):
    """Another run promotes its model while this run scores against the champion it pinned."""
    endpoint = conf["endpoint_name"]
    other = rel.seed_config(endpoint, f"{endpoint}-other-run", tags=tags(endpoint, OTHER_RUN))

    def replace():
        rel.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=other)
        return rel.wait_in_service(endpoint)

    thread = _when_called(rel, "CreateTransformJob", replace, extra)
    try:
        return rel.run(conf)
    finally:
        thread.join(30)


def test_champion_replaced_between_pin_and_deploy_is_refused(rel):
    endpoint = "rel-champion-replaced"
    out = scenario(rel, "champion_replaced", "another run's model replaces the serving one (UpdateEndpoint) while "
                   "this run scores its challenger against the champion it pinned", expected="failed",
                   needles=("changed since the champion was pinned",), runner=_champion_replaced_runner,
                   endpoint=endpoint, serves=f"{endpoint}-other-run",
                   note="deploy refused before any mutating call (no endpoint config of this run, no UpdateEndpoint): "
                        "the challenger beat the pinned champion, not the model serving now.")
    assert out.extra["acted"] == f"{endpoint}-other-run", out.extra
    assert out.result.states["gate"] == "success" and out.result.states["deploy"] == "failed", out.result.states
    assert out.result.xcoms["pin_champion"]["endpoint_config"] == out.baseline
    assert "changed since the champion was pinned" in out.row.reason and out.baseline in out.row.reason
    assert out.row.serving_at_end == out.row.expected_serving == f"{endpoint}-other-run", out.row
    assert out.orphans == [], out.orphans
    assert out.probe["failed_calls"] == 0 and out.row.answers_failed_model == 0, out.row


def _updating_at_pin_runner(rel, conf, probe, extra):
    """The endpoint starts an update (another run's) right after this run registered its model: it is Updating
    when the champion is pinned, for 5 s at time scale 1."""
    endpoint = conf["endpoint_name"]
    other = rel.seed_config(endpoint, f"{endpoint}-other-run", tags=tags(endpoint, OTHER_RUN))

    def update():
        rel.set_time_scale(1)
        rel.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=other)
        extra["status_after_update"] = rel.sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
        served = rel.wait_in_service(endpoint, timeout=60)
        rel.set_time_scale(0)
        return served

    thread = _when_called(rel, "CreateModelPackage", update, extra)
    try:
        return rel.run(conf)
    finally:
        thread.join(90)


def test_endpoint_updating_at_pin_is_waited_for(rel):
    endpoint = "rel-updating-at-pin"
    out = scenario(rel, "updating_at_pin", "the endpoint is Updating (another run's deployment) when the champion "
                   "is pinned", expected="success", needles=(), runner=_updating_at_pin_runner, endpoint=endpoint,
                   note="pin_champion waited (deferred) for the update to settle, pinned the other run's config, "
                        "scored the challenger against it and deploy replaced exactly that one.")
    assert out.extra["status_after_update"] == "Updating", out.extra
    assert out.result.xcoms["pin_champion"]["endpoint_config"] == f"{endpoint}-other-run", out.result.xcoms
    assert out.result.xcoms["deploy"]["previous_config_name"] == f"{endpoint}-other-run"
    assert out.result.xcoms["gate.evidence"]["scores"]["champion"] is not None
    assert out.result.state == "success", out.result.output[-4000:]
    assert out.row.serving_at_end == out.row.expected_serving, out.row
    assert out.row.answers_failed_model == 0 and out.probe["failed_calls"] == 0, out.row


def _nan_champion_runner(rel, conf, probe, extra):
    return rel.run(conf)


def test_a_champion_answering_nan_is_a_finding_not_no_model(rel):
    endpoint = "rel-nan-champion"
    broken = rel.seed_serving_endpoint(endpoint, model_uri=rel.put_constant_model(float("nan"), "nan-champion"))
    out = scenario(rel, "nan_champion", "the serving model answers NaN for every row (its artifact's bias is NaN)",
                   expected="success", needles=(), seed=False, runner=_nan_champion_runner, endpoint=endpoint,
                   note="the champion was scored on the same rows and failed its checks: the gate's reason and the "
                        "history record name that finding, and the challenger (meeting the threshold) replaced it.")
    evidence = out.result.xcoms["gate.evidence"]
    assert out.result.state == "success", out.result.output[-4000:]
    assert evidence["decision"]["deploy"] is True and evidence["decision"]["champion_model"] == broken
    assert "fails its checks" in evidence["decision"]["reason"], evidence["decision"]
    assert "no model serving" not in evidence["decision"]["reason"]
    assert "finite" in evidence["champion_finding"], evidence
    record = rel.history_record(out.result.xcoms["publish"]["history"])
    assert record["champion_finding"] == evidence["champion_finding"]
    assert out.row.serving_at_end == out.row.expected_serving, out.row
