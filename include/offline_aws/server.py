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
from .admin import MOTO_API_PREFIX, AdminApp
from .admin import PREFIX as ADMIN_PREFIX
from .aws_clients import INTERNAL_AGENT
from .faults import Faults
from .iam_enforcement import IamEnforcer, enabled_by_env, moto_access_control_off, moto_access_control_on
from .iam_requests import gate_moto_request
from .s3_events import install as install_s3_events
from .sagemaker.models import SageMakerService
from .sagemaker.responses import INVOCATIONS, SageMakerResponses, credential_scope
from .settings import Clock

SAGEMAKER_SCOPES = {"sagemaker", "runtime.sagemaker"}


class QuietRequestHandler(MotoRequestHandler):
    """moto's handler (keeps underscored headers) without one access-log line per request."""

    def log_request(self, code="-", size="-"):
        pass


class Dispatcher:
    """The WSGI entry point: send each request to SageMaker, the admin API or moto.

    moto's own ``/moto-api/*`` (state dump with secret keys, reset, seed…) is ``moto_api``: moto
    behind the admin routes' check, never reached otherwise.
    """

    def __init__(self, service: SageMakerService, faults: Faults, admin_token: str | None = None,
                 enforcer: IamEnforcer | None = None):
        self.sagemaker = SageMakerResponses(service, enforcer)
        self.admin = AdminApp(service, faults, token=admin_token)
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.faults = faults
        self.enforcer = enforcer
        # While the state is restored, only the emulator's own clients (aws_clients.INTERNAL_AGENT) are served.
        self.restoring = False

    def pick(self, environ) -> str:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return "admin"
        if path.startswith(MOTO_API_PREFIX):  # moto's own test for its /moto-api app
            return "moto_api"
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
        if self.restoring and INTERNAL_AGENT not in environ.get("HTTP_USER_AGENT", ""):
            return _unavailable(start_response, target)
        if target == "moto":
            status = self.faults.on_s3_call(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
            if status is not None:  # the s3_error fault: S3's own error envelope
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We '
                        b"encountered an internal error. Please try again.</Message></Error>")
                start_response(f"{status} Internal Server Error",
                               [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                return [body]
            refused = _s3_body_refused(environ)
            if refused is not None:
                return _s3_error(start_response, *refused)
            if self.enforcer is not None:  # S3, CloudWatch, Logs decided by our enforcement, the rest by moto's
                return gate_moto_request(self.enforcer, environ, start_response, self.moto)
        return getattr(self, target)(environ, start_response)

    def moto_api(self, environ, start_response):
        return self.admin.guard(environ, start_response, self.moto)


def _unavailable(start_response, target: str):
    """503, as AWS answers while a service comes back: every SDK retries it (a transient error), so a
    client that reconnects during the restore of ``--state-dir`` waits instead of seeing an empty emulator."""
    message = "The offline emulator is restoring its saved state; retry."
    if target != "sagemaker":  # S3, Logs, IAM...: S3's XML error envelope
        return _s3_error(start_response, "503 Service Unavailable", "ServiceUnavailable", message)
    body = json.dumps({"__type": "ServiceUnavailable", "message": message}).encode()
    start_response("503 Service Unavailable", [("Content-Type", "application/x-amz-json-1.1"),
                                               ("Content-Length", str(len(body)))])
    return [body]


def _s3_body_refused(environ) -> tuple[str, str, str] | None:
    """(status, code, message) for an S3 upload the emulator will not hold in memory, else None.

    moto keeps each body in memory: an upload needs a Content-Length (as S3 requires) of at most
    ``limits.S3_PUT_MAX_BYTES``, checked before a byte of it is read."""
    from . import limits

    if environ.get("REQUEST_METHOD") not in ("PUT", "POST"):
        return None
    _, scope = credential_scope(environ.get("HTTP_AUTHORIZATION"))
    if not (scope == "s3" or (scope is None and not environ.get("HTTP_X_AMZ_TARGET"))):
        return None
    length = environ.get("CONTENT_LENGTH") or ""
    if not length.isdigit():  # no body, or a stream of unknown length (chunked), which S3 refuses too
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return "411 Length Required", "MissingContentLength", "You must provide the Content-Length HTTP header."
        return None
    if int(length) > limits.S3_PUT_MAX_BYTES:
        return ("400 Bad Request", "EntityTooLarge", f"Your proposed upload ({length} bytes) exceeds the offline "
                f"emulator's maximum of {limits.S3_PUT_MAX_BYTES} bytes per request; use a multipart upload.")
    return None


def _s3_error(start_response, status: str, code: str, message: str):
    from xml.sax.saxutils import escape

    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>").encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class Emulator:
    """A running emulator: ``url``, ``env()`` for clients, ``service``/``faults`` for in-process control."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, time_scale: float | None = None,
                 region: str = DEFAULT_REGION, access_log: bool = False, admin_token: str | None = None,
                 enforce_iam: bool | None = None):
        self.region = region
        install_s3_events()  # S3 notifications carry versionId, sequencer… as AWS's do
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

    def start(self, state_dir: str | os.PathLike | None = None) -> Emulator:
        """Serve; with ``state_dir``, restore what ``persistence.save_state`` wrote there first. Until the
        restore ends every other request gets 503 (retried by every SDK): a client that reconnects at once
        must not find the emulator empty and take a missing job or bucket for a fact."""
        self.dispatcher.restoring = state_dir is not None
        self._thread = threading.Thread(target=self._server.serve_forever, name="offline-aws", daemon=True)
        self._thread.start()
        if state_dir is not None:
            from .persistence import load_state

            try:
                load_state(self, state_dir)
            finally:
                self.dispatcher.restoring = False
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
