"""Triggerer capacity (issue 26): one process holding N deferred SageMaker training waits.

What a triggerer does for this pipeline's ``train`` task: it runs the provider's ``SageMakerTrigger``
(the trigger ``train`` defers to) as one asyncio task per deferred task instance, all in one event
loop, each polling ``DescribeTrainingJob`` every ``waiter_delay`` seconds through its own
aiobotocore client. This benchmark runs exactly that, N triggers in one child process, against
the emulator (its own process) holding N real training jobs in progress (time scale 100000: they
never finish by themselves), and measures:

- **Start**: from creating the N triggers to every one having built its client and made its first
  poll (the emulator's DescribeTrainingJob counter up by N): what a burst of N deferrals costs.
- **CPU share**: one poll interval later, the child's CPU time (user + system) over a ``--window`` of steady polling, as a
  share of one core; and its peak RSS.
- **Event latency**: the jobs are stopped one by one, spread evenly over one poll interval in a random
  order (StopTrainingJob ends a job ``Stopped`` at once, a terminal state); latency = each trigger's
  end less the moment its job was stopped. A trigger notices at its next poll, so at poll interval P
  the expected median is about P/2 and the maximum about P, unless the process falls behind.
- **SageMaker API calls**: DescribeTrainingJob per second during the window, from the emulator's
  call counter (SageMaker's default Describe* rate limits are account-wide, so this is the number to
  compare with them).

Baseline, same run, same N: Airflow's own ``DateTimeTrigger`` (a no-op wait that fires at the
moment the jobs are stopped) in the same kind of child: the triggerer machinery's own floor.

Not included: the triggerer's database work (its heartbeat and the query for new triggers every
second, independent of N) and the log shipping per trigger; the native deployment's triggerer has
both (tests/reliability/test_native_faults.py exercises it), this measures what grows with N.

    python bench/bench_triggerer.py [--counts 50,200,500] [--poll 30] [--window 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOUSING, Figure, bench_tmp, emulator_process, median, print_peak_rss, report  # noqa: E402
from _jobs import channel, create_role, image, training_request  # noqa: E402

BUCKET = "bench-triggerer"
HOLD_SCALE = 100000  # emulated seconds per real second: a job stays in progress until stopped
ALGORITHM_HP = {"predictor_type": "regressor", "feature_dim": "12", "mini_batch_size": "50", "epochs": "1"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ----------------------------------------------------------------------------- the child (one "triggerer")


async def _hold(kind: str, jobs: list[str], poll: float, window: float, stop_file: Path) -> dict:
    from datetime import UTC, datetime, timedelta

    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    ended: dict[str, float] = {}
    # The no-op waits fire just after the window ends (their latency is measured from that moment); the
    # SageMaker ones are stopped by the parent when the window ends.
    fire_at = time.time() + poll + window + 1.0

    async def one(name: str) -> None:
        if kind == "sagemaker":
            trigger = SageMakerTrigger(job_name=name, job_type="Training", waiter_delay=int(poll),
                                       waiter_max_attempts=10_000, aws_conn_id=None)
        else:
            trigger = DateTimeTrigger(moment=datetime.fromtimestamp(fire_at, UTC) + timedelta(seconds=0))
        try:
            async for _event in trigger.run():
                break
        except Exception:  # noqa: BLE001 - a Stopped job ends the provider's waiter with an error: still its end
            pass
        ended[name] = time.time()

    loop = asyncio.get_running_loop()
    calls = (lambda: loop.run_in_executor(None, _describe_calls, os.environ["AWS_ENDPOINT_URL"])) \
        if kind == "sagemaker" else (lambda: asyncio.sleep(0, 0))
    first = await calls()
    start = time.monotonic()
    tasks = [asyncio.create_task(one(name)) for name in jobs]
    # Started: every trigger has built its client and made its first poll (N more Describe calls).
    while kind == "sagemaker" and await calls() - first < len(jobs):
        await asyncio.sleep(0.5)
    started_s = time.monotonic() - start
    await asyncio.sleep(poll)  # one more poll interval: the polls of steady state
    calls0, cpu0, wall0 = await calls(), _cpu(), time.monotonic()
    await asyncio.sleep(window)
    calls1, cpu1, wall1 = await calls(), _cpu(), time.monotonic()
    stop_file.write_text("stop")  # the parent stops the jobs now and writes their stop times
    await asyncio.wait(tasks, timeout=poll * 3 + 120)
    return {"cpu_share": (cpu1 - cpu0) / (wall1 - wall0), "ended": ended, "window": window,
            "started_s": started_s, "fire_at": fire_at, "calls_per_s": ((calls1 or 0) - (calls0 or 0)) / (wall1 - wall0)}


def child(args) -> None:
    jobs = json.loads(Path(args.jobs).read_text())
    result = asyncio.run(_hold(args.kind, jobs, args.poll, args.window, Path(args.stop_file)))
    Path(args.out).write_text(json.dumps(result))
    print_peak_rss()


# ----------------------------------------------------------------------------- the parent


def _make_jobs(emu, sm, n: int, tag: str) -> list[str]:
    request_image = image("linear-learner", emu.env["AWS_DEFAULT_REGION"])
    names = []
    for i in range(n):
        name = f"trig-{tag}-{i:04d}"
        sm.create_training_job(**training_request(
            name, request_image, ALGORITHM_HP, [channel("train", f"s3://{BUCKET}/train/")],
            f"s3://{BUCKET}/out/"))
        names.append(name)
    return names


def _describe_calls(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_offline_aws/calls") as resp:  # noqa: S310 - the local emulator
        return int(json.loads(resp.read()).get("DescribeTrainingJob", 0))


def _one(emu, sm, kind: str, n: int, poll: float, window: float, tmp: Path) -> dict:
    tag = f"{kind[:2]}{n}-{int(time.time())}"
    jobs = _make_jobs(emu, sm, n, tag) if kind == "sagemaker" else [f"noop-{tag}-{i}" for i in range(n)]
    jobs_file, stop_file, out = tmp / f"{tag}.jobs.json", tmp / f"{tag}.stop", tmp / f"{tag}.out.json"
    jobs_file.write_text(json.dumps(jobs))
    stop_file.unlink(missing_ok=True)
    # WARNING: the triggers' per-poll INFO lines would measure log formatting (both kinds log each wait).
    env = {**os.environ, **emu.env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    child_log = (tmp / f"{tag}.log").open("w")
    import subprocess

    proc = subprocess.Popen([sys.executable, __file__, "--child", "--kind", kind, "--jobs", str(jobs_file),
                             "--poll", str(poll), "--window", str(window), "--stop-file", str(stop_file),
                             "--out", str(out)], env=env, stdout=child_log, stderr=subprocess.STDOUT,
                            text=True, cwd=str(Path(__file__).resolve().parent.parent))
    deadline = time.monotonic() + 2 * poll + window + 600
    while not stop_file.exists():
        if (proc.poll() is not None and not stop_file.exists()) or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the {kind} child did not reach its stop: {child_log.name}")
        time.sleep(0.2)
    stopped_at: dict[str, float] = {}
    stop_start = time.time()
    if kind == "sagemaker":
        # Spread over one poll interval: a job ends at any moment of its trigger's poll cycle (stopping
        # all at once would measure only the phase the burst of deferrals happened to give every trigger).
        spacing = poll / len(jobs)
        for i, name in enumerate(random.Random(0).sample(jobs, len(jobs))):
            time.sleep(max(0.0, stop_start + i * spacing - time.time()))
            sm.stop_training_job(TrainingJobName=name)
            stopped_at[name] = time.time()
    proc.wait(timeout=poll * 3 + 240)
    child_log.close()
    stdout = Path(child_log.name).read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} child failed:\n{stdout[-3000:]}")
    result = json.loads(out.read_text())
    if kind != "sagemaker":
        stopped_at = dict.fromkeys(jobs, result["fire_at"])
    latencies = [max(0.0, result["ended"][j] - stopped_at[j]) for j in jobs if j in result["ended"]]
    peak = next((int(line.split()[1]) for line in stdout.splitlines() if line.startswith("PEAK_RSS")), 0)
    return {"cpu_share": result["cpu_share"], "ended": len(latencies), "n": n,
            "p50": median(latencies) if latencies else float("nan"),
            "p95": _percentile(latencies, 0.95) if latencies else float("nan"),
            "max": max(latencies) if latencies else float("nan"),
            "rss_mb": peak / 1e6, "calls_per_s": result["calls_per_s"], "started_s": result["started_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="50,200,500")
    parser.add_argument("--poll", type=float, default=30.0, help="waiter_delay (the DAG's POLL_SECONDS default: 30)")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="sagemaker", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    counts = [int(c) for c in args.counts.split(",")]
    tmp = bench_tmp() / "triggerer"
    tmp.mkdir(parents=True, exist_ok=True)
    figures = []
    settings = (f"poll {args.poll:g} s, CPU over a {args.window:g} s window of steady polling, emulator time scale "
                f"{HOLD_SCALE} (jobs held in progress until stopped), {os.cpu_count()} cores")
    with emulator_process(time_scale=HOLD_SCALE) as emu:
        sm, s3 = emu.client("sagemaker"), emu.client("s3")
        create_role(emu)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="train/housing.csv", Body=HOUSING.read_bytes())
        for n in counts:
            ours = _one(emu, sm, "sagemaker", n, args.poll, args.window, tmp)
            base = _one(emu, sm, "noop", n, args.poll, args.window, tmp)
            print(f"# N={n}: sagemaker {ours}\n# N={n}: no-op {base}", flush=True)
            figures.append(Figure(
                f"triggerer, {n} deferred SageMaker training waits in one process",
                f"all started (client built, first poll) in {ours['started_s']:.1f} s; then "
                f"CPU {ours['cpu_share'] * 100:.1f}% of a core, event latency p50 {ours['p50']:.1f} s / p95 "
                f"{ours['p95']:.1f} s / max {ours['max']:.1f} s ({ours['ended']}/{n} ended), peak RSS "
                f"{ours['rss_mb']:.0f} MB, {ours['calls_per_s']:.1f} DescribeTrainingJob/s",
                f"{n} DateTimeTrigger waits: CPU {base['cpu_share'] * 100:.1f}%, latency p50 {base['p50']:.2f} s, "
                f"RSS {base['rss_mb']:.0f} MB",
                f"+{(ours['cpu_share'] - base['cpu_share']) * 100:.1f} points of a core",
                "", None, settings,
                raw={"ours": ours, "baseline": base, "poll": args.poll, "window": args.window}))
    report(figures, args.json)


if __name__ == "__main__":
    main()
