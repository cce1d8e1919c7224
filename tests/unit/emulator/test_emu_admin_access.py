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
