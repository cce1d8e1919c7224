"""docker-compose.yaml and the native deployment (tests/native_deployment.py) describe one stack.

No Docker engine runs in CI, so the compose file is only ever exercised through its native
twin; these checks keep the two from drifting: the same services and commands, the same Airflow
settings, the same environment variable names, plus the compose file's own promises (loopback
ports, healthchecks, every variable documented in .env.example, the pinned Airflow image).
"""

from __future__ import annotations

import re
import shlex
from importlib.metadata import version

import native_deployment as native
import pytest
import yaml

pytestmark = pytest.mark.deployment

COMPOSE_FILE = native.PROJECT_DIR / "docker-compose.yaml"
OPTIONAL_SERVICES = {"airflow-cli", "flower"}  # behind compose profiles, not started by default
COMPOSE_ONLY = {"AIRFLOW_CONFIG"}  # the image's config file location
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def native_env() -> dict[str, str]:
    deployment = native.NativeDeployment(native.PROJECT_DIR / ".airflow" / "native")
    deployment.redis_db, deployment.emulator_url = 1, "http://127.0.0.1:4566"
    env = deployment.build_env()
    return {k: v for k, v in env.items() if k.startswith(("AIRFLOW", "AWS_", "SAGEMAKER_RETRAIN_")) or k == "PATH"}


def resolve(value) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default (what an empty .env gives)."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in ("-", ":-") else "<required>", str(value))


def command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def test_same_services(compose):
    assert set(compose["services"]) - OPTIONAL_SERVICES == set(native.SERVICES)
    for name in native.LONG_RUNNING:
        assert command(compose["services"][name]) == native.SERVICES[name], name
    init = compose["services"]["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"  # the image's entrypoint: airflow db migrate
    assert native.SERVICES["airflow-init"] == ["db", "migrate"]
    emulator = compose["services"]["offline-aws"]
    assert emulator["entrypoint"] + command(emulator) == ["offline-aws", "--host", "0.0.0.0", "--port", "4566"]


def test_same_environment_variable_names(compose, native_env):
    common = compose["x-airflow-common"]["environment"]
    both = set(native.SHARED_SETTINGS) | set(native.DEPLOYMENT_VARIABLES)
    assert set(common) == both | COMPOSE_ONLY
    assert set(native_env) == both | set(native.NATIVE_ONLY)
    for name, service in compose["services"].items():
        if "environment" in service and name.startswith("airflow-") or name == "flower":
            assert set(common) <= set(service["environment"]), name


def test_same_airflow_settings(compose, native_env):
    common = compose["x-airflow-common"]["environment"]
    for key, value in native.SHARED_SETTINGS.items():
        assert resolve(common[key]).lower() == value.lower() == native_env[key].lower(), key
    # Addresses differ (containers vs loopback) but point at the same things.
    assert resolve(common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).endswith(":8080/execution/")
    assert native_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == native_env["AIRFLOW__API__BASE_URL"] + "/execution/"
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL"):
        assert resolve(common[key]).split(":", 1)[0] == native_env[key].split(":", 1)[0], key
    for key in native.DEPLOYMENT_VARIABLES:
        if key.startswith("AWS_ENDPOINT_URL"):
            assert resolve(common[key]) == "http://offline-aws:4566", key  # offline by default
            assert native_env[key].startswith("http://127.0.0.1:"), key


def test_only_loopback_ports_and_healthchecks(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert resolve(port).startswith("127.0.0.1:"), (name, port)
        if name not in ("airflow-init", "airflow-cli"):
            assert "healthcheck" in service, name
    assert not compose["services"]["postgres"].get("ports") and not compose["services"]["redis"].get("ports")


def test_login_required_and_shared_secrets(compose):
    common = compose["x-airflow-common"]["environment"]
    assert "SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in " ".join(common)  # no anonymous admin
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert resolve(common[key]) == "<required>", key  # one value for all components, from .env


def test_env_example_documents_every_variable():
    text = COMPOSE_FILE.read_text()
    used = {m.group(1) for m in INTERPOLATION.finditer(text)} - {"HOSTNAME"}
    example = (native.PROJECT_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", example, re.MULTILINE))
    assert used <= documented, sorted(used - documented)


def test_dockerfile_pins_the_airflow_of_the_lock():
    dockerfile = (native.PROJECT_DIR / "Dockerfile").read_text()
    image = re.search(r"^FROM apache/airflow:(\S+)", dockerfile, re.MULTILINE).group(1)
    airflow = version("apache-airflow")
    assert image.split("-")[0] == airflow
    assert f"apache-airflow[postgres]=={airflow}" in (native.PROJECT_DIR / "requirements.in").read_text()
    assert "-r /tmp/sagemaker-retrain/requirements.txt" in dockerfile
    assert "ENV PYTHONPATH=/opt/airflow/include" in dockerfile
