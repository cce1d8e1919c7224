"""Run a DAG of this project with ``airflow dags test`` against a running emulator.

Shared by ``make demo`` and the end-to-end tests: an isolated AIRFLOW_HOME (SQLite), the
emulator's endpoint variables, the pipeline's deployment Variables as ``AIRFLOW_VAR_*``, and
helpers to read back task states and XComs of the run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
# Airflow's `[database] sql_alchemy_connect_args` for the SQLite metadata file: several `dags test`
# processes may write it at once (the reliability suite's ten overlapping runs), and SQLite's default
# wait for another writer's lock (5 s) ran out on a busy 2-core machine ("database is locked").
SQLITE_CONNECT_ARGS = {"timeout": 60}


@dataclass
class DagRunResult:
    returncode: int
    output: str
    run_id: str | None
    states: dict[str, str] = field(default_factory=dict)
    xcoms: dict[str, object] = field(default_factory=dict)

    @property
    def state(self) -> str | None:
        return self.states.get("__run__")


def airflow_env(project_dir: Path, home: Path, aws_env: dict[str, str], bucket: str,
                role_arn: str = "arn:aws:iam::123456789012:role/SageMakerExecution",
                poll_seconds: int = 1, extra: dict[str, str] | None = None,
                short_wait_seconds: float = 5) -> dict[str, str]:
    """Environment for Airflow CLI processes pointed at the emulator (nothing in the DAG changes).

    ``short_wait_seconds``: the DAG's ``SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS`` (off by default in the
    DAG): offline, jobs end within a second, so a job watched that long on the worker saves a deferral.
    """
    home = home.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(aws_env)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(project_dir / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(project_dir / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        # The project's deployments opt into it (docker-compose.yaml, the native deployment; README):
        # boto3 sessions share parsed botocore data files instead of re-parsing them for every client,
        # and the hooks name their caller without inspect.stack() (include/airflow_deployment/).
        AIRFLOW__AWS__SESSION_FACTORY="airflow_deployment.aws_session.FastCallerSessionFactory",
        # No Airflow connection: the emulator's credentials and endpoints are in the environment, where
        # boto3's own chain finds them, so no hook asks for (and warns about) an undefined aws_default.
        SAGEMAKER_RETRAIN_AWS_CONN_ID="",
        AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET=bucket,
        AIRFLOW_VAR_SAGEMAKER_RETRAIN_ROLE_ARN=role_arn,
        AIRFLOW_VAR_SAGEMAKER_RETRAIN_REGION=aws_env.get("AWS_DEFAULT_REGION", "us-east-1"),
        SAGEMAKER_RETRAIN_POLL_SECONDS=str(poll_seconds),
        SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS=f"{short_wait_seconds:g}",
        # Off, as the DAG's default: `airflow dags test` (3.3.2) exits 1 after a successful run of a DAG
        # with a DeadlineAlert (apache/airflow#73428, docs/upstream.md).
        SAGEMAKER_RETRAIN_DEADLINE_HOURS="",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(extra or {})
    if env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite"):
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "offline_aws.airflow_run.SQLITE_CONNECT_ARGS")
    return env


def migrate(env: dict[str, str]) -> None:
    """Create the SQLite metadata database once per AIRFLOW_HOME."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / ".migrated"
    if stamp.exists():
        return
    proc = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    create_pools(env)
    stamp.touch()


def create_pools(env: dict[str, str]) -> None:
    """The pools the model catalog needs (one per endpoint), as every deployment of the project creates them.

    ``airflow dags test`` itself ignores pools; a scheduler never runs a task whose pool is missing. The
    catalog is asked through its command line (``python -m sagemaker_retrain.catalog --pools``): the
    emulator's package imports nothing of the provider's.
    """
    home = Path(env["AIRFLOW_HOME"])
    pools = subprocess.run([sys.executable, "-m", "sagemaker_retrain.catalog", "--pools"], env=env,
                           capture_output=True, text=True)
    if pools.returncode != 0:
        raise RuntimeError(f"listing the catalog's pools failed:\n{pools.stderr[-3000:]}")
    (home / "pools.json").write_text(pools.stdout)
    proc = subprocess.run([str(BIN / "airflow"), "pools", "import", str(home / "pools.json")], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow pools import failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _db(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")


def _latest_run_id(env: dict[str, str], dag_id: str) -> str | None:
    with _db(env) as db:
        row = db.execute("SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
    return row[0] if row else None


def read_run(env: dict[str, str], dag_id: str, run_id: str) -> tuple[dict[str, str], dict[str, object]]:
    """Task states (plus ``__run__``) and return-value XComs of one run.

    A mapped task's instances are ``TASK_INDEX`` (Airflow's own ``get_task_states`` naming).
    """
    def named(task_id: str, map_index: int) -> str:
        return task_id if map_index < 0 else f"{task_id}_{map_index}"

    with _db(env) as db:
        states = {named(t, i): s for t, i, s in db.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id=? AND run_id=?",
            (dag_id, run_id)).fetchall()}
        run_state = db.execute("SELECT state FROM dag_run WHERE dag_id=? AND run_id=?", (dag_id, run_id)).fetchone()
        rows = db.execute("SELECT task_id, map_index, key, value FROM xcom WHERE dag_id=? AND run_id=?",
                          (dag_id, run_id)).fetchall()
    states["__run__"] = run_state[0] if run_state else None
    xcoms: dict[str, object] = {}
    for task_id, map_index, key, value in rows:
        task_id = named(task_id, map_index)
        decoded = json.loads(value) if isinstance(value, str | bytes) else value
        if isinstance(decoded, str):
            try:
                decoded = json.loads(decoded)
            except ValueError:
                pass
        xcoms[task_id if key == "return_value" else f"{task_id}.{key}"] = decoded
    return states, xcoms


def dags_test(env: dict[str, str], dag_id: str = "sagemaker_retrain", conf: dict | None = None,
              timeout: float = 900, extra_env: dict[str, str] | None = None) -> DagRunResult:
    """``airflow dags test`` one run; return its output, task states and XComs."""
    migrate(env)
    env = {**env, **(extra_env or {})}
    before = _latest_run_id(env, dag_id)
    cmd = [str(BIN / "airflow"), "dags", "test", dag_id]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    run_id = _latest_run_id(env, dag_id)
    if run_id == before:
        return DagRunResult(proc.returncode, proc.stdout + proc.stderr, None)
    states, xcoms = read_run(env, dag_id, run_id)
    return DagRunResult(proc.returncode, proc.stdout + proc.stderr, run_id, states, xcoms)


class DagTestSession:
    """``airflow dags test`` again and again in one long-lived Python process.

    The same command code (``dag_command.dag_test``, so ``DAG.test``) as ``dags_test``, without paying
    Airflow's start-up, the DAG file's parse and the first task's imports (~25 s on a busy 2-core
    machine) for every run: for tests that run the DAG many times against one emulator. Each DAG is
    parsed once, at its first run (its parse-time settings come from ``env``, as in ``dags_test``;
    ``DAG.test`` still syncs the file to the database at every run).
    ``run()`` returns the same ``DagRunResult``, its ``output`` being this run's part of the log; its
    ``dag_id`` runs another DAG of the same file (the catalog's models) in the same process.
    """

    def __init__(self, env: dict[str, str], dag_id: str = "sagemaker_retrain"):
        migrate(env)
        self.env, self.dag_id = env, dag_id
        home = Path(env["AIRFLOW_HOME"])
        self.log_path, self.results_path = home / "dag-test-session.log", home / "dag-test-session.results"
        self.results_path.write_text("")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "offline_aws.airflow_run", dag_id, str(self.results_path)],
                                     env=env, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT)
        self._done = 0

    def run(self, conf: dict | None = None, timeout: float = 900, dag_id: str | None = None) -> DagRunResult:
        import time

        dag_id = dag_id or self.dag_id
        before = _latest_run_id(self.env, dag_id)
        offset = self.log_path.stat().st_size
        self.proc.stdin.write((json.dumps({"dag_id": dag_id, "conf": conf or {}}) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            lines = self.results_path.read_text().splitlines()
            if len(lines) > self._done:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dags-test session ended or timed out:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        self._done += 1
        returncode = json.loads(lines[self._done - 1])["returncode"]
        with self.log_path.open("rb") as log:
            log.seek(offset)
            output = log.read().decode(errors="replace")
        run_id = _latest_run_id(self.env, dag_id)
        if run_id == before:
            return DagRunResult(returncode, output, None)
        states, xcoms = read_run(self.env, dag_id, run_id)
        return DagRunResult(returncode, output, run_id, states, xcoms)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def fresh_copy(dag):
    """A run's own copy of a parsed DAG (tens of ms): in one process, a run's conf would stay in the next run.

    Airflow's ``process_params`` puts the DAG's and the task's own ``Param`` objects into the run's
    ``ParamsDict`` and then sets the conf's values on them, so a Param a run's conf set (``mode: ephemeral``)
    would be the next run's default. A task process of a real deployment parses the DAG afresh and never sees
    it. ``DAG`` deep-copies its Params and tasks, but an operator copies its own ``params`` (the approval
    form's field) shallowly: they are copied here.
    """
    import copy

    run_dag = copy.deepcopy(dag)
    for task in run_dag.tasks:
        task.params = copy.deepcopy(task.params)
    return run_dag


def _serve(dag_id: str, results_path: str) -> None:
    """The session's process: one JSON ``{"dag_id", "conf"}`` per stdin line -> one ``dags test`` run -> one result line."""
    import traceback
    from argparse import Namespace

    from airflow.cli.commands.dag_command import dag_test
    from airflow.utils.cli import get_bagged_dag

    dags = {}  # each DAG parsed once: `dags test` parses the file for it, then DAG.test syncs it again
    for line in sys.stdin:
        request = json.loads(line)
        conf = request.get("conf")
        args = Namespace(dag_id=request.get("dag_id") or dag_id, conf=json.dumps(conf) if conf else None, logical_date=None,
                         use_executor=False, mark_success_pattern=None, bundle_name=None, dagfile_path=None,
                         show_dagrun=False, imgcat_dagrun=False, save_dagrun=None, verbose=False)
        returncode = 0
        try:
            if args.dag_id not in dags:
                dags[args.dag_id] = get_bagged_dag(None, args.dag_id)
            dag_test(args, fresh_copy(dags[args.dag_id]))
        except SystemExit as exc:
            returncode = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            traceback.print_exc()
            returncode = 1
        sys.stdout.flush()
        sys.stderr.flush()
        with open(results_path, "a") as results:
            results.write(json.dumps({"returncode": returncode}) + "\n")


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
