"""SageMaker's wire protocols: the JSON 1.1 control plane and the Runtime's rest-json invocations.

Only translation lives here (headers, JSON, timestamps as epoch numbers, error envelopes);
every decision is the backend's, so the same rules hold in-process and over HTTP.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from .. import DEFAULT_REGION
from ..iam_enforcement import AccessDenied, IamEnforcer
from ..limits import CONTROL_PLANE_MAX_BYTES, INVOKE_ENDPOINT_MAX_BYTES, LimitExceeded, read_body
from .authorization import invoke_requests, sagemaker_requests
from .exceptions import SageMakerError, SerializationException
from .hosting import ModelErrorResponse, payload_too_large
from .models import SageMakerService

JSON_11 = "application/x-amz-json-1.1"
PROBE_HEADER = "X-Offline-Aws-Probe"
INVOCATIONS = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


def credential_scope(authorization: str | None) -> tuple[str | None, str | None]:
    """(region, service) from a SigV4 Authorization header, or (None, None)."""
    match = _SCOPE.search(authorization or "")
    return (match["region"], match["service"]) if match else (None, None)


def to_wire(value: Any) -> Any:
    """datetimes -> epoch seconds, as the JSON protocol carries timestamps."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


def _fault_error(verdict: tuple[str, int]) -> SageMakerError:
    kind, status = verdict
    if kind == "throttle":
        return SageMakerError("Rate exceeded", code="ThrottlingException", status=status)
    code = {503: "ServiceUnavailable"}.get(status, "InternalFailure")
    return SageMakerError("We encountered an internal error. Please try again.", code=code, status=status)


class SageMakerResponses:
    """A WSGI app for both SageMaker APIs, routing to the region's backend."""

    def __init__(self, service: SageMakerService, enforcer: IamEnforcer | None = None):
        self.service = service
        self.enforcer = enforcer  # None: no IAM (the default); else every call is authorized first

    def _authorize(self, request: Request, raw: bytes, requests) -> None:
        """AccessDenied (as a SageMakerError) unless the signed caller's policies allow ``requests``."""
        if self.enforcer is None:
            return
        try:
            self.enforcer.authorize(self.enforcer.caller(request.environ, raw, "sagemaker"), requests())
        except AccessDenied as exc:
            raise SageMakerError(exc.message, code="AccessDeniedException", status=400) from None

    def __call__(self, environ, start_response):
        request = Request(environ)
        match = INVOCATIONS.match(request.path)
        if match and request.method == "POST":
            response = self.invoke(request, unquote(match["name"]))
        else:
            response = self.control_plane(request)
        return response(environ, start_response)

    # --- control plane -------------------------------------------------------------------
    def control_plane(self, request: Request) -> Response:
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.partition(".")
        if prefix != "SageMaker" or not operation:
            return _json_error(SageMakerError(
                f"Missing or unknown X-Amz-Target {target!r}", code="UnknownOperationException", status=400
            ))
        verdict = self.service.faults.on_call(operation, probe=PROBE_HEADER in request.headers)
        if verdict is not None:
            return _json_error(_fault_error(verdict))
        region = credential_scope(request.headers.get("Authorization"))[0] or DEFAULT_REGION
        try:
            try:
                raw = read_body(request, CONTROL_PLANE_MAX_BYTES)
            except LimitExceeded as exc:
                raise SageMakerError(f"{exc} (the offline emulator's cap for a SageMaker API request)",
                                     code="ValidationException", status=413) from None
            try:
                params = json.loads(raw or b"{}")
            except ValueError:
                raise SerializationException("Request body is not valid JSON.") from None
            backend = self.service.backend(region)
            self._authorize(request, raw, lambda: sagemaker_requests(backend, operation, params))
            result = backend.call(operation, params)
        except SageMakerError as exc:
            return _json_error(exc)
        return Response(json.dumps(to_wire(result)), status=200, headers=_headers(JSON_11))

    # --- runtime -------------------------------------------------------------------------
    def invoke(self, request: Request, name: str) -> Response:
        verdict = self.service.faults.on_call("InvokeEndpoint", probe=PROBE_HEADER in request.headers)
        if verdict is not None:
            return _rest_error(_fault_error(verdict))
        region = credential_scope(request.headers.get("Authorization"))[0] or DEFAULT_REGION
        try:
            try:
                payload_in = read_body(request, INVOKE_ENDPOINT_MAX_BYTES)
            except LimitExceeded:
                raise payload_too_large() from None
            backend = self.service.backend(region)
            try:
                self._authorize(request, payload_in, lambda: invoke_requests(backend, name))
            except SageMakerError as exc:
                exc.status = 403
                raise
            body, content_type, variant = backend.invoke_endpoint(
                name,
                payload_in,
                request.headers.get("Content-Type"),
                request.headers.get("Accept"),
                request.headers.get("X-Amzn-SageMaker-Target-Variant"),
            )
        except ModelErrorResponse as exc:
            payload = {
                "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if exc.original_status < 500 else "SERVER_ERROR_FROM_MODEL",
                "LogStreamArn": exc.log_stream_arn,
                "Message": exc.message,
                "OriginalMessage": exc.original_message,
                "OriginalStatusCode": exc.original_status,
            }
            headers = _headers("application/json")
            headers["x-amzn-ErrorType"] = "ModelError"
            return Response(json.dumps(payload), status=exc.status, headers=headers)
        except SageMakerError as exc:
            return _rest_error(exc)
        headers = _headers(content_type)
        headers["x-Amzn-Invoked-Production-Variant"] = variant
        return Response(body, status=200, headers=headers)


def _headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "x-amzn-RequestId": str(uuid.uuid4())}


def _json_error(exc: SageMakerError) -> Response:
    body = {"__type": exc.code, "message": exc.message}
    return Response(json.dumps(body), status=exc.status, headers=_headers(JSON_11))


def _rest_error(exc: SageMakerError) -> Response:
    headers = _headers("application/json")
    headers["x-amzn-ErrorType"] = exc.code
    return Response(json.dumps({"message": exc.message}), status=exc.status, headers=headers)
