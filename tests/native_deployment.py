"""The docker-compose topology started natively: one Airflow component per process, CeleryExecutor.

No Docker engine runs on CI machines, so the tests build the stack of ``docker-compose.yaml``
from what the machine has: its PostgreSQL (a database of our own, dropped at the end) and
Redis (a database number of our own, flushed at the end) where they answer, else servers of our
own started from wheels of the dev lock (``tests/local_services.py``); ``airflow db migrate`` (the compose
file's ``airflow-init``), then api-server, scheduler, dag-processor, triggerer, a Celery worker
and the offline AWS emulator, each a process in its own process group on free loopback ports.

``SERVICES``, ``SHARED_SETTINGS`` and ``DEPLOYMENT_VARIABLES`` are what
``tests/deployment/test_compose_in_step.py`` compares with ``docker-compose.yaml``.

The deployment is shared by ``tests/deployment`` and ``tests/browser`` through
``acquire()``/``release()``: the first session fixture starts it, the last one stops it.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import local_services

from offline_aws.admin_client import call_admin
from offline_aws.airflow_run import airflow_env, create_pools
from offline_aws.server import emulator_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAG_ID = "sagemaker_retrain"
ADMIN_USER = "admin"
# A second person, role User: may trigger runs and answer approvals, but never approve a run they triggered.
OPERATOR_USER = "operator"
# Realistic pace (training ~5 s, endpoint creation 5 s): at time scale 0 every job is finished
# before the operator's first describe, so nothing would ever be handed to the triggerer.
EMULATOR_TIME_SCALE = 1.0
# The watched prefix of new data and its notification suffixes (one object, or a multi-part drop's manifest).
WATCH_PREFIX = "sagemaker-retrain/incoming/"
WATCH_SUFFIXES = (".csv", ".manifest.json")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

# compose service -> how the native run starts it (None: provided by the machine or run once).
SERVICES: dict[str, list[str] | None] = {
    "postgres": None,  # the machine's PostgreSQL (else our own: local_services), a database of our own
    "redis": None,  # the machine's Redis (else our own: local_services), a database number of our own
    "offline-aws": None,  # `offline-aws`, started below
    "airflow-init": ["db", "migrate"],
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
LONG_RUNNING = [name for name, cmd in SERVICES.items() if cmd and name != "airflow-init"]

# Airflow settings with the same value in docker-compose.yaml and here.
SHARED_SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{OPERATOR_USER}:user",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
    # The deployment's opt-in speed-ups (include/airflow_deployment/, README).
    "AIRFLOW__AWS__SESSION_FACTORY": "airflow_deployment.aws_session.FastCallerSessionFactory",
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_deployment.celery_worker.CELERY_CONFIG",
    # A task's supervisor notices its process's exit within 1 s, not 5 (docs/upstream.md §7).
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
}

# Set in both, with a value per deployment (addresses, secrets, the pipeline's settings).
DEPLOYMENT_VARIABLES: list[str] = [
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET",
    "AIRFLOW_VAR_SAGEMAKER_RETRAIN_ROLE_ARN",
    "AIRFLOW_VAR_SAGEMAKER_RETRAIN_REGION",
    "SAGEMAKER_RETRAIN_AWS_CONN_ID",
    "SAGEMAKER_RETRAIN_POLL_SECONDS",
    "SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS",
    "SAGEMAKER_RETRAIN_DEADLINE_HOURS",
    "SAGEMAKER_RETRAIN_SCHEDULE",
    "SAGEMAKER_RETRAIN_WATCH_QUEUE_URL",
    "AIRFLOW_VAR_SAGEMAKER_RETRAIN_WATCH_PREFIX",
    *emulator_env("http://offline-aws:4566"),
]

# Native only: what containers get from isolation (own ports, own paths, the image's defaults).
NATIVE_ONLY: list[str] = [
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__LOGGING__LOGGING_LEVEL",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__HOST",
    "PATH",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DeploymentError(RuntimeError):
    pass


@dataclass
class NativeDeployment:
    """A running native deployment; ``api()`` talks to its REST API with a JWT of the admin user."""

    root: Path
    name: str = field(default_factory=lambda: f"airflow_native_{uuid.uuid4().hex[:10]}")
    bucket: str = "sagemaker-retrain-native"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    operator_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    redis_db: int | None = None
    database_created: bool = False
    # PostgreSQL and Redis: the machine's where they answer, else our own (None: env NATIVE_DEPLOYMENT_OWN_SERVICES).
    own_services: bool | None = None
    services: local_services.Services = field(default_factory=local_services.Services)
    api_port: int = 0
    emulator_url: str = ""
    watch_queue_url: str = ""
    # Merged last into every Airflow process's environment (e.g. a benchmark's catalog directory, poll seconds).
    extra_env: dict[str, str] = field(default_factory=dict)
    # The emulator's command before its --port/--time-scale (a benchmark's recording wrapper); None: offline-aws.
    emulator_command: list[str] | None = None
    _token: str | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    # --- start -------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.root / self.name

    @property
    def log_dir(self) -> Path:
        return self.home / "process-logs"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> NativeDeployment:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        _check_celery_executor_imports()
        self.home.mkdir(parents=True)
        self.log_dir.mkdir()
        self.services = local_services.start(self.own_services)
        self._create_database()
        self._claim_redis_db()
        self._start_emulator()
        self.env = self.build_env()
        passwords = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        passwords.write_text(json.dumps({ADMIN_USER: self.password, OPERATOR_USER: self.operator_password}) + "\n")
        self._run_once("airflow-init", timeout=300)
        create_pools(self.env)  # as compose's airflow-init: one pool per endpoint of the model catalog
        for service in LONG_RUNNING:
            self._spawn(service, [str(BIN / "airflow"), *SERVICES[service]], self.env)
        self._wait_healthy(timeout=240)

    def build_env(self) -> dict[str, str]:
        """The environment of every Airflow process: airflow_run's, plus the compose file's settings."""
        db_url = self.services.pg_url(self.name)
        self.api_port = free_port()
        from cryptography.fernet import Fernet

        extra = dict(SHARED_SETTINGS)
        extra.update(
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url,
            AIRFLOW__CELERY__BROKER_URL=self.services.redis_url(self.redis_db),
            AIRFLOW__CELERY__RESULT_BACKEND="db+" + self.services.pg_url(self.name, driver="postgresql"),
            AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "simple_auth_manager_passwords.json"),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(24),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(free_port()),
            # Triggered runs only: a scheduled run would queue ahead of the test's (max_active_runs=1).
            SAGEMAKER_RETRAIN_SCHEDULE="",
            # New data under the watched prefix starts a run (S3 notification -> SQS -> AssetWatcher).
            SAGEMAKER_RETRAIN_WATCH_QUEUE_URL=self.watch_queue_url,
            AIRFLOW_VAR_SAGEMAKER_RETRAIN_WATCH_PREFIX=f"s3://{self.bucket}/{WATCH_PREFIX}",
        )
        env = airflow_env(PROJECT_DIR, self.home, emulator_env(self.emulator_url), self.bucket,
                          poll_seconds=1, extra=extra)
        # airflow_run turns the deadline alert off for `airflow dags test` (apache/airflow#73428, the DAG's
        # default too); a deployment with a scheduler turns it on, as docker-compose.yaml does.
        env["SAGEMAKER_RETRAIN_DEADLINE_HOURS"] = "2"
        # As docker-compose.yaml's default: every wait is the triggerer's (the emulator runs at time scale 1
        # here, so jobs take seconds, and test_native_deployment checks the deferrals). The benchmark's
        # deployment turns the short watch on (bench/bench_orchestration.py).
        env["SAGEMAKER_RETRAIN_SHORT_WAIT_SECONDS"] = "0"
        # Last, so a caller's settings win; create_pools sees them too (a catalog directory's endpoints).
        env.update(self.extra_env)
        return env

    def _create_database(self) -> None:
        _admin_sql(self.services.pg_dsn, f'CREATE DATABASE "{self.name}"')
        self.database_created = True

    def _claim_redis_db(self) -> None:
        import redis

        for number in range(15, 0, -1):
            client = redis.Redis(self.services.redis_host, self.services.redis_port, db=number)
            if client.dbsize() == 0 and client.set("native-deployment-owner", self.name, nx=True):
                self.redis_db = number
                return
        raise DeploymentError("no empty Redis database number (1-15) to claim")

    def _start_emulator(self) -> None:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        cmd = [*(self.emulator_command or [str(BIN / "offline-aws")]), "--port", str(port),
               "--time-scale", str(EMULATOR_TIME_SCALE)]
        self._spawn("offline-aws", cmd, env)
        self.emulator_url = f"http://127.0.0.1:{port}"
        self._wait_for(lambda: _http_ok(f"{self.emulator_url}/_offline_aws/state"), 60, "offline-aws")
        self.s3().create_bucket(Bucket=self.bucket)
        self._watch_new_data()

    def _watch_new_data(self) -> None:
        """What infra/ creates on AWS: the queue and the bucket's notifications of the watched prefix."""
        import boto3

        s3 = self.s3()
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        sqs = boto3.client("sqs", endpoint_url=self.emulator_url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        self.watch_queue_url = sqs.create_queue(QueueName=f"{self.name}-new-data")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.watch_queue_url, AttributeNames=["QueueArn"])["Attributes"]
        rules = [{"Id": f"new-data{suffix}", "QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"],
                  "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": WATCH_PREFIX},
                                                     {"Name": "suffix", "Value": suffix}]}}}
                 for suffix in WATCH_SUFFIXES]
        s3.put_bucket_notification_configuration(Bucket=self.bucket,
                                                 NotificationConfiguration={"QueueConfigurations": rules})
        sqs.purge_queue(QueueUrl=self.watch_queue_url)  # S3's s3:TestEvent: no run for it

    def _spawn(self, service: str, cmd: list[str], env: dict[str, str]) -> None:
        self.commands[service] = (cmd, env)
        log = open(self.log_dir / f"{service}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[service] = subprocess.Popen(
            cmd, env=env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def _run_once(self, service: str, timeout: float) -> None:
        with open(self.log_dir / f"{service}.log", "ab") as log:
            proc = subprocess.run([str(BIN / "airflow"), *SERVICES[service]], env=self.env, cwd=self.home,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode:
            raise DeploymentError(f"{service} failed (exit {proc.returncode}):\n{self.log_tail(service)}")

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
            if dead:
                name = next(iter(dead))
                raise DeploymentError(f"{name} exited ({dead[name]}) while waiting for {what}:\n{self.log_tail(name)}")
            if ready():
                return
            time.sleep(1)
        raise DeploymentError(f"{what} not ready within {timeout:.0f} s\n" + self.all_log_tails())

    def _wait_healthy(self, timeout: float) -> None:
        def healthy() -> bool:
            try:
                health = self.api("GET", "/api/v2/monitor/health", auth=False)
            except (OSError, DeploymentError):
                return False
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

        self._wait_for(healthy, timeout, "api-server, scheduler, triggerer and dag-processor health")
        self._wait_for(lambda: _http_ok(f"http://127.0.0.1:{self.env['AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT']}/",
                                        any_status=True), timeout, "the Celery worker's log server")

    # --- use ---------------------------------------------------------------------------------
    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.emulator_url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def sagemaker(self):
        import boto3

        return boto3.client("sagemaker", endpoint_url=self.emulator_url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def token(self, user: str = ADMIN_USER) -> str:
        """A JWT from the api-server's token endpoint (what the UI's login does) for ``user``."""
        if user == ADMIN_USER and self._token is not None:
            return self._token
        if user not in self._tokens:
            password = self.password if user == ADMIN_USER else self.operator_password
            answer = self.api("POST", "/auth/token", {"username": user, "password": password}, auth=False)
            self._tokens[user] = answer["access_token"]
        return self._tokens[user]

    def api(self, method: str, path: str, body: dict | None = None, auth: bool = True, user: str = ADMIN_USER):
        """The REST API as ``user`` (the admin unless told; ``OPERATOR_USER`` is the second person)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise DeploymentError(f"{method} {path} -> {err.code}: {err.read()[:2000]!r}") from err
        return json.loads(raw) if raw else None

    def wait_for_dag(self, timeout: float = 180, dag_id: str = DAG_ID) -> dict:
        """The DAG as the REST API shows it, once the dag-processor has parsed it."""
        found: dict = {}

        def parsed() -> bool:
            try:
                found.update(self.api("GET", f"/api/v2/dags/{dag_id}"))
                return True
            except DeploymentError:
                return False

        self._wait_for(parsed, timeout, f"the dag-processor to parse {dag_id}")
        return found

    def wait_for_run(self, run_id: str, timeout: float = 600, seen: dict | None = None) -> dict:
        """Poll the run until it finishes; record every task state seen on the way in ``seen``."""
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seen is not None:
                for ti in self.api("GET", f"{path}/taskInstances")["task_instances"]:
                    seen.setdefault(ti["task_id"], set()).add(ti["state"])
            run = self.api("GET", path)
            if run["state"] in ("success", "failed"):
                return run
            dead = [name for name, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise DeploymentError(f"{dead} exited during the run\n" + self.all_log_tails())
            time.sleep(0.5)
        raise DeploymentError(f"run {run_id} not finished in {timeout:.0f} s\n" + self.all_log_tails())

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task's log; a mapped instance is named ``TASK_INDEX`` (as in :meth:`task_instances`)."""
        task_id, _, index = task_id.rpartition("_") if task_id.rpartition("_")[2].isdigit() else (task_id, "", "-1")
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        answer = self.api("GET", path + f"?full_content=true&map_index={index}")
        content = answer.get("content", answer)
        if isinstance(content, list):
            return "\n".join(c if isinstance(c, str) else json.dumps(c) for c in content)
        return str(content)

    def log_tail(self, service: str, chars: int = 4000) -> str:
        path = self.log_dir / f"{service}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def all_log_tails(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {name} ---\n{self.log_tail(name, chars)}" for name in self.procs)

    # --- acting on a running deployment (the reliability suite's process faults) ------------------
    def restart(self, service: str, sig: int = signal.SIGTERM, grace: float = 60) -> float:
        """Stop one component (``sig`` to its process group; SIGKILL after ``grace`` s) and start it again
        with the same command and environment, as ``docker compose restart SERVICE`` does; return how long
        it was down."""
        proc = self.procs[service]
        down = time.monotonic()
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
        _signal_group(proc, signal.SIGKILL)  # strays of the old group (e.g. the triggerer's runner subprocess)
        cmd, env = self.commands[service]
        self._spawn(service, cmd, env)
        return time.monotonic() - down

    def emulator_admin(self, method: str, route: str, body: dict | None = None) -> dict:
        """The emulator's admin routes (``/_offline_aws/state``, ``/_offline_aws/config``)."""
        return call_admin(self.emulator_url, route, body, method)

    def set_time_scale(self, scale: float) -> None:
        self.emulator_admin("POST", "config", {"time_scale": scale})

    def trigger(self, conf: dict, user: str = ADMIN_USER) -> str:
        """Trigger a run as the UI's Trigger form does (as ``user``); return its run id."""
        run = self.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf}, user=user)
        return run["dag_run_id"]

    def set_run_state(self, run_id: str, state: str, note: str | None = None) -> dict:
        """What the UI's "Mark run as failed/success" does: PATCH the run's state."""
        body = {"state": state, **({"note": note} if note else {})}
        return self.api("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", body)

    def task_instances(self, run_id: str) -> dict[str, dict]:
        """Every task instance of the run by task id; a mapped one as ``TASK_INDEX`` (Airflow's get_task_states naming)."""
        answer = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}_{ti['map_index']}": ti
                for ti in answer["task_instances"]}

    def xcom(self, run_id: str, task_id: str, key: str = "return_value"):
        """A task's XCom (deserialized), or None when it has none."""
        try:
            entry = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
                                    f"/xcomEntries/{key}?deserialize=true")
        except DeploymentError:
            return None
        value = entry["value"]
        try:
            return json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return value

    # --- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every process group we started, drop the database, free the Redis db, stop our own servers."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)  # also strays left by a process that did exit
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.redis_db is not None:
            import redis

            redis.Redis(self.services.redis_host, self.services.redis_port, db=self.redis_db).flushdb()
            self.redis_db = None
        if self.database_created:
            _admin_sql(self.services.pg_dsn, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.database_created = False
        self.services.stop()


def _check_celery_executor_imports() -> None:
    """Fail fast, with the reason, when the pinned celery and Celery provider do not fit together."""
    proc = subprocess.run([sys.executable, "-c", "import airflow.providers.celery.executors.celery_executor_utils"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise DeploymentError("CeleryExecutor cannot be imported with the pinned packages (e.g. celery 5.7 "
                              "removed celery.backends.database.retry, which apache-airflow-providers-celery "
                              f"3.26.0 imports; pin celery<5.7):\n{proc.stderr[-1500:]}")


def _admin_sql(dsn: str, statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        conn.cursor().execute(statement)
    finally:
        conn.close()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this process leads (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _http_ok(url: str, any_status: bool = False) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return any_status
    except OSError:
        return False


# --- one deployment per test session, shared by tests/deployment and tests/browser ------------
_shared: dict = {"deployment": None, "error": None, "users": 0}


def acquire() -> NativeDeployment:
    if _shared["error"] is not None:
        raise DeploymentError(f"the native deployment failed to start earlier: {_shared['error']}")
    if _shared["deployment"] is None:
        root = PROJECT_DIR / ".airflow" / "native"
        root.mkdir(parents=True, exist_ok=True)
        try:
            _shared["deployment"] = NativeDeployment(root).start()
        except BaseException as err:
            _shared["error"] = err
            raise
        atexit.register(_stop_shared)
    _shared["users"] += 1
    return _shared["deployment"]


def release(keep_files: bool = False) -> None:
    _shared["users"] -= 1
    if _shared["users"] <= 0:
        _stop_shared(keep_files)


def stop_shared(keep_files: bool = False) -> None:
    """Stop the shared deployment now (tests/conftest.py: after the last test that uses it); the session
    fixtures' release() then finds nothing left to stop."""
    _stop_shared(keep_files)


def _stop_shared(keep_files: bool = False) -> None:
    deployment = _shared["deployment"]
    if deployment is None:
        return
    _shared["deployment"] = None
    deployment.stop()
    if not keep_files:
        shutil.rmtree(deployment.home, ignore_errors=True)
