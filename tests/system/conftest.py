"""Where the system test runs: the offline emulator (``make test``) or real AWS (env vars set).

Real AWS when ``SAGEMAKER_RETRAIN_SYSTEM_ROLE_ARN`` is set: then ``SAGEMAKER_RETRAIN_SYSTEM_BUCKET``
is required, the region and credentials come from boto3's usual chain (``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, an instance role…), no emulator is started, and any ``AWS_ENDPOINT_URL*``
variable is refused (it would point the run somewhere else than the account being checked).

Modules named ``example_*.py`` here are collected as tests, as the Amazon provider's system tests are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
ROLE_ARN_ENV = "SAGEMAKER_RETRAIN_SYSTEM_ROLE_ARN"
BUCKET_ENV = "SAGEMAKER_RETRAIN_SYSTEM_BUCKET"
EMULATOR_BUCKET = "system-tests-bucket"
EMULATOR_ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecution"


def pytest_collect_file(parent, file_path):
    # A file named on the command line is collected by pytest itself, whatever its name.
    if (file_path.name.startswith("example_") and file_path.suffix == ".py"
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@dataclass
class SystemAws:
    """The account the system test runs in: its clients, and the environment for ``airflow dags test``."""

    real: bool
    region: str
    bucket: str
    role_arn: str
    aws_env: dict[str, str]
    emulator: object | None = None
    clients: dict[str, object] = field(default_factory=dict)

    def client(self, service: str):
        if service not in self.clients:
            if self.real:
                self.clients[service] = boto3.session.Session(region_name=self.region).client(service)
            else:
                self.clients[service] = boto3.client(
                    service, endpoint_url=self.emulator.url, region_name=self.region,
                    aws_access_key_id=self.aws_env["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=self.aws_env["AWS_SECRET_ACCESS_KEY"])
        return self.clients[service]


def _real_aws() -> SystemAws:
    endpoints = sorted(k for k in os.environ if k.startswith("AWS_ENDPOINT_URL"))
    if endpoints:
        pytest.fail(f"{ROLE_ARN_ENV} is set (real AWS) but so is {', '.join(endpoints)}: unset it, the system "
                    "test must talk to the account it checks, not to an emulator")
    bucket = os.environ.get(BUCKET_ENV, "").strip()
    if not bucket:
        pytest.fail(f"{ROLE_ARN_ENV} is set (real AWS): set {BUCKET_ENV} to the bucket the run may use too")
    region = boto3.session.Session().region_name
    if not region:
        pytest.fail("real AWS: no region (set AWS_DEFAULT_REGION or a profile's region)")
    # The Airflow processes get boto3's own chain: credentials variables and profile settings as given.
    aws_env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    aws_env.setdefault("AWS_DEFAULT_REGION", region)
    return SystemAws(True, region, bucket, os.environ[ROLE_ARN_ENV].strip(), aws_env)


@pytest.fixture(scope="module")
def system_aws():
    if os.environ.get(ROLE_ARN_ENV, "").strip():
        yield _real_aws()
        return
    from offline_aws.server import start_emulator

    emulator = start_emulator(time_scale=0)
    try:
        env = emulator.env()
        aws = SystemAws(False, env["AWS_DEFAULT_REGION"], EMULATOR_BUCKET, EMULATOR_ROLE_ARN, env, emulator)
        aws.client("s3").create_bucket(Bucket=EMULATOR_BUCKET)
        yield aws
    finally:
        emulator.stop()
