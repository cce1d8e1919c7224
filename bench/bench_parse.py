"""Parse cost: the DAG file's parse time in a warm process, beside an empty DAG file's.

One child process (isolated AIRFLOW_HOME, no network) imports Airflow, the Amazon provider and
our provider package, parses each file once to warm up, then parses both files alternately
``--runs`` times with a fresh ``DagBag.process_file`` each time (what the dag-processor does
per file) and reports the medians. The empty DAG file has one DAG with no tasks.
Goal (issue 15): at most 25 ms more than the empty file.

    python bench/bench_parse.py [--runs 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT, Figure, median, report, run_child  # noqa: E402

DAG_FILE = PROJECT / "dags" / "sagemaker_retrain.py"
EMPTY_DAG = '''"""An empty DAG: the parse-cost baseline."""
import pendulum
from airflow.sdk import dag


@dag(dag_id="empty_baseline", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def empty_baseline():
    pass


empty_baseline()
'''
GOAL_MS = 25.0


def child(runs: int, empty_path: str) -> None:
    import airflow.providers.amazon.aws.operators.sagemaker  # noqa: F401 - warm: provider imported
    from airflow.dag_processing.dagbag import DagBag

    import sagemaker_retrain.operators.endpoint  # noqa: F401

    def parse(path: str) -> float:
        bag = DagBag(dag_folder=os.devnull, collect_dags=False, load_op_links=False)
        start = time.perf_counter()
        found = bag.process_file(path, only_if_updated=False, safe_mode=False)
        elapsed = time.perf_counter() - start
        if not found or bag.import_errors:
            raise SystemExit(f"parse of {path} failed: {bag.import_errors}")
        return elapsed

    for path in (str(DAG_FILE), empty_path):  # warm-up: first parse imports what the file imports
        parse(path)
    ours, empty = [], []
    for _ in range(runs):
        ours.append(parse(str(DAG_FILE)))
        empty.append(parse(empty_path))
    print("RESULT " + json.dumps({"ours": ours, "empty": empty}))


def measure(runs: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        empty_path = Path(tmp) / "empty_baseline.py"
        empty_path.write_text(EMPTY_DAG)
        home = Path(tmp) / "airflow-home"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                   AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT / "dags"),
                   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                   AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR")
        run = run_child([__file__, "--child", str(runs), str(empty_path)], env=env, timeout=600)
    result = json.loads(next(line[7:] for line in run.output.splitlines() if line.startswith("RESULT ")))
    ours, empty = median(result["ours"]) * 1000, median(result["empty"]) * 1000
    extra = ours - empty
    return [Figure("DAG parse time (warm process)", f"{ours:.1f} ms", f"{empty:.1f} ms empty DAG file",
                   f"+{extra:.1f} ms, {ours / empty:.1f}x", f"<= +{GOAL_MS:.0f} ms", extra <= GOAL_MS,
                   note=f"median of {runs} parses each", raw={"ours_ms": ours, "empty_ms": empty})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--json")
    parser.add_argument("--child", nargs=2, metavar=("RUNS", "EMPTY_DAG"))
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    report(measure(args.runs), args.json)


if __name__ == "__main__":
    main()
