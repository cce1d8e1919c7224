"""The deployments' `[workers] min_heartbeat_interval` (docs/upstream.md §7): the supervisor must read it.

A task's supervisor that misses its process's exit sleeps this interval before it looks again, so the
deployments set 1 s instead of Airflow's 5. If a release renames or drops the setting, the deployments
silently go back to 5 s per missed exit: these tests fail instead. (That the supervisor's loop still waits
this long is what bench/bench_slot_seconds.py shows, not this test.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from native_deployment import PROJECT_DIR, SHARED_SETTINGS

SETTING = "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"


def _supervisor_interval(value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != SETTING}
    if value is not None:
        env[SETTING] = value
    code = "from airflow.sdk.execution_time import supervisor; print(supervisor.MIN_HEARTBEAT_INTERVAL)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_the_supervisor_takes_the_deployments_interval():
    assert SHARED_SETTINGS[SETTING] == "1"
    assert _supervisor_interval(None) == 5  # Airflow's default, which the deployments change
    assert _supervisor_interval(SHARED_SETTINGS[SETTING]) == 1


def test_docker_composes_worker_gets_it():
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yaml").read_text())
    assert compose["services"]["airflow-worker"]["environment"][SETTING] == "1"
