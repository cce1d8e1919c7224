"""Run the ``airflow`` CLI with a per-task profile: ``python _profiled_airflow.py OUT.json dags test ...``.

Under ``airflow dags test`` every task runs in this one process, so wrapping the loop's per-task
call (``airflow.sdk.definitions.dag._run_task``) gives each task's own cost: wall and CPU seconds,
time in garbage collection (and how many full collections), boto3/botocore clients made and the
CPU they took, and the modules the task imported first. Written as JSON to OUT.json (with the
whole process's totals under ``__process__``); ``bench_orchestration.py --profile`` prints it.
With ``BENCH_CPROFILE=1`` the process also runs under cProfile (OUT.prof); it inflates call-heavy
code, so the per-task figures are taken without it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time


class Meter:
    """Counters that the hooks below add to; ``snapshot()`` is read before and after each task."""

    def __init__(self):
        self.gc_s = 0.0
        self.full_gcs = 0
        self.clients = 0
        self.client_cpu_s = 0.0
        self._gc_started = 0.0

    def on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self.gc_s += time.thread_time() - self._gc_started
            self.full_gcs += info["generation"] == 2

    def snapshot(self) -> dict:
        return {"wall_s": time.perf_counter(), "cpu_s": time.process_time(), "gc_s": self.gc_s,
                "full_gcs": self.full_gcs, "clients": self.clients, "client_cpu_s": self.client_cpu_s,
                "modules": set(sys.modules)}


def diff(before: dict, after: dict) -> dict:
    out = {k: round(after[k] - before[k], 3) for k in before if k != "modules"}
    new = sorted(after["modules"] - before["modules"])
    tops = sorted({m.split(".")[0] for m in new})
    out.update(modules=len(new), packages=tops)
    return out


def main() -> None:
    out_path, argv = sys.argv[1], sys.argv[2:]
    meter = Meter()
    gc.callbacks.append(meter.on_gc)

    import botocore.session

    create_client = botocore.session.Session.create_client

    def counted_create_client(self, *args, **kwargs):
        start = time.thread_time()
        try:
            return create_client(self, *args, **kwargs)
        finally:
            meter.clients += 1
            meter.client_cpu_s += time.thread_time() - start

    botocore.session.Session.create_client = counted_create_client

    import airflow.sdk.definitions.dag as dag_module

    tasks: list[dict] = []
    run_task = dag_module._run_task

    def profiled_run_task(*, ti, task, run_triggerer=False):
        before = meter.snapshot()
        try:
            return run_task(ti=ti, task=task, run_triggerer=run_triggerer)
        finally:
            tasks.append({"task_id": ti.task_id, **diff(before, meter.snapshot())})

    dag_module._run_task = profiled_run_task

    sys.argv = ["airflow", *argv]
    from airflow.__main__ import main as airflow_main

    profiler = None
    if os.environ.get("BENCH_CPROFILE"):
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    start = meter.snapshot()
    code = 0
    try:
        airflow_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(out_path.removesuffix(".json") + ".prof")
        total = diff(start, meter.snapshot())
        total["packages"] = []
        with open(out_path, "w") as out:
            json.dump({"tasks": tasks, "__process__": total}, out)
    sys.exit(code)


if __name__ == "__main__":
    main()
