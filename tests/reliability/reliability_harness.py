"""What the reliability suite measures around each DAG run against the emulator.

* ``Reliability``: one emulator (restartable, with a ``--state-dir``-style save/load) and one
  Airflow home shared by every scenario of the session; each scenario works on its own
  endpoint name, so scenarios never see each other's resources.
* ``seed_serving_endpoint``: puts a known model ("the previously serving model", a constant
  prediction) behind an endpoint, tagged as the pipeline tags its own, without a DAG run.
* ``Probe``: invokes the serving endpoint every few milliseconds for the whole run, with the
  emulator's probe header (not counted, not faulted), and measures failed calls, downtime and
  answers that did not come from the previously serving model.
* ``inventory`` / ``orphans``: every SageMaker resource of an endpoint and the S3 prefixes of
  a run; an orphan is anything a persistent endpoint should not keep (more than the serving
  config + the one kept for rollback and their models, a Failed/non-serving endpoint, a
  training job still running, input parts of a refused data set).
* ``record``: appends the scenario's row to the results file that ``report.py`` renders into
  ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import boto3
import numpy as np

from offline_aws.admin_client import call_admin
from offline_aws.airflow_run import BIN, DagRunResult, airflow_env, migrate, read_run
from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
from offline_aws.persistence import save_state
from offline_aws.server import Emulator
from sagemaker_retrain.config import TAG_ENDPOINT, TAG_PREVIOUS_CONFIG, TAG_PROJECT
from sagemaker_retrain.images import linear_learner_image

PROJECT_DIR = Path(__file__).resolve().parents[2]
RESULTS = PROJECT_DIR / ".airflow" / "reliability-results.jsonl"
# The pytest run (tests/conftest.py's PROJECT_TEST_RUN) whose rows RESULTS holds.
RESULTS_RUN = RESULTS.with_suffix(".run")
BUCKET = "reliability-bucket"
REGION = "us-east-1"
PREFIX = "sagemaker-retrain"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
PROBE_HEADER = "X-Offline-Aws-Probe"
BASELINE_SCORE = 22.5  # what the previously serving model answers, whatever the row
PROBE_ROW = "0.00632,18.0,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,4.98"
FEATURES = 12
DAG_ID = "sagemaker_retrain"
DRIVER = Path(__file__).resolve().parent / "drive_run.py"


def claim_results() -> Path:
    """RESULTS, emptied if it holds another pytest run's rows. Under a file lock: with two xdist workers the
    second to ask must find the first's claim (and keep its rows), not empty the file again."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    run = os.environ["PROJECT_TEST_RUN"]
    with open(RESULTS.with_suffix(".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not RESULTS_RUN.exists() or RESULTS_RUN.read_text() != run:
            RESULTS.write_text("")
            RESULTS_RUN.write_text(run)
    return RESULTS


def _probe_header(request, **_):
    request.headers[PROBE_HEADER] = "1"


def client(service: str, url: str, probe: bool = True):
    """A boto3 client for the emulator; ``probe`` ones are neither counted nor faulted there."""
    c = boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="test",
                     aws_secret_access_key="test")
    if probe:
        c.meta.events.register_first("before-sign.*.*", _probe_header)
    return c


class Inventory:
    """Seeding the previously serving model and the inventory, against any emulator (``sm``, ``s3``, ``bucket``).

    Shared by ``Reliability`` (an emulator in this process) and ``NativeEmulator`` (the native
    deployment's ``offline-aws`` process).
    """

    sm: object
    s3: object
    bucket: str = BUCKET
    baseline_uri: str = ""

    def put_baseline_model(self) -> None:
        self.baseline_uri = self.put_constant_model(BASELINE_SCORE, "baseline")

    def put_constant_model(self, score: float, name: str) -> str:
        """A Linear Learner artifact that answers ``score`` for every row (NaN: a broken model); its S3 URI."""
        model = LinearLearnerModel("regressor", np.zeros(FEATURES), np.array([score]), loss="squared_loss")
        key = f"reliability/{name}/model.tar.gz"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=write_model_tar_gz(model))
        return f"s3://{self.bucket}/{key}"

    def history_record(self, uri: str) -> dict:
        """A run's history record (``s3://…/history/ENDPOINT/RUN.json``)."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    # --- the previously serving model ------------------------------------------------------
    def seed_config(self, endpoint: str, name: str, tags: list[dict] | None = None, model_uri: str = "") -> str:
        """A model and endpoint config named ``name`` for ``endpoint`` (the baseline model unless ``model_uri``)."""
        if tags is None:
            tags = [{"Key": TAG_PROJECT, "Value": "sagemaker-retrain"}, {"Key": TAG_ENDPOINT, "Value": endpoint}]
        self.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Tags=tags, PrimaryContainer={
            "Image": linear_learner_image(REGION), "ModelDataUrl": model_uri or self.baseline_uri})
        self.sm.create_endpoint_config(EndpointConfigName=name, Tags=tags, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        return name

    def seed_serving_endpoint(self, endpoint: str, timeout: float = 10, tags: list[dict] | None = None,
                              model_uri: str = "") -> str:
        """Deploy the baseline model behind ``endpoint`` (as a former run would have); return its config.

        ``tags=[]`` makes it a foreign endpoint (not the pipeline's); ``model_uri`` serves another artifact."""
        name = self.seed_config(endpoint, f"{endpoint}-baseline", tags, model_uri)
        self.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=name, Tags=tags if tags is not None else [
            {"Key": TAG_PROJECT, "Value": "sagemaker-retrain"}, {"Key": TAG_ENDPOINT, "Value": endpoint}])
        return self.wait_in_service(endpoint, timeout) and name

    def wait_in_service(self, endpoint: str, timeout: float = 10) -> str:
        """Wait until ``endpoint`` is InService; return the config it serves."""
        for _ in range(int(timeout / 0.05)):
            description = self.sm.describe_endpoint(EndpointName=endpoint)
            if description["EndpointStatus"] == "InService":
                return description["EndpointConfigName"]
            time.sleep(0.05)
        raise AssertionError(f"endpoint {endpoint} never came InService")

    # --- inventory ---------------------------------------------------------------------------
    def inventory(self, endpoint: str) -> dict:
        """Every SageMaker resource named after ``endpoint``, and the run prefixes on S3."""
        def named(items, key):
            return sorted(i[key] for i in items if i[key] == endpoint or i[key].startswith(endpoint + "-"))

        endpoints = {}
        for e in self.sm.list_endpoints(MaxResults=100)["Endpoints"]:
            if e["EndpointName"] == endpoint or e["EndpointName"].startswith(endpoint + "-"):
                d = self.sm.describe_endpoint(EndpointName=e["EndpointName"])
                endpoints[d["EndpointName"]] = {"status": d["EndpointStatus"], "config": d["EndpointConfigName"]}
        jobs = {}
        for page in self.sm.get_paginator("list_training_jobs").paginate(NameContains=endpoint):
            for j in page["TrainingJobSummaries"]:
                jobs[j["TrainingJobName"]] = j["TrainingJobStatus"]
        configs = named([c for p in self.sm.get_paginator("list_endpoint_configs").paginate()
                         for c in p["EndpointConfigs"]], "EndpointConfigName")
        models = named([m for p in self.sm.get_paginator("list_models").paginate() for m in p["Models"]],
                       "ModelName")
        return {"endpoints": endpoints, "configs": configs, "models": models, "training_jobs": jobs}

    def s3_prefixes(self, slug: str | None) -> list[str]:
        """Sub-prefixes (input/output/evaluation) left under this run's prefix."""
        if not slug:
            return []
        prefix = f"{PREFIX}/runs/{slug}/"
        out = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/").get("CommonPrefixes", [])
        return sorted(p["Prefix"][len(prefix):].rstrip("/") for p in out)

    def orphans(self, endpoint: str, inventory: dict | None = None) -> list[str]:
        """What a persistent endpoint should not keep: see the module docstring."""
        inv = inventory or self.inventory(endpoint)
        found = []
        keep_configs: set[str] = set()
        for name, e in inv["endpoints"].items():
            if name != endpoint or e["status"] != "InService":
                found.append(f"endpoint {name} ({e['status']})")
                continue
            keep_configs.add(e["config"])
            arn = self.sm.describe_endpoint_config(EndpointConfigName=e["config"])["EndpointConfigArn"]
            tags = {t["Key"]: t["Value"] for t in self.sm.list_tags(ResourceArn=arn)["Tags"]}
            if tags.get(TAG_PREVIOUS_CONFIG):
                keep_configs.add(tags[TAG_PREVIOUS_CONFIG])
        keep_models = set()
        for c in keep_configs & set(inv["configs"]):
            keep_models |= {v["ModelName"] for v in
                            self.sm.describe_endpoint_config(EndpointConfigName=c)["ProductionVariants"]}
        found += [f"endpoint config {c}" for c in inv["configs"] if c not in keep_configs]
        found += [f"model {m}" for m in inv["models"] if m not in keep_models]
        found += [f"training job {j} ({s})" for j, s in inv["training_jobs"].items()
                  if s in ("InProgress", "Stopping")]
        return found

    def jobs_of_run(self, endpoint: str, slug: str | None) -> list[str]:
        if not slug:
            return []
        jobs = self.inventory(endpoint)["training_jobs"]
        return sorted(j for j in jobs if slug in j)


class Reliability(Inventory):
    """The session's emulator and Airflow home, plus the measurements every scenario needs."""

    def __init__(self, home: Path, state_dir: Path):
        self.home, self.state_dir = home, state_dir
        self.emulator = Emulator(time_scale=0).start()
        self.port = self.emulator.port
        self._clients()
        self.s3.create_bucket(Bucket=BUCKET)
        self.env = airflow_env(PROJECT_DIR, home, self.emulator.env(), BUCKET, extra=self.catalog_env(home))
        migrate(self.env)
        self.put_baseline_model()

    def _clients(self) -> None:
        url = self.emulator.url
        self.s3, self.sm, self.runtime = client("s3", url), client("sagemaker", url), client("sagemaker-runtime", url)

    # --- emulator control ------------------------------------------------------------------
    @property
    def faults(self):
        return self.emulator.faults

    def calls(self) -> dict[str, int]:
        return self.emulator.faults.call_counts()

    def set_time_scale(self, scale: float) -> None:
        self.emulator.clock.time_scale = scale

    def restart_emulator(self) -> float:
        """Stop the emulator (state saved as ``--state-dir`` does at shutdown) and start it again on
        the same port from that state, with moto's memory wiped as a process restart would; return
        how long it was down."""
        from offline_aws.admin import reset_moto

        down = time.monotonic()
        scale = self.emulator.clock.time_scale
        calls = self.emulator.faults.call_counts()
        save_state(self.emulator, self.state_dir)
        self.emulator.stop()
        reset_moto()
        for _ in range(50):
            try:
                emulator = Emulator(port=self.port, time_scale=scale)
                break
            except OSError:
                time.sleep(0.1)
        # serves at once, but answers 503 (retried by every SDK) until the saved state is back, as
        # `offline-aws --state-dir` does: a client reconnecting meanwhile never sees an empty emulator
        self.emulator = emulator.start(state_dir=self.state_dir)
        self.emulator.faults.calls.update(calls)  # keep counting across the restart
        self._clients()
        return time.monotonic() - down

    def stop(self) -> None:
        self.emulator.stop()

    # --- running the DAG -----------------------------------------------------------------
    def run(self, conf: dict, timeout: float = 600) -> DagRunResult:
        """``airflow dags test`` one run (blocking)."""
        from offline_aws.airflow_run import dags_test

        return dags_test(self.env, conf=conf, timeout=timeout)

    def start_run(self, conf: dict, logical_date: str | None = None, extra_env: dict | None = None,
                  log: Path | None = None) -> subprocess.Popen:
        """Start a run in its own process group: ``airflow dags test`` or, with ``logical_date``, our
        driver that pins run_after to it (so a re-run after a kill is the same run: same names)."""
        if logical_date:
            cmd = [str(BIN / "python"), str(DRIVER), DAG_ID, logical_date, json.dumps(conf)]
        else:
            cmd = [str(BIN / "airflow"), "dags", "test", DAG_ID, "-c", json.dumps(conf)]
        out = (log or self.home / f"run-{time.monotonic_ns()}.log").open("w")
        return subprocess.Popen(cmd, env={**self.env, **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / "airflow.db", timeout=30)

    def ti_state(self, run_id: str, task_id: str) -> str | None:
        with self.db() as db:
            row = db.execute("SELECT state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
                             (DAG_ID, run_id, task_id)).fetchone()
        return row[0] if row else None

    def latest_run_id(self) -> str | None:
        with self.db() as db:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1",
                             (DAG_ID,)).fetchone()
        return row[0] if row else None

    def result(self, run_id: str, output: str = "", returncode: int = 0) -> DagRunResult:
        states, xcoms = read_run(self.env, DAG_ID, run_id)
        return DagRunResult(returncode, output, run_id, states, xcoms)

    def env_with(self, **extra: str) -> dict[str, str]:
        return airflow_env(PROJECT_DIR, self.home, self.emulator.env(), BUCKET,
                           extra={**self.catalog_env(self.home), **extra})

    @staticmethod
    def catalog_env(home: Path) -> dict[str, str]:
        """A catalog of the walkthrough's model alone: every scenario runs its DAG, and ``airflow dags
        test`` parses and serializes every DAG of the file at each run (the other models' DAGs would
        cost seconds per run and test nothing here; tests/e2e and tests/dags run the whole catalog)."""
        catalog = home / "catalog"
        catalog.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_DIR / "include" / "models" / "housing.yaml", catalog / "housing.yaml")
        return {"SAGEMAKER_RETRAIN_CATALOG_DIR": str(catalog)}


def wait_for(predicate, timeout: float = 120, every: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Probe:
    """Invoke the serving endpoint all the time; classify each answer.

    ``previous`` answers came from the previously serving model, ``other`` from any other
    model (the new one after a successful deployment, or a bad one), ``failed`` raised.
    Downtime is the summed length of runs of failed calls (from the first failure to the next
    success), outside windows the test declares with ``pause()`` (e.g. the emulator restarting).
    """

    sm_url_getter: object
    endpoint: str
    interval: float = 0.02
    previous: int = 0
    other: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    downtime: float = 0.0
    switches: int = 0  # previous -> other -> previous flips
    _stop: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last: str | None = None

    def _answer_is_previous(self, body: bytes) -> bool:
        score = json.loads(body)["predictions"][0]["score"]
        return abs(score - BASELINE_SCORE) < 1e-9

    def _loop(self) -> None:
        url = self.sm_url_getter()
        runtime = client("sagemaker-runtime", url)
        down_since = None
        while not self._stop.is_set():
            if self._paused.is_set():
                down_since = None
                time.sleep(self.interval)
                continue
            if self.sm_url_getter() != url:
                url = self.sm_url_getter()
                runtime = client("sagemaker-runtime", url)
            try:
                body = runtime.invoke_endpoint(EndpointName=self.endpoint, ContentType="text/csv",
                                               Accept="application/json", Body=PROBE_ROW)["Body"].read()
                kind = "previous" if self._answer_is_previous(body) else "other"
                if kind == "previous":
                    self.previous += 1
                else:
                    self.other += 1
                if self._last == "other" and kind == "previous":
                    self.switches += 1
                self._last = kind
                if down_since is not None:
                    self.downtime += time.monotonic() - down_since
                    down_since = None
            except Exception as err:  # noqa: BLE001 - every failure counts
                if self._paused.is_set():
                    continue
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(repr(err)[:200])
                if down_since is None:
                    down_since = time.monotonic()
            time.sleep(self.interval)
        if down_since is not None:
            self.downtime += time.monotonic() - down_since

    def start(self) -> Probe:
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"probe-{self.endpoint}")
        self._thread.start()
        return self

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> Probe:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self

    def summary(self) -> dict:
        return {"probe_calls": self.previous + self.other + self.failed, "answers_previous": self.previous,
                "answers_other": self.other, "failed_calls": self.failed, "downtime_s": round(self.downtime, 3),
                "errors": self.errors}


def slug_of(result: DagRunResult) -> str | None:
    plan = result.xcoms.get("prepare")
    if isinstance(plan, dict):
        return plan.get("slug")
    return None


# The last line of a traceback: ``package.module.ExceptionName: message`` at the start of a line.
_EXCEPTION_LINE = re.compile(r"^((?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Timeout|Failure)))(?:: (.*))?$")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT")  # a new log record ends a multi-line message
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")


@dataclass
class RunError:
    """An exception a task of the run raised, as its traceback ended: ``ExcType: message``."""

    task: str | None
    exc_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.message else self.exc_type


def run_errors(output: str) -> list[RunError]:
    """Every exception the run's tasks raised, in order, read from the ends of the tracebacks in the output
    of ``airflow dags test`` (never a source line of the traceback: that is not the run's message)."""
    errors: list[RunError] = []
    task, in_traceback, current = None, False, None
    for line in output.splitlines():
        started = _TASK_START.search(line)
        if started:
            task = started.group(1)
        if current is not None:  # a message that goes on over several lines
            if not line.strip() or _LOG_LINE.match(line) or line.startswith(("Traceback", "During handling",
                                                                              "The above exception")):
                current = None
            else:
                current.message += "\n" + line.rstrip()
                continue
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
            continue
        if in_traceback and line and not line[0].isspace():
            match = _EXCEPTION_LINE.match(line.rstrip())
            in_traceback = False
            if match:
                current = RunError(task, match.group(2), (match.group(3) or "").strip())
                errors.append(current)
    return errors


def run_reason(output: str, *needles: str) -> str:
    """The run's own message: the first exception it raised whose message holds one of ``needles`` (in the
    order given), else the first exception it raised; "" when it raised none."""
    errors = run_errors(output)
    for needle in needles:
        for error in errors:
            if needle in str(error):
                return str(error)
    return str(errors[0]) if errors else ""


def reason_line(output: str, *needles: str) -> str:
    """The first log line holding one of ``needles``, trimmed (for output without a traceback)."""
    for needle in needles:
        for line in output.splitlines():
            if needle in line:
                line = line.strip()
                start = line.find(needle)
                return line[max(0, start - 120): start + 200]
    return ""


@dataclass
class Row:
    scenario: str
    injected: str
    expected_state: str
    state: str | None
    pipeline_did: str
    reason: str
    resources_left: str
    orphans: list[str]
    downtime_s: float | None
    failed_calls: int | None
    answers_other: int | None
    training_jobs: int
    sagemaker_calls: int
    seconds: float
    note: str = ""
    answers_failed_model: int | None = None
    serving_at_end: str | None = None
    expected_serving: str | None = None

    def write(self) -> None:
        """Append the row (one write of one line: the two xdist workers' rows never mix), with the test module
        that wrote it, so the report orders rows by module as a serial run would."""
        row = {**asdict(self), "module": os.environ.get("PYTEST_CURRENT_TEST", "").split("::", 1)[0]}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (json.dumps(row, default=str) + "\n").encode())
        finally:
            os.close(fd)


def verified_by(sm, endpoint: str, run_id: str | None) -> str | None:
    """The config ``endpoint`` serves, if ``run_id`` made it and verified it (its tags say so), else None."""
    try:
        description = sm.describe_endpoint(EndpointName=endpoint)
        config = sm.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
    except Exception:  # noqa: BLE001 - no endpoint, no config: nothing of the run serves
        return None
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]}
    if description["EndpointStatus"] != "InService" or not run_id:
        return None
    ok = tags.get("sagemaker-retrain:run-id") == run_id[:256] and tags.get("sagemaker-retrain:verified")
    return description["EndpointConfigName"] if ok else None


def answers_from_failed_model(summary: dict | None, challenger_verified_serving: bool) -> int | None:
    """Probe answers, during the run, from a model that did not end the run verified and better than the one it
    replaced on the same rows.

    The probe tells the previously serving model (a constant) from any other; in a scenario the only other
    model is the run's challenger. Its answers count unless it ends the run serving, tagged verified by this
    run (which it can only be after beating the pinned champion on the same rows at the gate, passing the
    smoke test, and being recorded): a model that lost the gate, failed its smoke test, or was rolled back
    (by SageMaker's guardrails or by the pipeline) counts. An older model put back by mistake shows in the
    row's "model serving at the end" beside the one expected.
    """
    if summary is None:
        return None
    return 0 if challenger_verified_serving else summary["answers_other"]


def serving_cell(actual: str | None, expected: str | None) -> str:
    """The report's "model serving at the end" cell: the config, and what was expected when it differs."""
    if actual == expected:
        return f"{actual or 'nothing'} (as expected)"
    return f"{actual or 'nothing'} (EXPECTED {expected or 'nothing'})"


def describe_left(inventory: dict) -> str:
    parts = []
    for name, e in inventory["endpoints"].items():
        parts.append(f"endpoint {name} {e['status']} on {e['config']}")
    parts.append(f"{len(inventory['configs'])} config(s) {inventory['configs']}")
    parts.append(f"{len(inventory['models'])} model(s)")
    running = [j for j, s in inventory["training_jobs"].items() if s in ("InProgress", "Stopping")]
    if running:
        parts.append(f"running jobs {running}")
    return "; ".join(parts)


class NativeEmulator(Inventory):
    """The native deployment's ``offline-aws`` process, seen as the fault matrix sees its own emulator."""

    def __init__(self, url: str, bucket: str):
        self.url, self.bucket = url, bucket
        self.s3, self.sm = client("s3", url), client("sagemaker", url)
        self.put_baseline_model()

    def _admin(self, method: str, route: str, body: dict | None = None) -> dict:
        return call_admin(self.url, route, body, method)

    def calls(self) -> dict[str, int]:
        return self._admin("GET", "state")["calls"]

    def set_time_scale(self, scale: float) -> None:
        self._admin("POST", "config", {"time_scale": scale})
