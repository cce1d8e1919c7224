"""Helpers shared by the benchmark scripts: the emulator as a child process, timing, data, output.

Every benchmark prints one line per figure, with the baseline measured in the same run:

    BENCH <figure>: <ours> vs <baseline> (<ratio>) goal <goal> -> MET|NOT MET

and, with ``--json PATH``, also writes its figures as JSON so ``run_all.py`` can build the table.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOUSING = PROJECT / "include" / "data" / "housing.csv"
BENCH_TMP_ENV = "BENCH_TMPDIR"


@dataclass
class Figure:
    """One measured figure beside its baseline from the same run."""

    name: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: informational, no goal
    note: str = ""
    raw: dict = field(default_factory=dict)

    def line(self) -> str:
        verdict = "" if self.met is None else (" -> MET" if self.met else " -> NOT MET")
        goal = f" goal {self.goal}" if self.goal else ""
        note = f"  [{self.note}]" if self.note else ""
        return f"BENCH {self.name}: {self.ours} vs baseline {self.baseline} ({self.ratio}){goal}{verdict}{note}"


def report(figures: list[Figure], json_path: str | None) -> None:
    for fig in figures:
        print(fig.line(), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(f) for f in figures], indent=2))


def median(values) -> float:
    return float(statistics.median(values))


def bench_tmp() -> Path:
    """Scratch space outside the repo (``$BENCH_TMPDIR`` or the system temp dir)."""
    base = Path(os.environ.get(BENCH_TMP_ENV) or tempfile.gettempdir()) / "sagemaker-retrain-bench"
    base.mkdir(parents=True, exist_ok=True)
    return base


def mb(nbytes: float) -> float:
    return nbytes / 1e6


# ----------------------------------------------------------------------------- the emulator


class EmulatorProcess:
    """``python -m offline_aws`` on a free port, in its own process (so it does not share our GIL)."""

    def __init__(self, time_scale: float = 0):
        cmd = [PYTHON, "-m", "offline_aws", "--port", "0", "--time-scale", str(time_scale)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     cwd=str(PROJECT), start_new_session=True)
        self.env: dict[str, str] = {}
        deadline = time.monotonic() + 60
        for line in self.proc.stdout:
            match = re.match(r"export (\w+)=(.*)", line.strip())
            if match:
                self.env[match.group(1)] = match.group(2)
            if line.startswith("#") or time.monotonic() > deadline:
                break
        if "AWS_ENDPOINT_URL" not in self.env:
            self.stop()
            raise RuntimeError("the emulator did not start")
        self.url = self.env["AWS_ENDPOINT_URL"]
        # Drain stdout so the child never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def client(self, service: str, **kwargs):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=self.env["AWS_DEFAULT_REGION"],
                            aws_access_key_id="test", aws_secret_access_key="test", **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def emulator_process(time_scale: float = 0):
    emu = EmulatorProcess(time_scale)
    try:
        yield emu
    finally:
        emu.stop()


# ----------------------------------------------------------------------------- child processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ChildRun:
    seconds: float
    peak_rss_bytes: int
    output: str


def run_child(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> ChildRun:
    """Run a Python child; return its wall time and its own peak RSS (VmHWM read just before exit).

    The child prints ``PEAK_RSS <bytes>`` (from ``/proc/self/status``) as its last act, which is
    exact per child, unlike ``RUSAGE_CHILDREN`` (the maximum over every child ever waited for).
    """
    start = time.perf_counter()
    proc = subprocess.run([PYTHON, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(PROJECT))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    match = re.search(r"^PEAK_RSS (\d+)$", proc.stdout, re.M)
    peak = int(match.group(1)) if match else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return ChildRun(seconds, peak, proc.stdout)


def print_peak_rss() -> None:
    """For child processes: print this process's peak resident set size (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            print(f"PEAK_RSS {int(line.split()[1]) * 1024}", flush=True)
            return
    print(f"PEAK_RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}", flush=True)


# ----------------------------------------------------------------------------- synthetic data


def housing_columns() -> list[str]:
    return HOUSING.read_text().splitlines()[0].split(",")


def synthetic_housing_block(rows: int, seed: int) -> str:
    """``rows`` housing-shaped rows (no header): bootstrapped feature rows with noise, y linear + noise."""
    import pandas as pd

    base = pd.read_csv(HOUSING)
    rng = np.random.default_rng(seed)
    features = base.drop(columns=["medv"])
    sample = features.to_numpy()[rng.integers(0, len(features), rows)]
    sample = sample + rng.normal(0, 0.02, sample.shape) * features.std().to_numpy()
    sample = np.maximum(sample, 0)
    coef = np.linalg.lstsq(np.c_[features.to_numpy(), np.ones(len(features))], base["medv"].to_numpy(),
                           rcond=None)[0]
    y = np.c_[sample, np.ones(rows)] @ coef + rng.normal(0, 3, rows)
    frame = pd.DataFrame(sample, columns=features.columns)
    decimals = {"crim": 5, "zn": 1, "indus": 2, "chas": 0, "nox": 3, "rm": 3, "age": 1, "dis": 4, "rad": 0,
                "tax": 0, "ptratio": 1, "lstat": 2}
    frame = frame.round(decimals)
    for col in ("chas", "rad", "tax"):
        frame[col] = frame[col].astype(np.int64)
    frame["medv"] = np.round(y, 1)
    return frame.to_csv(header=False, index=False, lineterminator="\n")


def synthetic_housing_csv(target_bytes: int, folder: Path | None = None, blocks: int = 8,
                          block_rows: int = 100_000) -> Path:
    """A housing-shaped CSV of about ``target_bytes`` (header + rows), cached by size in ``folder``.

    ``blocks`` distinct blocks of random rows are written in turn until the size is reached,
    which keeps generation to seconds for a gigabyte.
    """
    folder = folder or bench_tmp()
    path = folder / f"housing-synthetic-{target_bytes}.csv"
    if path.exists() and path.stat().st_size >= target_bytes:
        return path
    texts = [synthetic_housing_block(block_rows, seed).encode() for seed in range(blocks)]
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        out.write((",".join(housing_columns()) + "\n").encode())
        written, i = 0, 0
        while written < target_bytes:
            block = texts[i % blocks]
            if written + len(block) > target_bytes:
                block = block[: block.rfind(b"\n", 0, target_bytes - written) + 1]
                if not block:
                    break
            out.write(block)
            written += len(block)
            i += 1
    tmp.rename(path)
    return path
