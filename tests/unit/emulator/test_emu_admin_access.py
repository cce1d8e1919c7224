"""The emulator's admin routes: loopback only, unless a token is configured (then it is required)."""

from __future__ import annotations

import urllib.error

import pytest
from werkzeug.test import Client

from offline_aws.admin import TOKEN_HEADER, AdminApp
from offline_aws.admin_client import call_admin
from offline_aws.faults import Faults
from offline_aws.sagemaker.models import SageMakerService
from offline_aws.server import Emulator, start_emulator
from offline_aws.settings import Clock

ADMIN_ROUTES = [("GET", "state"), ("GET", "calls"), ("POST", "faults"), ("DELETE", "faults"),
                ("POST", "config"), ("POST", "reset")]


def _client(token: str | None) -> Client:
    return Client(AdminApp(SageMakerService(clock=Clock(0)), Faults(), token=token))


def _status(client: Client, method: str, route: str, remote: str, headers: dict | None = None) -> int:
    body = {"moto": False} if route == "reset" else {}
    return client.open(f"/_offline_aws/{route}", method=method, json=body if method == "POST" else None,
                       headers=headers or {}, environ_base={"REMOTE_ADDR": remote}).status_code


@pytest.mark.parametrize(("method", "route"), ADMIN_ROUTES)
def test_without_a_token_only_loopback_may_call(monkeypatch, method, route):
    monkeypatch.delenv("OFFLINE_AWS_ADMIN_TOKEN", raising=False)
    client = _client(None)
    for remote in ("127.0.0.1", "127.0.0.5", "::1"):
        assert _status(client, method, route, remote) == 200, remote
    for remote in ("172.18.0.5", "10.0.0.2", "192.168.1.10", "::ffff:10.0.0.2", ""):
        assert _status(client, method, route, remote) == 403, remote


@pytest.mark.parametrize(("method", "route"), ADMIN_ROUTES)
def test_with_a_token_every_caller_must_send_it(method, route):
    client = _client("s3cret-token")
    for remote in ("127.0.0.1", "172.18.0.5"):
        assert _status(client, method, route, remote) == 401
        assert _status(client, method, route, remote, {TOKEN_HEADER: "wrong"}) == 401
        assert _status(client, method, route, remote, {TOKEN_HEADER: "s3cret-token"}) == 200


def test_health_answers_everyone_and_says_nothing_else():
    for token in (None, "t"):
        response = _client(token).get("/_offline_aws/health", environ_base={"REMOTE_ADDR": "172.18.0.5"})
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_token_from_the_environment_and_the_admin_client(monkeypatch):
    monkeypatch.setenv("OFFLINE_AWS_ADMIN_TOKEN", "from-env")
    with Emulator(time_scale=0).start() as emulator:
        assert call_admin(emulator.url, "calls") == {}  # the client sends $OFFLINE_AWS_ADMIN_TOKEN
        monkeypatch.delenv("OFFLINE_AWS_ADMIN_TOKEN")
        with pytest.raises(urllib.error.HTTPError) as refused:
            call_admin(emulator.url, "state")
        assert refused.value.code == 401
        assert call_admin(emulator.url, "state", token="from-env")["time_scale"] == 0


def test_a_live_emulator_on_loopback_needs_no_token(monkeypatch):
    monkeypatch.delenv("OFFLINE_AWS_ADMIN_TOKEN", raising=False)
    emulator = start_emulator(time_scale=0)
    try:
        assert call_admin(emulator.url, "config", {"time_scale": 0}) == {"time_scale": 0.0}
    finally:
        emulator.stop()


def test_cli_flag(monkeypatch):
    from offline_aws import __main__ as cli

    seen = {}

    class Stop(Exception):
        pass

    def fake_emulator(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(cli, "Emulator", fake_emulator)
    with pytest.raises(Stop):
        cli.main(["--admin-token", "flag-token", "--port", "0"])
    assert seen["admin_token"] == "flag-token"


# moto's own /moto-api/* routes (issue 24, finding 2): the same check as the admin routes.

MOTO_API_ROUTES = [("GET", "/moto-api/data.json"), ("POST", "/moto-api/reset"), ("GET", "/moto-api/"),
                   ("POST", "/moto-api/reset-auth"), ("POST", "/moto-api/seed?a=42")]


def _dispatcher_client(token: str | None) -> Client:
    from offline_aws.server import Dispatcher

    return Client(Dispatcher(SageMakerService(clock=Clock(0)), Faults(), admin_token=token))


@pytest.mark.parametrize(("method", "path"), MOTO_API_ROUTES)
def test_moto_api_without_a_token_only_loopback(monkeypatch, method, path):
    monkeypatch.delenv("OFFLINE_AWS_ADMIN_TOKEN", raising=False)
    client = _dispatcher_client(None)
    for remote in ("172.18.0.5", "10.0.0.2", "::ffff:10.0.0.2", ""):
        response = client.open(path, method=method, environ_base={"REMOTE_ADDR": remote})
        assert response.status_code == 403, remote
        assert b"the admin routes answer only on loopback" in response.data
    if method == "POST":
        return  # not reset or reseed moto's process-wide state under the other tests' feet
    response = client.open(path, method=method, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200


@pytest.mark.parametrize(("method", "path"), MOTO_API_ROUTES)
def test_moto_api_with_a_token_every_caller_must_send_it(method, path):
    client = _dispatcher_client("s3cret-token")
    for remote in ("127.0.0.1", "172.18.0.5"):
        for headers in ({}, {TOKEN_HEADER: "wrong"}):
            response = client.open(path, method=method, headers=headers, environ_base={"REMOTE_ADDR": remote})
            assert response.status_code == 401, (remote, headers)


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-origin"}])
@pytest.mark.parametrize("path", ["/moto-api/data.json", "/_offline_aws/state"])
def test_a_web_page_in_the_machines_browser_is_refused(monkeypatch, headers, path):
    """Loopback without a token is not enough for a page: moto answers /moto-api with CORS ``*``."""
    monkeypatch.delenv("OFFLINE_AWS_ADMIN_TOKEN", raising=False)
    for token, extra in ((None, {}), ("t0k", {TOKEN_HEADER: "t0k"})):
        response = _dispatcher_client(token).open(path, method="GET", headers={**headers, **extra},
                                                  environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert response.status_code == 403, (token, headers)
    # the person's own navigation (typed URL, bookmark) is not a page's request
    response = _dispatcher_client(None).open(path, method="GET", headers={"Sec-Fetch-Site": "none"},
                                             environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200


def _http(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_a_live_emulator_keeps_its_secrets_and_buckets_from_moto_api(monkeypatch):
    """The back door of issue 24: data.json leaked the service user's secret key, reset wiped S3."""
    import boto3

    monkeypatch.delenv("OFFLINE_AWS_ADMIN_TOKEN", raising=False)
    with Emulator(time_scale=0, admin_token="adm1n", enforce_iam=True).start() as emulator:
        env = emulator.env()
        secret = env["AWS_SECRET_ACCESS_KEY"]
        s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=secret)
        s3.create_bucket(Bucket="keep-me")
        for method, path in (("GET", "/moto-api/data.json"), ("POST", "/moto-api/reset"),
                             ("GET", "//moto-api/data.json"), ("GET", "/moto-api/data.json?x=1")):
            status, body = _http(f"{emulator.url}{path}", method)
            assert status in (401, 403, 404), (path, status)
            assert secret.encode() not in body, path
        assert "keep-me" in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # moto's state is process-wide
        status, body = _http(f"{emulator.url}/moto-api/data.json", headers={TOKEN_HEADER: "adm1n"})
        assert status == 200 and b"iam" in body  # the admin still has moto's dashboard data
        status, _ = _http(f"{emulator.url}/moto-api/data.json",
                          headers={TOKEN_HEADER: "adm1n", "Origin": "http://localhost:8080"})
        assert status == 403
