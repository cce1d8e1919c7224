"""One port for the whole offline AWS: our SageMaker + admin routes, and moto for everything else.

Clients pick services by signing scope and headers, not by host name (every service shares
``AWS_ENDPOINT_URL``), so the dispatcher routes on X-Amz-Target, the SigV4 credential scope
and the Runtime's invocation path.
"""

from __future__ import annotations

import json
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from . import DEFAULT_REGION
from .admin import PREFIX as ADMIN_PREFIX
from .admin import AdminApp
from .faults import Faults
from .iam_enforcement import (
    AccessDenied,
    IamEnforcer,
    decided_here,
    enabled_by_env,
    moto_access_control_off,
    moto_access_control_on,
)
from .iam_requests import cloudwatch_operation, cloudwatch_requests, logs_requests, s3_requests
from .sagemaker.models import SageMakerService
from .sagemaker.responses import INVOCATIONS, SageMakerResponses, credential_scope
from .settings import Clock

SAGEMAKER_SCOPES = {"sagemaker", "runtime.sagemaker"}


class QuietRequestHandler(MotoRequestHandler):
    """moto's handler (keeps underscored headers) without one access-log line per request."""

    def log_request(self, code="-", size="-"):
        pass


class Dispatcher:
    """The WSGI entry point: send each request to SageMaker, the admin API or moto."""

    def __init__(self, service: SageMakerService, faults: Faults, admin_token: str | None = None,
                 enforcer: IamEnforcer | None = None):
        self.sagemaker = SageMakerResponses(service, enforcer)
        self.admin = AdminApp(service, faults, token=admin_token)
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.faults = faults
        self.enforcer = enforcer

    def pick(self, environ) -> str:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return "admin"
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("SageMaker."):
            return "sagemaker"
        _, scope = credential_scope(environ.get("HTTP_AUTHORIZATION"))
        if scope in SAGEMAKER_SCOPES:
            return "sagemaker"
        if scope is None and environ.get("REQUEST_METHOD") == "POST" and INVOCATIONS.match(path):
            return "sagemaker"
        return "moto"

    def __call__(self, environ, start_response):
        target = self.pick(environ)
        if target == "moto":
            status = self.faults.on_s3_call(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
            if status is not None:  # the s3_error fault: S3's own error envelope
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We '
                        b"encountered an internal error. Please try again.</Message></Error>")
                start_response(f"{status} Internal Server Error",
                               [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                return [body]
            if self.enforcer is not None:
                return self._moto_enforced(environ, start_response)
        return getattr(self, target)(environ, start_response)

    # --- IAM enforcement of the moto-served services we describe (iam_enforcement.py) ---------------
    def _moto_enforced(self, environ, start_response):
        region, scope = credential_scope(environ.get("HTTP_AUTHORIZATION"))
        region = region or DEFAULT_REGION
        account = self.enforcer.account_id
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        describe = None
        if scope == "s3" or (scope is None and not target and not path.startswith("/moto-api")):
            method = environ.get("REQUEST_METHOD", "GET")
            describe = ("s3", lambda body: s3_requests(method, path, query, _Headers(environ), body))
        elif scope == "monitoring" and cloudwatch_operation(path, target):
            operation = cloudwatch_operation(path, target)
            describe = ("cloudwatch", lambda body: cloudwatch_requests(
                operation, body, region, account, lambda name: _alarm_exists(account, region, name)))
        elif scope == "logs" and target.startswith("Logs_"):
            describe = ("logs", lambda body: logs_requests(target, body, region, account))
        if describe is None:  # moto's own access control decides
            return self.moto(environ, start_response)
        service, requests = describe
        body = _body(environ, read_all=service != "s3" or environ.get("REQUEST_METHOD") == "POST")
        try:
            caller = self.enforcer.caller(environ, body, "s3" if service == "s3" else scope or "s3")
            self.enforcer.authorize(caller, requests(body))
        except AccessDenied as exc:
            return _denied(service, exc.message, path, start_response)
        with decided_here():
            return list(self.moto(environ, start_response))


class _Headers:
    """Case-insensitive request headers from a WSGI environ (only ``get``)."""

    def __init__(self, environ):
        self.environ = environ

    def get(self, name: str, default=None):
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"), default)


def _body(environ, read_all: bool) -> bytes:
    """The request body, read and put back for the next reader (S3 uploads: not read, the
    signature covers their x-amz-content-sha256 header)."""
    if not read_all:
        return b""
    import io

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _alarm_exists(account: str, region: str, name: str) -> bool:
    from moto.cloudwatch.models import cloudwatch_backends

    return name in cloudwatch_backends[account][region].alarms


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    n = len(raw)
    head = bytes([0x60 | n]) if n < 24 else (bytes([0x78, n]) if n < 256 else
                                            bytes([0x79]) + n.to_bytes(2, "big") if n < 65536 else
                                            bytes([0x7A]) + n.to_bytes(4, "big"))
    return head + raw


def _denied(service: str, message: str, path: str, start_response):
    """AccessDenied in the service's own error envelope."""
    if service == "s3":
        from xml.sax.saxutils import escape

        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                f"<Message>{escape(message)}</Message></Error>").encode()
        status, headers = "403 Forbidden", [("Content-Type", "application/xml")]
    elif service == "cloudwatch" and path.startswith("/service/"):  # smithy-rpc-v2-cbor
        body = (bytes([0xA2]) + _cbor_text("__type") + _cbor_text("AccessDenied")
                + _cbor_text("message") + _cbor_text(message))
        status, headers = "403 Forbidden", [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    else:  # awsJson (Logs, CloudWatch's JSON protocol)
        code = "AccessDenied" if service == "cloudwatch" else "AccessDeniedException"
        body = json.dumps({"__type": code, "message": message}).encode()
        status, headers = "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")]
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


class Emulator:
    """A running emulator: ``url``, ``env()`` for clients, ``service``/``faults`` for in-process control."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, time_scale: float | None = None,
                 region: str = DEFAULT_REGION, access_log: bool = False, admin_token: str | None = None,
                 enforce_iam: bool | None = None):
        self.region = region
        self.clock = Clock(time_scale)
        self.faults = Faults()
        self.service = SageMakerService(clock=self.clock, faults=self.faults)
        # enforce_iam None: $OFFLINE_AWS_ENFORCE_IAM (see iam_enforcement.py); off by default
        self.enforcer = IamEnforcer(self.service.account_id) if (
            enabled_by_env(os.environ) if enforce_iam is None else enforce_iam) else None
        if self.enforcer is not None:
            self.service.credentials = self.enforcer.service_keys
            moto_access_control_on()
        # admin_token None: $OFFLINE_AWS_ADMIN_TOKEN, if set (see admin.py for who may call the admin routes)
        self.dispatcher = Dispatcher(self.service, self.faults, admin_token, self.enforcer)
        self._server: BaseWSGIServer = make_server(
            host, port, self.dispatcher, threaded=True,
            request_handler=MotoRequestHandler if access_log else QuietRequestHandler,
        )
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.service.endpoint_url = self.url  # our SageMaker reaches S3/Logs through this very port
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="offline-aws", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.service.reset()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.enforcer is not None:
            moto_access_control_off()
            self.enforcer = None

    def backend(self, region: str | None = None):
        return self.service.backend(region or self.region)

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, the AWS CLI and Airflow's AWS hooks here."""
        env = emulator_env(self.url, self.region)
        if self.enforcer is not None:  # the service identity (allowed everything), not "test"
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = self.enforcer.service_keys
        return env

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def emulator_env(url: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    env = {"AWS_ENDPOINT_URL": url}
    for service in ("S3", "SAGEMAKER", "SAGEMAKER_RUNTIME", "CLOUDWATCH_LOGS", "LOGS", "CLOUDWATCH", "STS", "IAM"):
        env[f"AWS_ENDPOINT_URL_{service}"] = url
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
    )
    return env


def start_emulator(host: str = "127.0.0.1", port: int = 0, time_scale: float | None = None,
                   region: str = DEFAULT_REGION, admin_token: str | None = None,
                   enforce_iam: bool | None = None) -> Emulator:
    """Start an emulator in a background thread (port 0 = a free port); stop it with ``.stop()``.

    ``enforce_iam``: every request must be signed by an IAM identity its policies allow (see
    iam_enforcement.py); None reads $OFFLINE_AWS_ENFORCE_IAM (off unless set).
    """
    return Emulator(host, port, time_scale=time_scale, region=region, admin_token=admin_token,
                    enforce_iam=enforce_iam).start()
