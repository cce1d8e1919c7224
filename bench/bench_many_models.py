"""Many models (issue 23): ten models' DAGs triggered at once on the native deployment, beside one model alone.

A temporary catalog of ``--models`` (10) generated entries (copies of the housing model, each a model
of its own: name, DAG ``retrain_model_NN``, endpoint ``model-NN`` and so its own endpoint pool; the
generator of ``bench_parse.py``) is handed to the native deployment (``tests/native_deployment.py``:
PostgreSQL, Redis, CeleryExecutor, scheduler, dag-processor, triggerer, api-server, one Celery worker,
each its own process) through env ``SAGEMAKER_RETRAIN_CATALOG_DIR`` (``NativeDeployment.extra_env``:
every Airflow process, and ``create_pools``, which makes one pool per endpoint, read the same catalog).
The emulator runs at time scale 0. Once the dag-processor has parsed every DAG, all are unpaused;
then, in the same deployment:

1. the baseline: the first model's run triggered alone through the REST API (``--alone-runs`` times,
   the last one counted: the first run of a fresh deployment also warms the emulator);
2. the ten runs triggered at once (one POST after the other, as fast as the api-server answers),
   every run ``{"mode": "ephemeral"}`` (it deploys an endpoint of its own and deletes it).

Reported: how many succeeded; the wall time from the first POST to the last run's ``end_date``; each
run's duration (``start_date`` to ``end_date``; median and max) and its time from its POST to its
``end_date``; each run's start delay (``start_date - queued_at``: a run queued behind another would
show it) and the longest wait of an endpoint-pool task (``deploy``, ``restore``: ``scheduled_when``
to ``queued_when``, where a pool slot held by another run would show); the tasks' wait for a Celery
worker slot (``queued_when`` to ``start_date``).

Worker-slot seconds per run: measured on the worker side. Every task execution (a first try, and each
resume after a deferral, is a Celery task of its own) is logged by the Celery worker as
``[<celery id>] Executing workload in Celery: ... task_id=..., dag_id=..., run_id=...`` and then
``Task execute_workload[<celery id>] succeeded in <seconds>s``, Celery's own run time of the task in
its pool process, i.e. the time it held one of the worker's slots (the supervisor, the task process's
start, its DAG parse, its work, its exit). The figure is the sum of those seconds over the run's
Celery tasks (the process log ``airflow-worker.log``). A deferral frees the slot: it is not counted.
Cross-checks printed beside it: the Airflow event log (``/api/v2/eventLogs``: the execution API logs
``running`` when a task process starts and ``deferred``/``success``/... when it leaves; the sum of
those intervals, the task process's own time) and the REST API's task ``duration`` sum, which for a
task that deferred includes its deferral (Airflow 3.3 keeps a resumed task's first ``start_date``).

    python bench/bench_many_models.py [--models 10] [--alone-runs 2] [--poll-seconds 0.2]
                                      [--short-wait-seconds 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT, Figure, median, report  # noqa: E402
from bench_parse import write_model_copies  # noqa: E402

CATALOG_ENV = "SAGEMAKER_RETRAIN_CATALOG_DIR"
CONF = {"mode": "ephemeral"}
POLL_SECONDS = 0.2  # as bench_orchestration.py: at time scale 0 the DAG's default 30 s would measure sleeping
# The native deployment's own (docker-compose's) default: every wait on SageMaker is handed to the triggerer.
SHORT_WAIT_SECONDS = 0.0
EMULATOR_TIME_SCALE = 0
START_GOAL_S = 5.0  # "started within a few seconds of its trigger", and no endpoint-pool wait longer
RUN_TIMEOUT_S = 420
EXECUTING = re.compile(r"\[([0-9a-f-]{36})\] Executing workload in Celery: .*?"
                       r"ti=TaskInstanceDTO\(id=UUID\('[^']+'\), task_id='([^']+)', dag_id='([^']+)', run_id='([^']+)'")
FINISHED = re.compile(r"Task execute_workload\[([0-9a-f-]{36})\] succeeded in ([0-9.]+)s")
TERMINAL_EVENTS = {"deferred", "success", "failed", "up_for_retry", "up_for_reschedule", "skipped", "removed",
                   "upstream_failed", "awaiting_input"}


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds(a: str | datetime | None, b: str | datetime | None) -> float | None:
    if not a or not b:
        return None
    a = _stamp(a) if isinstance(a, str) else a
    b = _stamp(b) if isinstance(b, str) else b
    return (b - a).total_seconds()


def celery_slot_seconds(worker_log: Path) -> dict[tuple[str, str], dict]:
    """(dag_id, run_id) -> Celery tasks finished and the seconds they held a worker slot (the worker's log)."""
    owner: dict[str, tuple[str, str, str]] = {}
    runs: dict[tuple[str, str], dict] = {}
    for line in worker_log.read_text(errors="replace").splitlines():
        match = EXECUTING.search(line)
        if match:
            celery_id, task_id, dag_id, run_id = match.groups()
            owner[celery_id] = (dag_id, run_id, task_id)
            continue
        match = FINISHED.search(line)
        if match and match.group(1) in owner:
            dag_id, run_id, task_id = owner[match.group(1)]
            entry = runs.setdefault((dag_id, run_id), {"seconds": 0.0, "executions": 0, "per_task": {}})
            entry["seconds"] += float(match.group(2))
            entry["executions"] += 1
            entry["per_task"][task_id] = entry["per_task"].get(task_id, 0.0) + float(match.group(2))
    return runs


def run_events(deployment, dag_id: str, run_id: str) -> list[dict]:
    """The run's Airflow event log (``/api/v2/eventLogs``), in order."""
    from urllib.parse import quote

    events, offset = [], 0
    while True:
        page = deployment.api("GET", f"/api/v2/eventLogs?dag_id={quote(dag_id)}&run_id={quote(run_id)}"
                                     f"&limit=100&offset={offset}&order_by=event_log_id")
        events += page["event_logs"]
        offset += len(page["event_logs"])
        if not page["event_logs"] or offset >= page["total_entries"]:
            break
    return sorted(events, key=lambda e: (e["when"], e["event_log_id"]))


def event_log_running_seconds(deployment, dag_id: str, run_id: str) -> float:
    """Sum over the run's task processes of ``running`` -> the next leaving event (Airflow's event log)."""
    total, started = 0.0, {}
    for event in run_events(deployment, dag_id, run_id):
        key = (event.get("task_id"), event.get("map_index"), event.get("try_number"))
        if event["event"] == "running":
            started[key] = event["when"]
        elif event["event"] in TERMINAL_EVENTS and key in started:
            total += _seconds(started.pop(key), event["when"])
    return total


def trigger(deployment, dag_id: str) -> tuple[str, datetime]:
    posted = datetime.now(UTC)
    run = deployment.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": CONF})
    return run["dag_run_id"], posted


def wait_all(deployment, runs: dict[str, str], timeout: float = RUN_TIMEOUT_S) -> dict[str, dict]:
    """Poll every run until each has finished; the finished runs by DAG id."""
    done: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(runs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(runs) - len(done)} run(s) not finished in {timeout:.0f} s: "
                               f"{sorted(set(runs) - set(done))}\n" + deployment.all_log_tails())
        dead = [name for name, p in deployment.procs.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead} exited during the runs\n" + deployment.all_log_tails())
        for dag_id, run_id in runs.items():
            if dag_id not in done:
                run = deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
                if run["state"] in ("success", "failed"):
                    done[dag_id] = run
        time.sleep(1)
    return done


def describe_run(deployment, dag_id: str, run: dict, posted: datetime) -> dict:
    """What one finished run says: its times, its tasks' waits, the API's task durations."""
    tis = deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
    ran = [ti for ti in tis if ti.get("start_date") and ti["state"] != "skipped"]
    pooled = [ti for ti in ran if (ti.get("pool") or "").startswith("sagemaker_endpoint_")]
    return {
        "dag_id": dag_id, "run_id": run["dag_run_id"], "state": run["state"],
        "states": {ti["task_id"]: ti["state"] for ti in tis},
        "posted": posted, "end": _stamp(run["end_date"]),
        "to_end_s": _seconds(posted, run["end_date"]),
        "duration_s": _seconds(run["start_date"], run["end_date"]),
        "start_delay_s": _seconds(run["queued_at"], run["start_date"]),
        "post_to_start_s": _seconds(posted, run["start_date"]),
        "pool_wait_s": max([_seconds(ti["scheduled_when"], ti["queued_when"]) or 0.0 for ti in pooled], default=0.0),
        "pooled": sorted({ti["pool"] for ti in pooled}),
        # A resumed task keeps its first start_date and gets a later queued_when: only first executions count here.
        "slot_waits_s": [w for w in (_seconds(ti.get("queued_when"), ti["start_date"]) for ti in ran)
                         if w is not None and w >= 0],
        "api_duration_s": sum(ti.get("duration") or 0.0 for ti in ran),
        "tasks_run": len(ran),
        "events_running_s": event_log_running_seconds(deployment, dag_id, run["dag_run_id"]),
    }


def add_slots(deployment, described: list[dict]) -> None:
    time.sleep(3)  # the worker logs a Celery task's end just after the task's own state change
    slots = celery_slot_seconds(deployment.log_dir / "airflow-worker.log")
    for run in described:
        entry = slots.get((run["dag_id"], run["run_id"]), {"seconds": 0.0, "executions": 0, "per_task": {}})
        run["slot_s"], run["executions"], run["slot_per_task"] = entry["seconds"], entry["executions"], entry["per_task"]
        if run["executions"] < run["tasks_run"]:
            raise RuntimeError(f"the worker log has {run['executions']} finished Celery tasks for "
                               f"{run['dag_id']} {run['run_id']}, fewer than its {run['tasks_run']} tasks that ran")


def measure(models: int, alone_runs: int, poll_seconds: float, short_wait: float) -> list[Figure]:
    sys.path.insert(0, str(PROJECT / "tests"))
    from native_deployment import NativeDeployment

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-many-models-") as tmp:
        tmp = Path(tmp)
        catalog = tmp / "catalog"
        catalog.mkdir()
        dag_ids = write_model_copies(catalog, models)
        extra = {CATALOG_ENV: str(catalog), "SAGEMAKER_RETRAIN_POLL_SECONDS": f"{poll_seconds:g}",
                 "SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS": f"{short_wait:g}"}
        started = time.perf_counter()
        deployment = NativeDeployment(tmp, extra_env=extra).start()
        try:
            concurrency = deployment.env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "16 (Airflow's default)")
            settings = (f"N={models} housing copies, each its own DAG and endpoint pool; ephemeral; emulator time "
                        f"scale {EMULATOR_TIME_SCALE}; SAGEMAKER_RETRAIN_POLL_SECONDS="
                        f"{deployment.env['SAGEMAKER_RETRAIN_POLL_SECONDS']}, SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS="
                        f"{deployment.env['SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS']}"
                        f"{' (the deployment default: every wait deferred)' if not short_wait else ''}; one Celery worker, AIRFLOW__CELERY__WORKER_CONCURRENCY={concurrency}; "
                        f"{os.cpu_count()} cores")
            print(f"#   {settings}", flush=True)
            print(f"#   deployment up in {time.perf_counter() - started:.0f} s; load average {load_start[0]:.1f}",
                  flush=True)
            deployment.set_time_scale(EMULATOR_TIME_SCALE)
            parse_start = time.perf_counter()
            for dag_id in dag_ids:
                deployment.wait_for_dag(timeout=300, dag_id=dag_id)
                deployment.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            print(f"#   {models} DAGs parsed and unpaused ({time.perf_counter() - parse_start:.0f} s)", flush=True)

            alone = []
            for i in range(alone_runs):
                run_id, posted = trigger(deployment, dag_ids[0])
                run = wait_all(deployment, {dag_ids[0]: run_id})[dag_ids[0]]
                alone.append(describe_run(deployment, dag_ids[0], run, posted))
                add_slots(deployment, alone[-1:])
                a = alone[-1]
                print(f"#   alone {i + 1}/{alone_runs} ({dag_ids[0]}): {a['state']}, POST to end {a['to_end_s']:.1f} s, "
                      f"run {a['duration_s']:.1f} s, worker-slot {a['slot_s']:.1f} s ({a['executions']} Celery "
                      f"tasks for {a['tasks_run']} tasks), event-log running {a['events_running_s']:.1f} s, "
                      f"API duration sum {a['api_duration_s']:.1f} s", flush=True)
                if a["state"] != "success":
                    raise RuntimeError(f"the lone run failed: {a['states']}\n" + deployment.all_log_tails())
            base = alone[-1]

            load_before = os.getloadavg()
            posted: dict[str, datetime] = {}
            runs: dict[str, str] = {}
            for dag_id in dag_ids:  # at once: one POST after the other
                runs[dag_id], posted[dag_id] = trigger(deployment, dag_id)
            first = min(posted.values())
            print(f"#   {models} runs triggered in {(max(posted.values()) - first).total_seconds():.2f} s", flush=True)
            finished = wait_all(deployment, runs)
            many = [describe_run(deployment, dag_id, finished[dag_id], posted[dag_id]) for dag_id in dag_ids]
            add_slots(deployment, many)
            load_end = os.getloadavg()
        finally:
            deployment.stop()

    ok = sum(r["state"] == "success" for r in many)
    wall = (max(r["end"] for r in many) - first).total_seconds()
    durations = [r["duration_s"] for r in many]
    to_end = [r["to_end_s"] for r in many]
    start_delay = max(r["start_delay_s"] for r in many)
    post_to_start = max(r["post_to_start_s"] for r in many)
    pool_wait = max(r["pool_wait_s"] for r in many)
    pools = sorted({p for r in many for p in r["pooled"]})
    slot_waits = [w for r in many for w in r["slot_waits_s"]]
    slots = [r["slot_s"] for r in many]
    events = [r["events_running_s"] for r in many]
    api_sums = [r["api_duration_s"] for r in many]
    for r in many:
        top = sorted(r["slot_per_task"].items(), key=lambda kv: -kv[1])[:3]
        print(f"#   {r['dag_id']}: {r['state']}, POST to end {r['to_end_s']:.1f} s, run {r['duration_s']:.1f} s, "
              f"start delay {r['start_delay_s']:.1f} s, pool wait {r['pool_wait_s']:.1f} s, worker-slot "
              f"{r['slot_s']:.1f} s ({r['executions']} Celery tasks; most: "
              f"{', '.join(f'{t} {s:.1f}' for t, s in top)}), event-log running {r['events_running_s']:.1f} s, "
              f"API duration sum {r['api_duration_s']:.1f} s", flush=True)
    if ok < models:
        failed = {r["dag_id"]: {t: s for t, s in r["states"].items() if s not in ("success", "skipped")}
                  for r in many if r["state"] != "success"}
        print(f"#   failed runs: {failed}", flush=True)
    started_promptly = start_delay <= START_GOAL_S and pool_wait <= START_GOAL_S
    alone_times = ", ".join(f"{a['to_end_s']:.1f} s" for a in alone)
    load = (f"load average {load_before[0]:.1f} before the {models}, {load_end[0]:.1f} after; "
            f"alone runs (POST to end) {alone_times}, the last is the baseline")
    waits = (f"each run's start_date - queued_at at most {start_delay:.1f} s (POST to start at most "
             f"{post_to_start:.1f} s); endpoint-pool tasks ({len(pools)} distinct pools) waited at most "
             f"{pool_wait:.1f} s scheduled->queued; tasks' wait for a worker slot (queued->start, first executions) median "
             f"{median(slot_waits):.1f} s, max {max(slot_waits):.1f} s")
    return [
        Figure(f"{models} models' runs triggered at once (native deployment, Celery, time scale 0)",
               f"{ok}/{models} succeeded; {wall:.1f} s wall (first POST to last end), median run "
               f"{median(durations):.1f} s, max {max(durations):.1f} s",
               f"one model alone {base['to_end_s']:.1f} s (run {base['duration_s']:.1f} s)",
               f"median run {median(durations) / base['duration_s']:.2f}x, wall {wall / base['to_end_s']:.2f}x",
               f"all succeed; each run starts within {START_GOAL_S:.0f} s, no endpoint-pool wait",
               ok == models and started_promptly,
               note=f"{settings}; {waits}; POST to end median {median(to_end):.1f} s; {load}",
               raw={"wall_s": wall, "durations_s": durations, "to_end_s": to_end, "succeeded": ok,
                    "start_delay_max_s": start_delay, "pool_wait_max_s": pool_wait,
                    "alone_s": [a["to_end_s"] for a in alone], "alone_run_s": [a["duration_s"] for a in alone]}),
        Figure(f"worker-slot seconds per run, {models} at once (Celery run time of the run's task executions)",
               f"median {median(slots):.1f} s, max {max(slots):.1f} s",
               f"one model alone {base['slot_s']:.1f} s", f"{median(slots) / base['slot_s']:.2f}x", "", None,
               note=("sum per run of Celery's own run time (worker log: 'Task execute_workload[id] succeeded in "
                     "Xs', mapped to the run by the 'Executing workload' line) of every task execution (each "
                     "resume after a deferral is one more), i.e. the time the run held a worker slot, deferrals "
                     f"not counted; median {median([r['executions'] for r in many]):.0f} executions per run (alone "
                     f"{base['executions']}); cross-checks: event log running->deferred/success intervals median "
                     f"{median(events):.1f} s (alone {base['events_running_s']:.1f} s), the API's task duration sum "
                     f"(includes deferrals) median {median(api_sums):.1f} s (alone {base['api_duration_s']:.1f} s); "
                     f"{settings}"),
               raw={"slot_s": slots, "alone_slot_s": base["slot_s"], "events_running_s": events,
                    "api_duration_s": api_sums}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--alone-runs", type=int, default=2,
                        help="runs of one model alone before the N (the last is the baseline; default %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS,
                        help="SAGEMAKER_RETRAIN_POLL_SECONDS (default %(default)s)")
    parser.add_argument("--short-wait-seconds", type=float, default=SHORT_WAIT_SECONDS,
                        help="SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS (default %(default)s, the native deployment's)")
    parser.add_argument("--json")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    report(measure(args.models, args.alone_runs, args.poll_seconds, args.short_wait_seconds), args.json)


if __name__ == "__main__":
    main()
