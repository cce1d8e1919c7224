"""Fault-matrix scenarios that need control over processes and time: a job stopped from outside,
the worker killed while training waits, the emulator restarted mid-run. (Timeouts: every task has its
own execution_timeout and each wait one total cap, tested in tests/unit/test_endpoint_trigger_and_sensor.py.)

They reuse ``test_fault_matrix.scenario`` (same endpoint seeding, probe, inventory and row), with a
runner that drives the run as a subprocess and acts on it while it waits.
"""

from __future__ import annotations

import time

import pytest
from reliability_harness import wait_for
from test_fault_matrix import assert_failed_safe, assert_succeeded, scenario

pytestmark = pytest.mark.slow
HOLD = 1000.0  # emulator time scale that keeps a training job in Starting until released


def _running_job(rel, endpoint):
    jobs = rel.inventory(endpoint)["training_jobs"]
    return next((j for j, s in jobs.items() if s == "InProgress"), None)


def _deferred(log, times: int = 1) -> None:
    """Wait until the run's log says train deferred ``times`` times (``dags test`` then runs the trigger
    inline and shows the task as scheduled in the database, so the log is the reliable signal)."""
    wait_for(lambda: log.read_text().count("Pausing task as DEFERRED") >= times, 180, what="train deferred")
    time.sleep(0.5)


def _finish(rel, proc, log, run_id=None, timeout=300):
    proc.wait(timeout=timeout)
    return rel.result(run_id or rel.latest_run_id(), log.read_text(), proc.returncode)


def _stop_from_outside(rel, conf, probe, extra):
    log = rel.home / "stopped.log"
    rel.set_time_scale(HOLD)
    proc = rel.start_run(conf, log=log)
    job = wait_for(lambda: _running_job(rel, conf["endpoint_name"]), 180, what="a running training job")
    run_id = rel.latest_run_id()
    _deferred(log)
    rel.sm.stop_training_job(TrainingJobName=job)
    extra["stopped"] = job
    return _finish(rel, proc, log, run_id)


def test_training_stopped_from_outside(rel):
    out = scenario(rel, "training_stopped", "StopTrainingJob from outside while the job runs and the train task "
                   "is deferred", expected="failed", needles=("Stopped",), runner=_stop_from_outside)
    assert_failed_safe(out, "ended Stopped")
    assert out.inventory["training_jobs"][out.extra["stopped"]] == "Stopped"
    assert len(out.jobs) == 1


def _kill_and_retry(rel, conf, probe, extra):
    date = "2026-02-01T00:00:00+00:00"
    first_log, second_log = rel.home / "killed.log", rel.home / "retried.log"
    creates = rel.calls().get("CreateTrainingJob", 0)
    rel.set_time_scale(HOLD)
    first = rel.start_run(conf, logical_date=date, log=first_log)
    job = wait_for(lambda: _running_job(rel, conf["endpoint_name"]), 180, what="a running training job")
    run_id = rel.latest_run_id()
    _deferred(first_log)
    rel.kill(first)  # SIGKILL the whole process group: worker and inline trigger gone
    extra["killed_state"] = rel.ti_state(run_id, "train")
    second = rel.start_run(conf, logical_date=date, log=second_log)
    wait_for(lambda: "Re-attaching to training job" in second_log.read_text(), 180, what="re-attach")
    _deferred(second_log)
    rel.set_time_scale(0)
    result = _finish(rel, second, second_log, run_id)
    extra.update(job=job, creates=rel.calls().get("CreateTrainingJob", 0) - creates)
    return result


def test_worker_killed_while_training_waits_then_retried(rel):
    out = scenario(rel, "worker_sigkill_retry", "SIGKILL of the run's process group while train is deferred on a "
                   "running job, then the same run (same run id and run_after) started again", expected="success",
                   needles=(), runner=_kill_and_retry,
                   note="`airflow dags test` re-creates the run on a re-run, so the retry is the whole run again "
                        "with the same identity (tests/reliability/drive_run.py pins run_after); train found the "
                        "first try's job and re-attached to it instead of creating a second one.")
    assert_succeeded(out)
    assert out.extra["creates"] == 1, out.extra
    assert out.jobs == [out.extra["job"]]


# The retry budget the README recommends for workers and triggerer: a deferred wait rides out a short
# API outage instead of failing its trigger (``airflow dags test`` does not retry a failed inline trigger).
OUTAGE_TOLERANT_RETRIES = {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "10"}


def _restart_emulator(rel, conf, probe, extra):
    log = rel.home / "restart.log"
    rel.set_time_scale(HOLD)
    proc = rel.start_run(conf, extra_env=OUTAGE_TOLERANT_RETRIES, log=log)
    wait_for(lambda: _running_job(rel, conf["endpoint_name"]), 180, what="a running training job")
    run_id = rel.latest_run_id()
    _deferred(log)
    probe.pause()  # the whole of AWS is down meanwhile: not the pipeline's downtime
    extra["down_s"] = round(rel.restart_emulator(), 2)
    probe.resume()
    rel.set_time_scale(0)
    return _finish(rel, proc, log, run_id)


def test_emulator_restarted_mid_run(rel):
    out = scenario(rel, "emulator_restarted", "emulator stopped (state saved) and started again from --state-dir "
                   "while the training job runs", expected="failed", needles=("emulator stopped",),
                   runner=_restart_emulator,
                   note="the emulator models an instance lost with the restart: the running job comes back Failed "
                        "(as documented in include/offline_aws/README.md); the endpoint comes back serving the same "
                        "model. The probe was paused while the emulator itself was down. The run's processes use the "
                        "retry budget the README recommends (AWS_RETRY_MODE=standard, AWS_MAX_ATTEMPTS=10), so the "
                        "deferred training wait rode out the outage.")
    assert_failed_safe(out, "emulator stopped")
    assert len(out.jobs) == 1
