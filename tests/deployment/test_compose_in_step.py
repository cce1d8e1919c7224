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
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
ENV_EXAMPLE = native.PROJECT_DIR / ".env.example"
CALL_AWS = {"airflow-worker", "airflow-triggerer"}  # the only services that get static AWS keys


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


class Refused(Exception):
    """Compose would refuse to start: a ``${VAR?message}`` / ``${VAR:?message}`` variable is missing."""


def interpolate(value, env: dict[str, str]) -> str:
    """A compose value as Compose interpolates it with ``env`` (the .env file): ``$$``, ``${VAR}``,
    ``-``/``:-`` defaults, ``?``/``:?`` (raises Refused), ``+``/``:+`` replacements, nested."""
    text, out, i = str(value), [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, k = 1, i + 2
            while depth:
                if text.startswith("${", k):
                    depth, k = depth + 1, k + 2
                    continue
                depth -= text[k] == "}"
                k += 1
            name, op, word = re.match(r"([A-Za-z_]\w*)(?:(:?[-?+])(.*))?$", text[i + 2:k - 1], re.S).groups()
            present = name in env if op and not op.startswith(":") else bool(env.get(name))
            if op is None:
                out.append(env.get(name, ""))
            elif op.endswith("-"):
                out.append(env[name] if present else interpolate(word, env))
            elif op.endswith("?"):
                if not present:
                    raise Refused(f"{name}: {word}")
                out.append(env[name])
            else:
                out.append(interpolate(word, env) if present else "")
            i = k
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def env_example() -> dict[str, str]:
    """The variables .env.example sets (uncommented lines): a fresh `cp .env.example .env`."""
    return dict(re.findall(r"^([A-Za-z_]\w*)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))


def service_env(compose: dict, name: str, env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(v, env) for k, v in (compose["services"][name].get("environment") or {}).items()}


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
    # AWS keys are not common: only the services that call AWS get them (x-aws-credentials).
    assert set(common) | set(compose["x-aws-credentials"]) == both | COMPOSE_ONLY
    assert not set(common) & set(compose["x-aws-credentials"])
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
            assert resolve(common[key]) == "<required>", key  # the AWS mode is an explicit choice
            assert interpolate(common[key], env_example()) == "http://offline-aws:4566", key  # .env.example: offline
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


# --- Security promises of the compose file (static: the YAML and .env.example) ------------------------
def _filled(**overrides) -> dict[str, str]:
    """.env.example with its required secrets filled in (what a user's .env looks like)."""
    env = env_example()
    env.update(AIRFLOW__API_AUTH__JWT_SECRET="j" * 43, AIRFLOW__API__SECRET_KEY="k" * 32,
               AIRFLOW__CORE__FERNET_KEY="f" * 43 + "=", _AIRFLOW_WWW_USER_PASSWORD="a-real-password",
               POSTGRES_PASSWORD="p" * 48, REDIS_PASSWORD="r" * 48)
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


REQUIRED = {  # variable -> a service whose environment needs it
    "_AIRFLOW_WWW_USER_PASSWORD": "airflow-init",
    "AIRFLOW__CORE__FERNET_KEY": "airflow-apiserver",
    "AIRFLOW__API_AUTH__JWT_SECRET": "airflow-apiserver",
    "AIRFLOW__API__SECRET_KEY": "airflow-apiserver",
    "OFFLINE_AWS_URL": "airflow-worker",
    "POSTGRES_PASSWORD": "postgres",
    "REDIS_PASSWORD": "redis",
}


def test_filled_env_example_starts_every_service(compose):
    for name in compose["services"]:
        service_env(compose, name, _filled())


@pytest.mark.parametrize("variable", sorted(REQUIRED))
def test_compose_refuses_to_start_without_the_admin_password_fernet_key_and_secrets(compose, variable):
    """`docker compose up` fails on a missing (or, for the secrets, empty) value: no default password or key."""
    service = REQUIRED[variable]
    with pytest.raises(Refused, match=variable):
        service_env(compose, service, _filled(**{variable: None}))
    if variable != "OFFLINE_AWS_URL":  # empty OFFLINE_AWS_URL means real AWS
        with pytest.raises(Refused, match=variable):
            service_env(compose, service, _filled(**{variable: ""}))
        assert env_example()[variable] == "", f".env.example must not ship a value for {variable}"


def test_no_default_admin_password_anywhere():
    text = COMPOSE_FILE.read_text()
    assert "_AIRFLOW_WWW_USER_PASSWORD:-" not in text and "FERNET_KEY:-" not in text


def test_the_database_and_the_broker_take_their_passwords_from_the_secrets(compose):
    env = _filled()
    common = {k: interpolate(v, env) for k, v in compose["x-airflow-common"]["environment"].items()}
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        assert f"://airflow:{env['POSTGRES_PASSWORD']}@postgres/" in common[key], key
    assert common["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
    assert service_env(compose, "postgres", env)["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    redis = compose["services"]["redis"]
    assert [interpolate(x, env) for x in command(redis)] == ["redis-server", "--requirepass", env["REDIS_PASSWORD"]]
    assert service_env(compose, "redis", env)["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]  # the healthcheck's ping
    assert "airflow:airflow@" not in COMPOSE_FILE.read_text() and "POSTGRES_PASSWORD:-" not in COMPOSE_FILE.read_text()


@pytest.mark.parametrize("mode", ["offline", "real"])
def test_static_aws_keys_reach_only_the_worker_and_the_triggerer(compose, mode):
    key, secret = "AKIAEXAMPLEEXAMPLE00", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    env = _filled(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                  **({"OFFLINE_AWS_URL": "", "COMPOSE_PROFILES": ""} if mode == "real" else {}))
    holders = {name for name in compose["services"]
               if {key, secret} & set(service_env(compose, name, env).values())}
    assert holders == CALL_AWS
    api = service_env(compose, "airflow-apiserver", env)
    if mode == "real":  # nothing at all: boto3 uses the instance profile / task role
        assert not api.get("AWS_ACCESS_KEY_ID") and not api.get("AWS_SECRET_ACCESS_KEY")
        assert not api["AWS_ENDPOINT_URL"]


def test_without_static_keys_the_emulator_gets_placeholders_and_real_aws_gets_nothing(compose):
    for name in CALL_AWS | {"airflow-apiserver", "airflow-init"}:
        offline = service_env(compose, name, _filled())
        assert offline["AWS_ACCESS_KEY_ID"] == "offline-aws-placeholder", name
        real = service_env(compose, name, _filled(OFFLINE_AWS_URL="", COMPOSE_PROFILES=""))
        assert real.get("AWS_ACCESS_KEY_ID", "") == "" and real["AWS_ENDPOINT_URL"] == "", name


def test_real_aws_mode_does_not_depend_on_the_emulator(compose):
    assert compose["services"]["offline-aws"]["profiles"] == ["offline"]
    assert env_example()["COMPOSE_PROFILES"] == "offline"
    for name, service in compose["services"].items():
        dependency = (service.get("depends_on") or {}).get("offline-aws")
        if dependency is not None:
            assert dependency.get("required") is False, name  # skipped when the profile is off


def test_native_harness_sets_a_fernet_key(native_env):
    from cryptography.fernet import Fernet

    Fernet(native_env["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid key, not empty


def test_the_admin_password_is_written_as_json_whatever_it_contains(compose, tmp_path):
    """airflow-init's line that writes the passwords file, run with a password holding `"`, `\\` and `'`."""
    import json
    import os
    import subprocess
    import sys

    script = compose["services"]["airflow-init"]["command"][1]
    (line,) = [x.strip() for x in script.splitlines() if "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in x]
    password, target = 'a"b\\c\'d$e{f}', tmp_path / "passwords.json"
    env = {**os.environ, "_AIRFLOW_WWW_USER_PASSWORD": password,
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target)}
    subprocess.run(["bash", "-c", line.replace("python -c", f"{shlex.quote(sys.executable)} -c", 1)],
                   env=env, check=True, timeout=60)
    assert json.loads(target.read_text()) == {"admin": password}
