"""Data preparation at scale: a ~1 GB housing-shaped CSV prepared and uploaded to the emulator's S3.

Four ways, each in its own child process (so its peak RSS is its own), against one emulator
running in another process, interleaved run by run so machine noise hits them alike:

* ``ours``: ``sagemaker_retrain.data_prep.prepare.prepare_and_upload`` (stream, validate, split,
  label-first part files, multipart parallel upload while preparing): the CSV that Linear Learner
  (CSV), XGBoost and the scikit-learn script-mode channel all train on;
* ``recordio``: the same with ``training_content_type=application/x-recordio-protobuf`` (Linear
  Learner, k-NN): train and validation written as RecordIO-protobuf;
* ``plain``: ``boto3`` ``upload_file`` of the same file, default TransferConfig (no preparation
  at all: the ceiling a user would compare with);
* ``naive``: pandas reads the whole file, shuffles and slices it (what sklearn's
  ``train_test_split`` does), ``to_csv`` per split, ``upload_file`` each.

Throughput is input bytes / wall seconds of the operation (imports excluded); memory is the
child's peak RSS (VmHWM), imports included; CPU is the operation's own (all its threads), with the
emulator's CPU over the child's life beside it: they share the machine's cores, and the emulator is
one Python process, so either side can be what limits a method's rate. Goals (issues 15, 26), for
each training format: >= 0.6x plain's throughput, peak RSS <= 400 MB. Each round runs plain, CSV and RecordIO back to
back (each round in another order), so each format's ratio is taken against plain uploads of the same rounds.

    python bench/bench_data_prep.py [--size-mb 1000] [--runs 3] [--naive-runs 1] [--no-recordio]
                                    [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Figure,
    bench_tmp,
    cpu_seconds,
    emulator_process,
    median,
    print_peak_rss,
    report,
    run_child,
    synthetic_housing_csv,
)

BUCKET = "bench-data-prep"
PARAMS = {
    "target_column": "medv",
    "predictor_type": "regressor",
    "validation_fraction": 0.1,
    "test_fraction": 0.1,
    "split_seed": 42,
    "smoke_rows": 5,
    "num_classes": None,
    "training_instance_count": 2,
}
PEAK_RSS_GOAL_MB = 400
THROUGHPUT_GOAL = 0.6


def _s3():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


class Run(NamedTuple):
    """One run: the operation's wall and CPU seconds, its peak RSS, the emulator's CPU over the child's life."""

    seconds: float
    peak_rss: int
    cpu: float
    emulator_cpu: float


def _printed(output: str, key: str) -> float:
    """The number a child printed on its ``KEY <number>`` line."""
    match = re.search(rf"^{key} (\S+)$", output, re.M)
    if match is None:
        raise RuntimeError(f"the child printed no {key} line:\n{output[-2000:]}")
    return float(match.group(1))


def child(method: str, path: str, prefix: str) -> None:
    """Run one method; print SECONDS, CPU and PEAK_RSS (the parent reads them)."""
    import boto3  # noqa: F401 - imports happen before the clock starts
    import numpy as np
    import pandas as pd

    from sagemaker_retrain.data_prep.prepare import prepare_and_upload

    s3 = _s3()
    s3.head_bucket(Bucket=BUCKET)  # warm the connection pool
    start, cpu = time.perf_counter(), time.process_time()  # process_time: every thread of this process
    if method == "plain":
        s3.upload_file(path, BUCKET, f"{prefix}/housing.csv")
    elif method in ("ours", "recordio"):
        params = dict(PARAMS, training_content_type="application/x-recordio-protobuf") if method == "recordio" \
            else PARAMS
        prepared = prepare_and_upload(path, s3_client=s3, bucket=BUCKET, input_prefix=prefix, params=params)
        print(f"ROWS {prepared.rows} PARTS {prepared.parts}")
    elif method == "naive":
        import tempfile

        frame = pd.read_csv(path)
        if frame.isna().any().any() or not np.isfinite(frame.to_numpy(dtype=float)).all():
            raise SystemExit("naive: bad values")
        frame = frame[[PARAMS["target_column"]] + [c for c in frame.columns if c != PARAMS["target_column"]]]
        shuffled = frame.sample(frac=1.0, random_state=PARAMS["split_seed"])
        n_test = int(np.ceil(len(frame) * PARAMS["test_fraction"]))
        n_val = int(np.ceil(len(frame) * PARAMS["validation_fraction"]))
        splits = {"test": shuffled.iloc[:n_test], "validation": shuffled.iloc[n_test:n_test + n_val],
                  "train": shuffled.iloc[n_test + n_val:]}
        with tempfile.TemporaryDirectory(dir=bench_tmp()) as tmp:
            for name, part in splits.items():
                local = Path(tmp) / f"{name}.csv"
                part.to_csv(local, header=False, index=False)
                s3.upload_file(str(local), BUCKET, f"{prefix}/{name}/{name}.csv")
    else:
        raise SystemExit(f"unknown method {method}")
    print(f"SECONDS {time.perf_counter() - start:.4f}")
    print(f"CPU {time.process_time() - cpu:.4f}")
    print_peak_rss()


def _clear(s3, prefix: str) -> None:
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def _rate(results: dict, method: str, size: int) -> float:
    """MB/s of a method's median run."""
    return size / 1e6 / median(run.seconds for run in results[method])


def _peak(results: dict, method: str) -> float:
    """MB of a method's largest peak RSS."""
    return max(run.peak_rss for run in results[method]) / 1e6


def _cpu_per_gb(results: dict, method: str, size: int) -> tuple[float, float]:
    """Median CPU seconds per GB of input: the method's own process, and the emulator's over each child's life."""
    return (median(run.cpu for run in results[method]) / (size / 1e9),
            median(run.emulator_cpu for run in results[method]) / (size / 1e9))


def _throughput_figures(label: str, method: str, results: dict, size: int, runs: int) -> list[Figure]:
    """One format's throughput (ratio of medians, and run by run) and peak memory against the plain upload."""
    ours, plain = _rate(results, method, size), _rate(results, "plain", size)
    mb = "1 GB" if size >= 1e9 * 0.95 else f"{size / 1e6:.0f} MB"
    return [
        Figure(f"data prep throughput{label} ({mb} CSV -> emulator S3)",
               f"{ours:.1f} MB/s", f"{plain:.1f} MB/s plain boto3 upload_file", f"{ours / plain:.2f}x",
               f">= {THROUGHPUT_GOAL}x plain", ours / plain >= THROUGHPUT_GOAL,
               note=f"median of {runs}; run by run (plain/ours seconds, same round): "
                    + ", ".join(f"{p.seconds / o.seconds:.2f}x"
                                for p, o in zip(results["plain"], results[method], strict=True)),
               raw={"ours_mb_s": ours, "plain_mb_s": plain, "bytes": size}),
        _cpu_figure(label, method, results, size),
        Figure(f"data prep peak memory{label}", f"{_peak(results, method):.0f} MB",
               f"{_peak(results, 'plain'):.0f} MB plain upload_file",
               f"{_peak(results, method) / _peak(results, 'plain'):.2f}x", f"<= {PEAK_RSS_GOAL_MB} MB",
               _peak(results, method) <= PEAK_RSS_GOAL_MB, note="child peak RSS (VmHWM), max over runs",
               raw={"ours_mb": _peak(results, method), "plain_mb": _peak(results, "plain")}),
    ]


def _cpu_figure(label: str, method: str, results: dict, size: int) -> Figure:
    """CPU seconds per GB on the worker (the figure that sizes workers), with the emulator's beside it.

    The emulator's S3 runs on the same cores: its CPU says how much of the machine a method's uploads
    took there (on AWS that share leaves the machine).
    """
    (ours, ours_emu), (plain, plain_emu) = _cpu_per_gb(results, method, size), _cpu_per_gb(results, "plain", size)
    cores = len(os.sched_getaffinity(0))
    return Figure(f"data prep CPU seconds per GB of input{label}", f"{ours:.1f} s",
                  f"{plain:.1f} s plain upload_file", f"{ours / plain:.1f}x plain's", "", None,
                  note=f"the operation's own process, all threads, median; the emulator's CPU over the child's "
                       f"life {ours_emu:.1f} s (plain's {plain_emu:.1f} s); {cores} cores shared by both",
                  raw={"ours_cpu_s_per_gb": ours, "plain_cpu_s_per_gb": plain,
                       "ours_emulator_cpu_s_per_gb": ours_emu, "plain_emulator_cpu_s_per_gb": plain_emu})


def measure(size_mb: int, runs: int, naive_runs: int, recordio: bool) -> list[Figure]:
    t0 = time.perf_counter()
    path = synthetic_housing_csv(size_mb * 1_000_000)
    size = path.stat().st_size
    print(f"# data prep: {size / 1e6:.0f} MB synthetic CSV at {path} (made in {time.perf_counter() - t0:.0f} s)",
          flush=True)
    results: dict[str, list[Run]] = {"plain": [], "ours": [], "recordio": [], "naive": []}
    with emulator_process() as emu:
        s3 = emu.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        env = {**os.environ, **emu.env}
        round_ = ("plain", "ours", "recordio") if recordio else ("plain", "ours")
        # each round in another order, so that a method's place in the round falls on none of them alone
        schedule = [m for i in range(runs) for m in round_[i % len(round_):] + round_[:i % len(round_)]]
        schedule += ["naive"] * naive_runs
        for i, method in enumerate(schedule):
            prefix = f"run-{i}-{method}"
            emulator_before = cpu_seconds(emu.proc.pid)
            child_run = run_child([__file__, "--child", method, str(path), prefix], env=env, timeout=1200)
            run = Run(_printed(child_run.output, "SECONDS"), child_run.peak_rss_bytes,
                      _printed(child_run.output, "CPU"), cpu_seconds(emu.proc.pid) - emulator_before)
            results[method].append(run)
            print(f"#   {method:8s} run {len(results[method])}: {run.seconds:6.1f} s, "
                  f"{size / 1e6 / run.seconds:6.1f} MB/s, peak RSS {run.peak_rss / 1e6:5.0f} MB, "
                  f"CPU {run.cpu:5.1f} s (emulator {run.emulator_cpu:5.1f} s)", flush=True)
            _clear(s3, prefix)

    figures = _throughput_figures("", "ours", results, size, runs)
    if results["recordio"]:
        figures += _throughput_figures(", RecordIO-protobuf train/validation", "recordio", results, size, runs)
    if results["naive"]:
        ours, naive = _rate(results, "ours", size), _rate(results, "naive", size)
        figures += [
            Figure("naive pandas prep throughput", f"{naive:.1f} MB/s", f"{ours:.1f} MB/s ours",
                   f"ours {ours / naive:.2f}x faster", "", None, note=f"{naive_runs} run(s)",
                   raw={"naive_mb_s": naive}),
            Figure("naive pandas prep peak memory", f"{_peak(results, 'naive'):.0f} MB",
                   f"{_peak(results, 'ours'):.0f} MB ours",
                   f"ours uses {_peak(results, 'ours') / _peak(results, 'naive'):.2f}x", "", None,
                   raw={"naive_mb": _peak(results, "naive")}),
        ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-runs", type=int, default=1)
    parser.add_argument("--no-recordio", action="store_true", help="skip the RecordIO-protobuf format")
    parser.add_argument("--json")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "PATH", "PREFIX"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    report(measure(args.size_mb, args.runs, args.naive_runs, not args.no_recordio), args.json)


if __name__ == "__main__":
    main()
