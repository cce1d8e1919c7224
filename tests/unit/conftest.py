"""Fixtures shared by the unit tests."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def s3(request):
    """moto's in-process S3 with the test module's ``BUCKET`` created."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=request.module.BUCKET)
        yield client
