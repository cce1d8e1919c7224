"""Fixtures for the emulator's backend tests: moto's in-process mock stands in for S3/Logs."""

from __future__ import annotations

import boto3
import pytest
from emu_helpers import BUCKET, housing_split, to_csv
from moto import mock_aws

from offline_aws.aws_clients import AwsClients
from offline_aws.faults import Faults
from offline_aws.sagemaker.models import SageMakerBackend
from offline_aws.settings import Clock


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL_CLOUDWATCH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        (ytr, Xtr), (yva, Xva), _ = housing_split()
        half = len(ytr) // 2
        s3.put_object(Bucket=BUCKET, Key="housing/train/part-0000.csv", Body=to_csv(ytr[:half], Xtr[:half]))
        s3.put_object(Bucket=BUCKET, Key="housing/train/part-0001.csv", Body=to_csv(ytr[half:], Xtr[half:]))
        s3.put_object(Bucket=BUCKET, Key="housing/validation/data.csv", Body=to_csv(yva, Xva))
        yield s3


@pytest.fixture
def backend(aws):
    b = SageMakerBackend(clock=Clock(0), faults=Faults(), aws=AwsClients(None))
    yield b
    with b.lock:  # release any held background thread
        b.clock.time_scale = 0
        for job in b.training_jobs.values():
            job.stop_requested.set()

