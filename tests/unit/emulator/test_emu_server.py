"""The one-port dispatcher: which app answers which request, and the environment it advertises."""

from __future__ import annotations

import pytest

from offline_aws.faults import Faults
from offline_aws.sagemaker.models import SageMakerService
from offline_aws.server import Dispatcher, emulator_env
from offline_aws.settings import Clock


def _auth(service: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x"


@pytest.fixture(scope="module")
def dispatcher():
    return Dispatcher(SageMakerService(clock=Clock(0)), Faults())


@pytest.mark.parametrize(
    ("environ", "app"),
    [
        ({"PATH_INFO": "/_offline_aws/state", "REQUEST_METHOD": "GET"}, "admin"),
        # moto's own routes go through the admin check, whatever the signature says
        ({"PATH_INFO": "/moto-api/data.json", "REQUEST_METHOD": "GET"}, "moto_api"),
        ({"PATH_INFO": "/moto-api/reset", "REQUEST_METHOD": "POST", "HTTP_AUTHORIZATION": _auth("s3")}, "moto_api"),
        ({"PATH_INFO": "/", "REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "SageMaker.ListModels"}, "sagemaker"),
        ({"PATH_INFO": "/endpoints/ep/invocations", "REQUEST_METHOD": "POST",
          "HTTP_AUTHORIZATION": _auth("sagemaker")}, "sagemaker"),
        ({"PATH_INFO": "/endpoints/ep/invocations", "REQUEST_METHOD": "POST"}, "sagemaker"),
        # an S3 object that happens to look like an invocation path stays S3's
        ({"PATH_INFO": "/endpoints/ep/invocations", "REQUEST_METHOD": "POST", "HTTP_AUTHORIZATION": _auth("s3")}, "moto"),
        ({"PATH_INFO": "/bucket/key", "REQUEST_METHOD": "PUT", "HTTP_AUTHORIZATION": _auth("s3")}, "moto"),
        ({"PATH_INFO": "/", "REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Logs_20140328.PutLogEvents",
          "HTTP_AUTHORIZATION": _auth("logs")}, "moto"),
        ({"PATH_INFO": "/", "REQUEST_METHOD": "POST", "HTTP_AUTHORIZATION": _auth("sts")}, "moto"),
    ],
)
def test_routing(dispatcher, environ, app):
    assert dispatcher.pick(environ) == app


def test_env_points_every_client_at_one_url():
    env = emulator_env("http://127.0.0.1:4566")
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER",
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL_STS",
                "AWS_ENDPOINT_URL_IAM"):
        assert env[key] == "http://127.0.0.1:4566"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_DEFAULT_REGION"]) == ("test", "us-east-1")


def test_time_scale_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OFFLINE_AWS_TIME_SCALE", "0.25")
    assert Clock().time_scale == 0.25
    monkeypatch.setenv("OFFLINE_AWS_TIME_SCALE", "-1")
    with pytest.raises(ValueError):
        Clock()
