"""Worker-slot seconds and AWS API calls per run (issue 26), with jobs that take realistic time, on the
native Celery deployment, beside the same-shape no-op DAG.

What: for the retraining DAG (``{"mode": "ephemeral"}``: it deploys its own endpoint and deletes it) and
the no-op DAG of the same graph (``bench_orchestration.noop_dag_source``: same task ids, dependencies,
trigger rules, setup/teardown; every task an empty ``@task``; its branches take the real run's), on one
native deployment (``tests/native_deployment.py``: PostgreSQL, Redis, CeleryExecutor, scheduler,
dag-processor, triggerer, api-server, one Celery worker, the emulator), triggered through the REST API,
alternating, ``--runs`` each:

1. worker-slot seconds per run: the sum of Celery's own run time of the run's task executions (the
   worker's log, ``bench_many_models.celery_slot_seconds``): each first try and each resume after a
   deferral is one Celery task; a deferral frees the slot and is not counted;
2. AWS API calls per run, per task: every request the emulator receives is recorded with its arrival
   time, operation, resource name and User-Agent (``_recording_emulator.py``, a WSGI wrapper in the
   emulator's process). A call from the triggerer is told by its client (aiobotocore's User-Agent; the
   worker's task processes use boto3) and belongs to the task deferred at that moment; a worker call
   belongs to the task process running at that moment. Both windows come from Airflow's event log
   (``running`` -> ``deferred``/``success``/..., ``deferred`` -> the next ``running``). Calls in two
   tasks' windows at once are shown under both names (``a/b``); the asset watcher's SQS polls (the
   triggerer's, in every run) are their own row;
3. the time the task processes waited for AWS's answers: each recorded request's service time in the
   emulator (arrival to the response's last chunk sent, ``_recording_emulator.py``; a lower bound of the
   caller's wait), summed per run over the calls of task processes (the triggerer's polls hold no slot),
   and per task;
4. the task processes' requests to Airflow's API server per run, by kind (XCom reads and writes, the
   extra links Airflow stores as XComs at the end of every execution, connections, Variables, the task
   instance's start, heartbeats, state), with the API server's own time for them: its access log, the
   ``/execution/`` requests that finished inside the run (runs never overlap here);
5. no task polls faster than its poll interval: the Describe* calls of one resource by one poller (one
   task execution, or one deferral's trigger), consecutive intervals after the poller's first (the first
   is allowed: a task reads a job again right after creating or re-attaching to it; shown apart); the
   smallest per task against ``SAGEMAKER_RETRAIN_POLL_SECONDS`` (with 2 % for request timing jitter).

Jobs take realistic time: the emulator's time scale (``--time-scale``, default 15) stretches its emulated
phases (``include/offline_aws/sagemaker``): training STARTING 2 s + DOWNLOADING 2 s + UPLOADING 1 s = 75 s,
a batch transform LAUNCHING 3 s + UPLOADING 1 s = 60 s, an endpoint's creation 5 s = 75 s and deletion
2 s = 30 s, each plus the real work. ``SAGEMAKER_RETRAIN_POLL_SECONDS`` (``--poll-seconds``, default 10)
is every operator's poll interval; ``SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS=0`` (the deployment's default:
every wait is deferred; a short watch on the worker only holds a slot on AWS).

Where a slot's time goes: each execution in three phases (``Phases``), from the worker's log and the task's
log: start (the worker's ``Executing workload`` to the task's first log line), task (its first to its last
line) and exit (the last line to the supervisor's ``Workload finished``: normally a few tens of milliseconds,
the final state sent and the process reaped; about 1 s when the supervisor misses its task process's exit and
sleeps out ``[workers] min_heartbeat_interval``, docs/upstream.md §7). A row gives each phase's sum per run
for both DAGs; the goal row's note gives the exit waits and how many executions waited 0.5 s or more.

Warm-up: a fresh deployment's first run pays one-off costs (imports, caches), so one run of each DAG at
time scale 0 comes first and is not counted.

Baseline: the no-op DAG's slot seconds from the same runs. Goal (issue 26): at most 1.25x.

    python bench/bench_slot_seconds.py [--runs 2] [--time-scale 15] [--poll-seconds 10] [--json out.json]
                                       [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT, PYTHON, Figure, median, report  # noqa: E402
from bench_many_models import TERMINAL_EVENTS, _stamp, celery_slot_seconds, run_events  # noqa: E402
from bench_orchestration import BUCKET, DAG_ID, NOOP_DAG_ID, _native_run, noop_dag_source, task_graph  # noqa: E402

from offline_aws.airflow_run import airflow_env  # noqa: E402

GOAL = 1.25
TIME_SCALE = 15.0
POLL_SECONDS = 10.0
POLL_JITTER = 0.98  # a poll may arrive up to 2 % early: the previous request's latency is not the next's
CONF = {"mode": "ephemeral"}
WATCHER = "asset watcher (SQS, triggerer)"
NO_WINDOW = "(no task window)"


EXECUTING_LOG = re.compile(r"^(\S+) .*Executing workload in Celery: .*?log_path='([^']+)'.*?"
                           r"ti=TaskInstanceDTO\(id=UUID\('([^']+)'\), task_id='[^']+', dag_id='([^']+)', "
                           r"run_id='([^']+)'")
WORKLOAD_FINISHED = re.compile(r"^(\S+) .*Workload finished .*workload_id=([0-9a-f-]{36})")
MISSED_EXIT_S = 0.5
API_ACCESS = re.compile(r"^(\S+) .*\[http\.access\].* duration_us=(\d+) .*method=(\w+) path=/execution/(\S+) ")
UUID = re.compile(r"^[0-9a-f-]{36}$")


def _log_stamps(path: Path) -> list[float]:
    """The timestamps of a task log's JSON lines (empty when the log is missing)."""
    stamps = []
    try:
        entries = path.read_text(errors="replace").splitlines()
    except OSError:
        return stamps  # counted as not found (the note says how many were)
    for entry in entries:
        try:
            stamps.append(_stamp(json.loads(entry)["timestamp"]).timestamp())
        except (ValueError, KeyError, TypeError):
            continue
    return stamps


class Phases(NamedTuple):
    """One task execution's seconds: ``start``, from the worker's ``Executing workload`` to the task's first log
    line (the supervisor forks and starts the task process); ``task``, its first to its last log line (the DAG
    file's parse, templates and the XComs they take, the task's own code and its calls); ``exit``, the last
    line to the supervisor's ``Workload finished`` (final state sent, process reaped; a missed exit ~1 s)."""

    start: float
    task: float
    exit: float


def execution_phases(worker_log: Path, task_logs: Path) -> dict[tuple[str, str], list[Phases]]:
    """(dag_id, run_id) -> each task execution's phases, from the worker's log and the task logs."""
    started: dict[str, tuple[float, str, str, str]] = {}
    stamps: dict[str, list[float]] = {}  # a resumed task's executions share one log: read it once
    phases: dict[tuple[str, str], list[Phases]] = defaultdict(list)
    for line in worker_log.read_text(errors="replace").splitlines():
        if match := EXECUTING_LOG.search(line):
            stamp, log_path, ti_id, dag_id, run_id = match.groups()
            started[ti_id] = (_stamp(stamp).timestamp(), log_path, dag_id, run_id)
        elif (match := WORKLOAD_FINISHED.search(line)) and match.group(2) in started:
            begin, log_path, dag_id, run_id = started.pop(match.group(2))
            end = _stamp(match.group(1)).timestamp()
            if log_path not in stamps:
                stamps[log_path] = _log_stamps(task_logs / log_path)
            inside = [when for when in stamps[log_path] if begin <= when <= end]
            if inside:
                phases[(dag_id, run_id)].append(Phases(min(inside) - begin, max(inside) - min(inside),
                                                       end - max(inside)))
    return phases


def api_request_kind(method: str, path: str) -> str:
    """``GET xcoms``, ``POST xcoms (extra links)``, ``PUT task-instances/heartbeat``, ``GET connections``..."""
    parts = path.split("/")
    if parts[0] == "xcoms":
        return f"{method} xcoms" + (" (extra links)" if len(parts) > 4 and parts[4].startswith("_link_") else "")
    if parts[0] == "task-instances":
        rest = [x for x in parts[1:] if x and not UUID.match(x)]
        return f"{method} task-instances" + (f"/{rest[0]}" if rest else "")
    return f"{method} {parts[0]}"


def api_requests(access_log: Path, run_windows: dict[tuple[str, str], tuple[float, float]]
                 ) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(dag_id, run_id) -> kind -> the API server's seconds for each ``/execution/`` request that finished in the run's window."""
    found: dict[tuple[str, str], dict[str, list[float]]] = {run: defaultdict(list) for run in run_windows}
    for line in access_log.read_text(errors="replace").splitlines():
        if not (match := API_ACCESS.search(line)):
            continue
        when = _stamp(match.group(1)).timestamp()
        for run, (start, end) in run_windows.items():
            if start <= when <= end:
                found[run][api_request_kind(match.group(3), match.group(4))].append(int(match.group(2)) / 1e6)
    return {run: dict(kinds) for run, kinds in found.items()}  # plain dicts: the JSON report copies them


def describe_requests(runs: list[dict[str, list[float]]]) -> tuple[float, float, str]:
    """Mean per run: requests, the API server's seconds, and the kinds (count and seconds), most first."""
    count, seconds = Counter(), Counter()
    for run in runs:
        for kind, durations in run.items():
            count[kind] += len(durations) / len(runs)
            seconds[kind] += sum(durations) / len(runs)
    return (sum(count.values()), sum(seconds.values()),
            ", ".join(f"{kind} {n:.0f} ({seconds[kind]:.2f} s)" for kind, n in count.most_common()))


def describe_phases(runs: list[list[Phases]]) -> str:
    """Median per run of each phase's sum (see ``Phases``)."""
    return ", ".join(f"{name} {median(sum(getattr(p, name) for p in run) for run in runs):.1f} s"
                     for name in Phases._fields)


def describe_waits(waits: list[list[float]], executions: list[int]) -> str:
    """Median per run of the summed exit waits, the executions that waited MISSED_EXIT_S or more, and how many
    of the executions' waits were found in the logs (fewer: the log formats changed; the figures undercount)."""
    sums = [sum(w) for w in waits] or [0.0]
    missed = sum(1 for w in waits for x in w if x >= MISSED_EXIT_S)
    found, total = sum(len(w) for w in waits), sum(executions)
    return (f"{median(sums):.1f} s per run (median), {missed} of {found} executions >= {MISSED_EXIT_S:g} s"
            + ("" if found == total else f" (waits found for only {found} of {total} executions)"))


def phases(scale: float) -> str:
    """The emulated phases' seconds at this time scale (the emulator's own constants)."""
    from offline_aws.sagemaker import hosting, training, transform

    train = training.STARTING_SECONDS + training.DOWNLOADING_SECONDS + training.UPLOADING_SECONDS
    batch = transform.LAUNCHING_SECONDS + transform.UPLOADING_SECONDS
    return (f"emulated phases: training {train * scale:g} s, batch transform {batch * scale:g} s, endpoint "
            f"creation {hosting.CREATING_SECONDS * scale:g} s, deletion {hosting.DELETING_SECONDS * scale:g} s")


def _task_label(task_id: str, map_index: int | None) -> str:
    return task_id if map_index in (None, -1) else f"{task_id}[{map_index}]"


def windows(events: list[dict], task_instances: list[dict] = ()) -> list[tuple[str, str, float, float]]:
    """(task, kind, start, end): each task process's run ('worker') and each deferral ('triggerer').

    A task that starts on the triggerer (``start_from_trigger``) has no event before its resume: the scheduler
    deferred it, setting its ``start_date``, which a resume keeps. Its try's first window, from that
    ``start_date`` to its first ``running`` event, is the triggerer's.
    """
    out, open_ = [], {}
    first_running: dict[tuple, float] = {}
    for event in events:
        if event["event"] == "running":
            key = (event.get("task_id"), event.get("map_index"), event.get("try_number"))
            first_running.setdefault(key, _stamp(event["when"]).timestamp())
    for ti in task_instances:
        key = (ti["task_id"], ti.get("map_index"), ti.get("try_number"))
        if ti.get("start_date") and key in first_running:
            started = _stamp(ti["start_date"]).timestamp()
            if started < first_running[key] - 0.5:  # a run on the worker sets start_date at its `running`
                out.append((_task_label(key[0], key[1]), "triggerer", started, first_running[key]))
    for event in events:
        key = (event.get("task_id"), event.get("map_index"), event.get("try_number"))
        task = _task_label(key[0], key[1])
        when = _stamp(event["when"]).timestamp()
        kind, since = open_.pop(key, (None, None))
        if event["event"] == "running":
            if kind == "triggerer":
                out.append((task, kind, since, when))
            open_[key] = ("worker", when)
        elif event["event"] in TERMINAL_EVENTS and kind == "worker":
            out.append((task, kind, since, when))
            if event["event"] == "deferred":
                open_[key] = ("triggerer", when)
    return out


def attribute(calls: list[dict], spans: list[tuple[str, str, float, float]]) -> list[tuple[str, float, dict]]:
    """Each call with its owner ('task', 'task (triggerer)', ...) and the start of the owner's window."""
    out = []
    for call in calls:
        kind = "triggerer" if call["ua"].startswith("aiobotocore") else "worker"
        if call["service"] == "sqs":
            out.append((WATCHER, 0.0, call))
            continue
        hits = [(task, start) for task, k, start, end in spans if k == kind and start <= call["t"] <= end]
        owner = "/".join(sorted({task for task, _ in hits})) or NO_WINDOW
        out.append((owner + (" (triggerer)" if kind == "triggerer" else ""), min((s for _, s in hits), default=0.0),
                    call))
    return out


def answer_seconds(attributed) -> Counter:
    """Per task, the seconds its task processes waited for AWS's answers: the emulator's service time of each
    call made in a task process's window (the triggerer's polls and the asset watcher's hold no worker slot)."""
    waited: Counter = Counter()
    for owner, _, call in attributed:
        if owner != WATCHER and not owner.endswith("(triggerer)") and owner != NO_WINDOW:
            waited[owner] += call.get("d", 0.0)
    return waited


def per_owner(attributed, runs: int) -> dict[str, dict[str, float]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for owner, _, call in sorted(attributed, key=lambda a: a[2]["t"]):
        counts[owner][call["action"]] += 1
    return {owner: {action: n / runs for action, n in c.items()} for owner, c in counts.items()}


def min_poll_gaps(attributed) -> tuple[dict[str, float], dict[str, float]]:
    """Per owner, over the Describe* calls of one resource by one poller (a task execution, a deferral):
    the smallest interval after the poller's first interval, and the smallest first interval (allowed: a
    task may read a job again right after creating or re-attaching to it)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for owner, window, call in attributed:
        if call["action"].startswith("Describe"):
            groups[(owner, window, call["action"], call["resource"])].append(call["t"])
    later: dict[str, float] = {}
    first: dict[str, float] = {}
    for (owner, *_), stamps in groups.items():
        stamps.sort()
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        for found, values in ((first, gaps[:1]), (later, gaps[1:])):
            if values:
                found[owner] = min(found.get(owner, values[0]), *values)
    return later, first


def describe_counts(counts: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{owner}: " + ", ".join(f"{action} {n:g}" for action, n in actions.items())
                     for owner, actions in counts.items())


def measure(runs: int, time_scale: float, poll_seconds: float, keep_logs: Path | None = None) -> list[Figure]:
    sys.path.insert(0, str(PROJECT / "tests"))
    from native_deployment import NativeDeployment

    load_start = os.getloadavg()
    settings = (f"emulator time scale {time_scale:g} ({phases(time_scale)}, each plus its real work), SAGEMAKER_RETRAIN_POLL_SECONDS={poll_seconds:g}, "
                f"SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS=0 (every wait deferred), ephemeral mode; {runs} run(s) of "
                "each DAG after one uncounted warm-up run of each at time scale 0; native deployment, one Celery "
                f"worker; {os.cpu_count()} cores")
    print(f"#   {settings}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-slots-") as tmp:
        tmp = Path(tmp)
        dags, requests = tmp / "dags", tmp / "requests.jsonl"
        dags.mkdir()
        (dags / "sagemaker_retrain.py").symlink_to(PROJECT / "dags" / "sagemaker_retrain.py")
        graph = task_graph(airflow_env(PROJECT, tmp / "home-graph", {}, BUCKET))
        (dags / "sagemaker_retrain_noop.py").write_text(noop_dag_source(graph, None))
        extra = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "SAGEMAKER_RETRAIN_POLL_SECONDS": f"{poll_seconds:g}",
                 "SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS": "0"}
        recording = [PYTHON, str(Path(__file__).with_name("_recording_emulator.py")), str(requests)]
        started = time.perf_counter()
        deployment = NativeDeployment(tmp, extra_env=extra, emulator_command=recording).start()
        try:
            print(f"#   deployment up in {time.perf_counter() - started:.0f} s; load average {load_start[0]:.1f}",
                  flush=True)
            deployment.set_time_scale(0)
            for dag_id in (DAG_ID, NOOP_DAG_ID):
                deployment.wait_for_dag(timeout=300, dag_id=dag_id)
                deployment.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            done: dict[str, list[str]] = {"real": [], "noop": []}
            for i in range(runs + 1):  # the first pair warms up at time scale 0
                if i == 1:
                    deployment.set_time_scale(time_scale)
                run_id, seconds, states = _native_run(deployment, DAG_ID, CONF, poll=1)
                branches = {n["task_id"]: next(d["task_id"] for d in graph if n["task_id"] in d["upstream"]
                                               and states.get(d["task_id"]) == "success")
                            for n in graph if n["branch"]}
                noop_id, noop_seconds, _ = _native_run(deployment, NOOP_DAG_ID, {"branches": branches}, poll=1)
                label = "warm-up (time scale 0, not counted)" if i == 0 else f"run {i}/{runs}"
                print(f"#   {label}: real {seconds:.1f} s, no-op {noop_seconds:.1f} s (POST to end)", flush=True)
                if i:
                    done["real"].append(run_id)
                    done["noop"].append(noop_id)
            time.sleep(3)  # the worker logs a Celery task's end just after the task's own state change
            slots = celery_slot_seconds(deployment.log_dir / "airflow-worker.log")
            by_run = execution_phases(deployment.log_dir / "airflow-worker.log", deployment.home / "logs")
            calls = [json.loads(line) for line in requests.read_text().splitlines()]
            found, run_windows = {}, {}
            for label, dag_id in (("real", DAG_ID), ("noop", NOOP_DAG_ID)):
                attributed, seconds, executions, per_task = [], [], [], Counter()
                aws, aws_per_task = [], Counter()
                for run_id in done[label]:
                    run = deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
                    start, end = _stamp(run["start_date"]).timestamp(), _stamp(run["end_date"]).timestamp()
                    tis = deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
                    spans = windows(run_events(deployment, dag_id, run_id), tis["task_instances"])
                    run_windows[(dag_id, run_id)] = (start, end)
                    in_run = attribute([c for c in calls if start <= c["t"] <= end], spans)
                    attributed += in_run
                    waited = answer_seconds(in_run)
                    aws.append(sum(waited.values()))
                    aws_per_task.update(waited)
                    entry = slots.get((dag_id, run_id), {"seconds": 0.0, "executions": 0, "per_task": {}})
                    seconds.append(entry["seconds"])
                    executions.append(entry["executions"])
                    per_task.update(entry["per_task"])
                found[label] = {"slot_s": seconds, "executions": executions, "per_task_slot_s": per_task,
                                "aws_s": aws, "aws_per_task_s": aws_per_task,
                                "calls": per_owner(attributed, runs), "gaps": min_poll_gaps(attributed),
                                "phases": [by_run.get((dag_id, run_id), []) for run_id in done[label]]}
            requests_by_run = api_requests(deployment.log_dir / "airflow-apiserver.log", run_windows)
            for label in ("real", "noop"):
                dag_id = DAG_ID if label == "real" else NOOP_DAG_ID
                found[label]["api"] = [requests_by_run[(dag_id, run_id)] for run_id in done[label]]
            if not any(kinds for kinds in requests_by_run.values()):
                print("#   warning: no line of the API server's access log matched API_ACCESS (has its format "
                      "changed?): its row counts nothing", flush=True)
        finally:
            deployment.stop()
            if keep_logs:
                shutil.copytree(deployment.home / "logs", keep_logs / "task-logs", dirs_exist_ok=True)
                shutil.copytree(deployment.log_dir, keep_logs / "process-logs", dirs_exist_ok=True)
    load_end = os.getloadavg()
    return figures(found, runs, time_scale, poll_seconds, settings, (load_start[0], load_end[0]))


def exit_waits(found: dict) -> list[list[float]]:
    """Per run, each execution's exit phase: the supervisor's wait after the task's last log line."""
    return [[phase.exit for phase in run] for run in found["phases"]]


def missed_free(found: dict) -> float:
    """Median per run of the slot seconds less the executions' missed-exit waits."""
    return median(seconds - sum(w for w in waits if w >= MISSED_EXIT_S)
                  for seconds, waits in zip(found["slot_s"], exit_waits(found), strict=True))


def figures(found: dict, runs: int, time_scale: float, poll_seconds: float, settings: str,
            loads: tuple[float, float]) -> list[Figure]:
    real, noop = found["real"], found["noop"]
    ours, base = median(real["slot_s"]), median(noop["slot_s"])
    ratio = ours / base if base else float("inf")
    top = ", ".join(f"{task} {s / runs:.1f}" for task, s in real["per_task_slot_s"].most_common(6))
    noop_top = ", ".join(f"{task} {s / runs:.1f}" for task, s in noop["per_task_slot_s"].most_common(3))
    load = f"load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end"
    task_calls = {o: c for o, c in real["calls"].items() if "(triggerer)" not in o and o != WATCHER}
    trigger_calls = {o: c for o, c in real["calls"].items() if "(triggerer)" in o}
    total = sum(n for c in task_calls.values() for n in c.values())
    polled = sum(n for c in trigger_calls.values() for n in c.values())
    watcher = sum(real["calls"].get(WATCHER, {}).values())
    noop_calls = sum(n for o, c in noop["calls"].items() if o != WATCHER for n in c.values())
    later, first = real["gaps"]
    polls_ok = all(g >= poll_seconds * POLL_JITTER for g in later.values())
    shown = ", ".join(f"{o} {g:.1f} s" for o, g in sorted(later.items(), key=lambda kv: kv[1])) or "none"
    firsts = ", ".join(f"{o} {g:.1f} s" for o, g in sorted(first.items(), key=lambda kv: kv[1])) or "none"
    aws = median(real["aws_s"])
    allowance = (GOAL - 1) * base
    aws_top = ", ".join(f"{task} {s / runs:.2f}" for task, s in real["aws_per_task_s"].most_common(6))
    real_task = median(sum(p.task for p in run) for run in real["phases"]) if real["phases"] else 0.0
    noop_task = median(sum(p.task for p in run) for run in noop["phases"]) if noop["phases"] else 0.0
    task_ratio = real_task / noop_task if noop_task else 0.0
    api_n, api_s, api_kinds = describe_requests(real["api"])
    noop_api_n, noop_api_s, noop_api_kinds = describe_requests(noop["api"])
    return [
        Figure(f"worker-slot seconds per run, jobs of realistic length (native Celery, time scale {time_scale:g})", f"{ours:.1f} s", f"{base:.1f} s no-op DAG, same graph", f"{ratio:.2f}x",
               f"<= {GOAL}x", ratio <= GOAL,
               note=(f"median of {runs}; sum of Celery's run time of each task execution (worker log), deferrals not "
                     f"counted; executions per run real {median(real['executions']):.0f}, no-op "
                     f"{median(noop['executions']):.0f}; the real run's largest per run: {top}; the no-op's: {noop_top}; "
                     f"the supervisor's wait after a task's last log line (a missed exit costs about 1 s, "
                     f"docs/upstream.md §7): real {describe_waits(exit_waits(real), real['executions'])}, no-op "
                     f"{describe_waits(exit_waits(noop), noop['executions'])}; the goal lets "
                     f"the real run's slot time exceed the no-op's by {GOAL - 1:.2f} x = {allowance:.1f} s; its task "
                     f"processes' waits for AWS's answers took {aws:.1f} s (median; the rows below say where the rest "
                     f"goes); {settings}; {load}"),
               raw={"real_slot_s": real["slot_s"], "noop_slot_s": noop["slot_s"],
                    "real_executions": real["executions"], "noop_executions": noop["executions"],
                    "real_exit_waits_s": exit_waits(real), "noop_exit_waits_s": exit_waits(noop),
                    "real_per_task_slot_s": {t: s / runs for t, s in real["per_task_slot_s"].items()},
                    "noop_per_task_slot_s": {t: s / runs for t, s in noop["per_task_slot_s"].items()}}),
        Figure("worker-slot seconds per run, without the supervisor's missed exits (informational)",
               f"{missed_free(real):.1f} s", f"{missed_free(noop):.1f} s no-op DAG, same graph",
               f"{missed_free(real) / missed_free(noop):.2f}x" if missed_free(noop) else "-", "", None,
               note=(f"as the row above, less each execution's wait of {MISSED_EXIT_S:g} s or more between the task's "
                     f"last log line and the supervisor's 'Workload finished' (a missed exit, docs/upstream.md §7: "
                     f"the Task SDK's, on either DAG at random); median of {runs}; {settings}")),
        Figure("worker-slot seconds per run spent waiting for AWS's answers (informational)", f"{aws:.1f} s",
               f"{ours:.1f} s worker-slot seconds of the same runs", f"{aws / ours:.0%} of them" if ours else "-", "",
               None,
               note=(f"median of {runs}; per run, the emulator's service time (a request's arrival to the server taking "
                     f"its response's last chunk: a lower bound of the task's wait) summed over the calls made in a task process's window "
                     f"(the triggerer's polls hold no worker slot); largest per task per run: {aws_top}; the no-op "
                     f"DAG makes no calls; {settings}"),
               raw={"real_aws_s": real["aws_s"], "real_aws_per_task_s": {t: s / runs for t, s in
                                                                         real["aws_per_task_s"].items()}}),
        Figure("where a run's worker-slot seconds go, per execution phase (informational)",
               f"{describe_phases(real['phases'])}", f"no-op DAG: {describe_phases(noop['phases'])}",
               f"task {task_ratio:.1f}x" if task_ratio else "-", "", None,
               note=(f"median of {runs} of each phase's sum per run; start: the worker's 'Executing workload' to the "
                     f"task's first log line (the supervisor forks and starts the task process); task: its first to "
                     f"last log line (the DAG file's parse, templates and the XComs they take, the task's own code "
                     f"and its calls to AWS, whose answers took {aws:.1f} s of it: the row above); exit: the last line "
                     f"to the supervisor's 'Workload finished' (a missed exit about 1 s, docs/upstream.md §7); "
                     f"Celery's run time adds its own dispatch around them; executions per run real "
                     f"{median(real['executions']):.0f}, no-op {median(noop['executions']):.0f}; {settings}"),
               raw={"real_phases_s": [[list(p) for p in run] for run in real["phases"]],
                    "noop_phases_s": [[list(p) for p in run] for run in noop["phases"]]}),
        Figure("task processes' requests to Airflow's API server per run (informational)",
               f"{api_n:.0f} requests, {api_s:.2f} s of the API server's time",
               f"no-op DAG: {noop_api_n:.0f} requests, {noop_api_s:.2f} s", f"{api_n / noop_api_n:.2f}x requests"
               if noop_api_n else "-", "", None,
               note=(f"mean of {runs}; the API server's access log, '/execution/' requests that finished inside the "
                     f"run (what the Task SDK asks for: a task's start, its templates' XComs, its pushes, the extra "
                     f"links Airflow renders and stores as XComs at the end of every execution, connections and "
                     f"Variables, heartbeats, its state); the server's own time, the caller waits longer; real: "
                     f"{api_kinds}; no-op: {noop_api_kinds}; {settings}"),
               raw={"real_api": real["api"], "noop_api": noop["api"]}),
        Figure("AWS API calls per run from the worker's task processes, per task", f"{total:g} calls",
               f"{noop_calls:g} no-op DAG", "-", "", None,
               note=f"{describe_counts(task_calls)}; mean of {runs} run(s); {settings}",
               raw={"real": task_calls, "noop_total": noop_calls}),
        Figure("AWS API calls per run from the triggerer (deferred waits), per task", f"{polled:g} calls",
               f"{poll_seconds:g} s poll interval", "-", "", None,
               note=(f"{describe_counts(trigger_calls)}; besides, the asset watcher's SQS polls during a real run: "
                     f"{watcher:g} (not the run's); mean of {runs} run(s); {settings}"),
               raw={"real": trigger_calls, "watcher": watcher}),
        Figure("no task polls faster than its poll interval (Describe* calls of one resource by one poller)",
               f"min {min(later.values()):.1f} s" if later else "no third poll", f"{poll_seconds:g} s",
               f"{min(later.values()) / poll_seconds:.2f}x" if later else "-",
               f">= {poll_seconds:g} s after each poller's first interval (2 % jitter allowed)", polls_ok,
               note=(f"smallest interval after the first, per task: {shown}; first intervals (allowed): {firsts}; "
                     f"a poller is one task execution or one deferral (the triggerer); {settings}"),
               raw={"min_gap_s": later, "min_first_gap_s": first, "poll_seconds": poll_seconds}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="counted runs of each DAG (default %(default)s)")
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE,
                        help="the emulator's time scale for the counted runs (default %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS,
                        help="SAGEMAKER_RETRAIN_POLL_SECONDS (default %(default)s)")
    parser.add_argument("--json")
    parser.add_argument("--keep-logs", type=Path, help="copy the deployment's task and process logs here")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    report(measure(args.runs, args.time_scale, args.poll_seconds, args.keep_logs), args.json)


if __name__ == "__main__":
    main()
