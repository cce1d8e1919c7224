"""The emulator's own admin API, under ``/_offline_aws/`` on the same port.

Routes (JSON in, JSON out):

- ``GET  /_offline_aws/health``  -> ``{"status": "ok"}``
- ``GET  /_offline_aws/state``   -> time scale, faults, call counts, SageMaker resources per region
- ``GET  /_offline_aws/calls``   -> ``{"CreateTrainingJob": 1, "InvokeEndpoint": 3, ...}``
- ``POST /_offline_aws/faults``  -> add faults, e.g. ``{"fail_next_training_job": "reason",
  "fail_next_endpoint_create": "reason", "fail_next_endpoint_update": "reason",
  "fail_next_transform_job": "reason",
  "alarm_during_next_bake": "AlarmName" (set to ALARM, through CloudWatch, when the next blue/green
  deployment starts baking),
  "throttle": {"share": 0.5, "operations": ["DescribeTrainingJob"], "count": 3},
  "server_error": {"count": 2, "status": 503}, "latency": {"seconds": 0.2}}``
- ``DELETE /_offline_aws/faults`` -> clear every fault
- ``POST /_offline_aws/config``  -> ``{"time_scale": 0}``
- ``POST /_offline_aws/reset``   -> forget SageMaker resources, faults and counts, and moto's state
  (``{"moto": false}`` keeps S3/Logs/IAM/STS)

Who may call them: with no token configured, only clients on the loopback interface (127.0.0.0/8,
::1); any other address gets 403. With a token (``--admin-token`` or ``$OFFLINE_AWS_ADMIN_TOKEN``),
every caller, loopback included, must send it in the ``X-Offline-AWS-Admin-Token`` header (401
otherwise). ``GET /_offline_aws/health`` answers everyone (``{"status": "ok"}``, nothing else): it
is what container health checks call.

moto's own ``/moto-api/*`` routes (its dashboard, ``data.json`` with every backend's state, the IAM
users' secret keys included, ``reset``, ``seed``, recorder, state manager…) pass the same check
(``AdminApp.guard``); they are not a way around the token or ``--enforce-iam``.

A request a browser sends on behalf of a web page (it carries ``Origin``, or ``Sec-Fetch-Site`` other
than ``none``, the person's own navigation) is refused with 403 on every guarded route, token or not:
without a token the loopback rule alone would let any page the machine's browser opens (or a DNS-
rebound one) reset the emulator or read moto's state, which moto serves with ``Access-Control-Allow-
Origin: *``. Scripts, curl and the test clients send neither header.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os

from werkzeug.wrappers import Request, Response

from .faults import Faults
from .limits import ADMIN_MAX_BYTES, LimitExceeded, check_time_scale, read_body
from .sagemaker.models import SageMakerService
from .settings import ADMIN_TOKEN_ENV as TOKEN_ENV
from .settings import ADMIN_TOKEN_HEADER as TOKEN_HEADER

PREFIX = "/_offline_aws/"
MOTO_API_PREFIX = "/moto-api"  # moto's own routes; moto sends every path starting so to them
OPEN_ROUTES = {("GET", "health")}


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def from_a_web_page(request: Request) -> bool:
    """Did a browser send this for a page (fetch, XHR, form, img…) rather than a person's own navigation?

    Browsers add ``Sec-Fetch-Site`` to every request (``none`` only when a person typed the URL or
    opened a bookmark) and ``Origin`` to cross-origin and POST requests; a page cannot remove either.
    """
    site = request.headers.get("Sec-Fetch-Site")
    return "Origin" in request.headers or (site is not None and site.lower() != "none")


def reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


class AdminApp:
    """WSGI app for the admin routes."""

    def __init__(self, service: SageMakerService, faults: Faults, token: str | None = None):
        self.service = service
        self.faults = faults
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)

    def refusal(self, request: Request, route: str) -> tuple[str, int] | None:
        """Why this caller may not use this route (message, status), or None."""
        if (request.method, route) in OPEN_ROUTES:
            return None
        if from_a_web_page(request):
            return "the admin routes do not answer requests a browser sends for a web page", 403
        if self.token:
            given = request.headers.get(TOKEN_HEADER, "")
            if hmac.compare_digest(given.encode(), self.token.encode()):
                return None
            return f"the admin routes need the {TOKEN_HEADER} header", 401
        if is_loopback(request.remote_addr):
            return None
        return f"the admin routes answer only on loopback unless {TOKEN_ENV} is set", 403

    def guard(self, environ, start_response, app):
        """``app`` (moto, for ``/moto-api/*``) answers only a caller ``refusal`` lets through."""
        refused = self.refusal(Request(environ), "moto-api")
        if refused:
            return _reply({"error": refused[0]}, refused[1])(environ, start_response)
        return app(environ, start_response)

    def state(self) -> dict:
        return {
            "time_scale": self.service.clock.time_scale,
            "faults": self.faults.snapshot(),
            "calls": self.faults.call_counts(),
            "sagemaker": {region: self.service.backend(region).summary() for region in self.service.regions()},
        }

    def __call__(self, environ, start_response):
        request = Request(environ)
        route = request.path[len(PREFIX):].strip("/")
        refused = self.refusal(request, route)
        if refused:
            return _reply({"error": refused[0]}, refused[1])(environ, start_response)
        try:
            raw = read_body(request, ADMIN_MAX_BYTES) if request.method in ("POST", "PUT") else b""
        except LimitExceeded as exc:
            return _reply({"error": str(exc)}, 413)(environ, start_response)
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            result = self.route(request.method, route, body)
        except KeyError:
            return _reply({"error": f"no route {request.method} {request.path}"}, 404)(environ, start_response)
        except ValueError as exc:
            return _reply({"error": str(exc)}, 400)(environ, start_response)
        return _reply(result, 200)(environ, start_response)

    def route(self, method: str, route: str, body: dict) -> dict:
        if (method, route) == ("GET", "health"):
            return {"status": "ok"}
        if (method, route) == ("GET", "state"):
            return self.state()
        if (method, route) == ("GET", "calls"):
            return self.faults.call_counts()
        if (method, route) == ("POST", "faults"):
            self.faults.configure(body)
            return self.faults.snapshot()
        if (method, route) in (("DELETE", "faults"), ("POST", "faults/clear")):
            self.faults.clear()
            return self.faults.snapshot()
        if (method, route) == ("POST", "config"):
            if "time_scale" in body:
                self.service.clock.time_scale = check_time_scale(body["time_scale"])
            return {"time_scale": self.service.clock.time_scale}
        if (method, route) == ("POST", "reset"):
            self.service.reset()
            self.faults.reset()
            if body.get("moto", True):
                reset_moto()
            return {"reset": True}
        raise KeyError(route)


def _reply(payload: dict, status: int) -> Response:
    return Response(json.dumps(payload, default=str), status=status, content_type="application/json")
