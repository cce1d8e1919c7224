"""An emulator and an Airflow home shared by the end-to-end DAG tests of one module."""

from __future__ import annotations

import io
import os
import time
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import boto3
import numpy as np
import pytest

from offline_aws.airflow_run import airflow_env
from offline_aws.server import start_emulator

PROJECT_DIR = Path(__file__).resolve().parents[2]
BUCKET = "e2e-bucket"


class OfflineAws:
    """The started emulator plus boto3 clients and the env for ``airflow dags test``."""

    def __init__(self, emulator, home: Path):
        self.emulator = emulator
        kwargs = {"endpoint_url": emulator.url, "region_name": "us-east-1", "aws_access_key_id": "test",
                  "aws_secret_access_key": "test"}
        self.s3 = boto3.client("s3", **kwargs)
        self.sm = boto3.client("sagemaker", **kwargs)
        self.runtime = boto3.client("sagemaker-runtime", **kwargs)
        self.cloudwatch = boto3.client("cloudwatch", **kwargs)
        self.bucket = BUCKET
        self.s3.create_bucket(Bucket=BUCKET)
        self.env = airflow_env(PROJECT_DIR, home, emulator.env(), BUCKET)

    def inventory(self) -> dict[str, list[str]]:
        return {
            "endpoints": sorted(e["EndpointName"] for e in self.sm.list_endpoints()["Endpoints"]),
            "configs": sorted(c["EndpointConfigName"] for c in self.sm.list_endpoint_configs()["EndpointConfigs"]),
            "models": sorted(m["ModelName"] for m in self.sm.list_models()["Models"]),
        }

    def put_foreign_endpoint(self, name: str) -> None:
        """An InService endpoint someone else made (no project tags), on a real Linear Learner artifact."""
        from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
        from sagemaker_retrain.images import linear_learner_image

        model = LinearLearnerModel("regressor", np.zeros(12), np.array([1.0]), loss="squared_loss")
        self.s3.put_object(Bucket=BUCKET, Key=f"foreign/{name}/model.tar.gz", Body=write_model_tar_gz(model))
        self.sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/Other",
                             PrimaryContainer={"Image": linear_learner_image("us-east-1"),
                                               "ModelDataUrl": f"s3://{BUCKET}/foreign/{name}/model.tar.gz"})
        self.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for _ in range(200):
            if self.sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService":
                return
            time.sleep(0.05)
        raise AssertionError(f"foreign endpoint {name} never came InService")

    def read_channel(self, uri: str) -> np.ndarray:
        bucket, _, prefix = uri[5:].partition("/")
        objects = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        parts = [np.loadtxt(io.BytesIO(self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()),
                            delimiter=",", ndmin=2) for o in objects]
        return np.vstack(parts)


@pytest.fixture(scope="module")
def offline_aws(tmp_path_factory):
    emulator = start_emulator(time_scale=0)
    try:
        yield OfflineAws(emulator, tmp_path_factory.mktemp("airflow-home"))
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def emulator():
    """An emulator (time scale 0) whose endpoint is this process's AWS environment for the module,
    as ``offline-aws``'s export lines would make it: the provider's hooks and triggers find it there."""
    emu = start_emulator(time_scale=0)
    saved = {k: os.environ.get(k) for k in emu.env()}
    os.environ.update(emu.env())
    try:
        yield emu
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        emu.stop()


class SmtpSink:
    """A real SMTP server on loopback (aiosmtpd) keeping every mail it receives."""

    def __init__(self):
        import socket

        from aiosmtpd.controller import Controller

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.mails: list[dict] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=email_policy)
        body = message.get_body(preferencelist=("html", "plain"))
        self.mails.append({"to": ", ".join(envelope.rcpt_tos), "subject": str(message["subject"]),
                           "body": body.get_content() if body else ""})
        return "250 OK"

    def start(self) -> SmtpSink:
        self.controller.start()
        self.conn_uri = f"smtp://127.0.0.1:{self.port}?disable_tls=true&disable_ssl=true&from_email=airflow%40example.com"
        return self

    def wait_for(self, match, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.mails if match(m)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no matching mail within {timeout} s; got {[m['subject'] for m in self.mails]}")


@pytest.fixture(scope="module")
def smtp():
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.controller.stop()
