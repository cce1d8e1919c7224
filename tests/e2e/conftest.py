"""An emulator and an Airflow home shared by the end-to-end DAG tests of one module."""

from __future__ import annotations

import io
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
        self.s3.create_bucket(Bucket=BUCKET)
        self.env = airflow_env(PROJECT_DIR, home, emulator.env(), BUCKET)

    def inventory(self) -> dict[str, list[str]]:
        return {
            "endpoints": sorted(e["EndpointName"] for e in self.sm.list_endpoints()["Endpoints"]),
            "configs": sorted(c["EndpointConfigName"] for c in self.sm.list_endpoint_configs()["EndpointConfigs"]),
            "models": sorted(m["ModelName"] for m in self.sm.list_models()["Models"]),
        }

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
