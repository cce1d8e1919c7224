"""Run every benchmark (``make bench``), print each figure beside its baseline, write the table.

Each benchmark runs as its own process and prints ``BENCH ...`` lines (progress lines start with
``#``); this script collects their figures and writes the table of the run into
``docs/benchmarks.md`` (between the generated-table markers) unless ``--no-docs``.
Generated data lives in a temp dir (``$BENCH_TMPDIR`` or the system's), never in the repo.

    python bench/run_all.py [--quick] [--no-docs] [--only parse,orchestration,orchestration_native,data_prep,scoring,recordio,
                                                        xgboost,script_mode,algorithms_housing,triggerer,
                                                        many_models,slot_seconds]

With ``--only`` the table keeps the rows of the benchmarks not run and replaces (or adds) only the
rows of those that ran.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
DOCS = PROJECT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin (written by bench/run_all.py) -->", "<!-- bench:end -->"

# name -> (script, full arguments, --quick arguments)
BENCHMARKS = {
    "parse": ("bench_parse.py", ["--runs", "25"], ["--runs", "20"]),
    "recordio": ("bench_recordio.py", ["--rows", "200000", "--runs", "5"], ["--rows", "50000", "--runs", "3"]),
    "scoring": ("bench_scoring.py", ["--rows", "100000", "--single", "300", "--runs", "3"],
                ["--rows", "20000", "--single", "100", "--runs", "2"]),
    "orchestration": ("bench_orchestration.py", ["--runs", "3", "--profile"], ["--runs", "1"]),
    "orchestration_native": ("bench_orchestration.py", ["--native", "--runs", "3"], ["--native", "--runs", "1"]),
    "data_prep": ("bench_data_prep.py", ["--size-mb", "1000", "--runs", "3", "--naive-runs", "1"],
                  ["--size-mb", "100", "--runs", "2", "--naive-runs", "1"]),
    "xgboost": ("bench_xgboost.py", ["--rows", "1000000", "--runs", "5"], ["--rows", "100000", "--runs", "2"]),
    "script_mode": ("bench_script_mode.py", ["--jobs", "10"], ["--jobs", "3"]),
    "algorithms_housing": ("bench_algorithms_housing.py", [], []),
    "triggerer": ("bench_triggerer.py", ["--counts", "50,200,500", "--poll", "30", "--window", "30"],
                  ["--counts", "50", "--poll", "10", "--window", "15"]),
    "many_models": ("bench_many_models.py", ["--models", "10", "--alone-runs", "2"],
                    ["--models", "3", "--alone-runs", "1"]),
    "slot_seconds": ("bench_slot_seconds.py", ["--runs", "3"], ["--runs", "1"]),
}


def run(name: str, quick: bool, tmp: Path) -> tuple[list[dict], float, str | None]:
    script, full, small = BENCHMARKS[name]
    out = tmp / f"{name}.json"
    cmd = [sys.executable, str(BENCH / script), *(small if quick else full), "--json", str(out)]
    print(f"# {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(PROJECT), text=True, stdout=None, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        error = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        print(f"# {name} FAILED after {seconds:.0f} s: {error[0]}", flush=True)
        sys.stderr.write(proc.stderr[-4000:])
        return [], seconds, error[0]
    return json.loads(out.read_text()), seconds, None


def markdown(results: dict[str, tuple[list[dict], float, str | None]], total: float, quick: bool,
             only: str | None = None) -> str:
    command = "python bench/run_all.py" + (" --quick" if quick else "") + (f" --only {only}" if only else "")
    command = "make bench" if command == "python bench/run_all.py" else command
    lines = [
        f"Last run: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, "
        f"`{command}` "
        f"({total / 60:.1f} min in all), on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        "| Figure | Ours | Baseline (same run) | Ratio | Goal | Met? | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (figures, _seconds, error) in results.items():
        if error:
            lines.append(f"| {name} | failed | | | | | {error} |")
        for fig in figures:
            met = "" if fig["met"] is None else ("yes" if fig["met"] else "**no**")
            lines.append(f"| {fig['name']} | {fig['ours']} | {fig['baseline']} | {fig['ratio']} | {fig['goal']} "
                         f"| {met} | {fig['note']} |")
    return "\n".join(lines) + "\n"


def merge_rows(table: str, old: str) -> str:
    """``table`` (this partial run's) merged into the ``old`` one: rows of the same figure are replaced in place,
    the rest of the old rows kept, new figures appended; the old heading stays, with a line for this run."""
    def rows(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Figure |")]

    def key(row: str) -> str:
        return row.split("|")[1].strip()

    new = {key(r): r for r in rows(table)}
    old_rows = rows(old)
    if not old_rows:
        return table
    merged = [new.pop(key(r), r) for r in old_rows] + list(new.values())
    heading = [line for line in old.splitlines() if line and not line.startswith("|")]
    this_run = next(line for line in table.splitlines() if line.startswith("Last run:"))
    heading = [h for h in heading if not h.startswith("Rows of this run's benchmarks")]
    lines = [*heading, f"Rows of this run's benchmarks regenerated by a partial run: {this_run[len('Last run: '):]}", "",
             "| Figure | Ours | Baseline (same run) | Ratio | Goal | Met? | Notes |", "|---|---|---|---|---|---|---|",
             *merged]
    return "\n".join(lines) + "\n"


def current_table() -> str:
    text = DOCS.read_text() if DOCS.exists() else ""
    return text.split(BEGIN, 1)[1].split(END, 1)[0] if BEGIN in text and END in text else ""


def write_docs(table: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer runs (a smoke test)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHMARKS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}")
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="sagemaker-retrain-bench-"))
    os.environ["BENCH_TMPDIR"] = str(scratch)  # generated data sets go here and are removed at the end
    results = {}
    try:
        for name in names:
            results[name] = run(name, args.quick, scratch)
            print(f"# {name} took {results[name][1]:.0f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    total = time.perf_counter() - start
    print(f"\n# all benchmarks: {total / 60:.1f} min")
    for figures, _, _ in results.values():
        for fig in figures:
            verdict = "" if fig["met"] is None else (" -> MET" if fig["met"] else " -> NOT MET")
            goal = f" goal {fig['goal']}" if fig["goal"] else ""
            print(f"BENCH {fig['name']}: {fig['ours']} vs baseline {fig['baseline']} ({fig['ratio']}){goal}{verdict}")
    table = markdown(results, total, args.quick, args.only)
    print("\n" + table)
    if not args.no_docs:
        write_docs(merge_rows(table, current_table()) if args.only else table)
        print(f"# table written to {DOCS.relative_to(PROJECT)}")
    return 1 if any(error for _, _, error in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
