"""The emulator (``offline-aws``, same arguments) writing one JSON line per AWS request to a file.

    python bench/_recording_emulator.py REQUEST_LOG [offline-aws arguments...]

Each line: ``{"t": <epoch seconds at arrival>, "d": <seconds from arrival until the server took the
response body's last chunk>, "service": <SigV4 signing name>, "action": <operation>, "resource": <job, endpoint...
name from the request>, "ua": <User-Agent>}``, written then (so not in arrival order). ``d`` is the emulator's
service time: a lower bound of the time the caller waited for the answer. The operation is the
``X-Amz-Target``'s (SageMaker, Logs, CloudWatch's JSON protocol), a query protocol's ``Action``, an RPC
v2 CBOR path's, or, for S3 and the Runtime (REST), ``S3 GET``/``S3 PUT``/... and ``InvokeEndpoint``.
The emulator's admin routes and its own internal clients (SageMaker reading S3 through the same port)
are not recorded. The recording is a WSGI wrapper in the emulator's process: a JSON body is read once
and handed on unchanged.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from urllib.parse import parse_qs

from offline_aws import __main__ as cli
from offline_aws.admin import PREFIX as ADMIN_PREFIX
from offline_aws.sagemaker.responses import INVOCATIONS, credential_scope
from offline_aws.server import Emulator

RESOURCE_KEYS = ("TrainingJobName", "TransformJobName", "EndpointName", "EndpointConfigName", "ModelName",
                 "ModelPackageGroupName", "ModelPackageName", "logGroupName", "AlarmNames", "QueueUrl")
INTERNAL = "offline-aws-internal/"


class Recorder:
    def __init__(self, app, path: str):
        self.app, self.out, self.lock = app, open(path, "a", buffering=1), threading.Lock()  # noqa: SIM115

    def __call__(self, environ, start_response):
        arrived = time.time()
        path, agent = environ.get("PATH_INFO", ""), environ.get("HTTP_USER_AGENT", "")
        if path.startswith(ADMIN_PREFIX) or INTERNAL in agent:
            return self.app(environ, start_response)
        entry = self.describe(environ, arrived, path, agent)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self.write(finished(entry))
            raise
        return TimedBody(body, entry, self.write)

    def write(self, entry: dict) -> None:
        line = json.dumps(entry)
        with self.lock:
            self.out.write(line + "\n")

    def describe(self, environ, arrived: float, path: str, agent: str) -> dict:
        _, service = credential_scope(environ.get("HTTP_AUTHORIZATION"))
        target, method = environ.get("HTTP_X_AMZ_TARGET", ""), environ.get("REQUEST_METHOD", "")
        ctype, body = environ.get("CONTENT_TYPE", ""), {}
        if "json" in ctype or "x-www-form-urlencoded" in ctype:
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                body = (json.loads(raw or b"{}") if "json" in ctype
                        else {k: v[0] for k, v in parse_qs(raw.decode()).items()})
            except ValueError:
                body = {}
        if target:
            action = target.rsplit(".", 1)[-1]
        elif "Action" in body:
            action = body["Action"]
        elif "/operation/" in path:  # the Smithy RPC v2 CBOR protocol (CloudWatch in newer botocore)
            action = path.rsplit("/", 1)[-1]
        elif method == "POST" and INVOCATIONS.match(path):
            action, service = "InvokeEndpoint", "sagemaker-runtime"
        else:
            action = f"S3 {method}"
        resource = next((str(body[k]) for k in RESOURCE_KEYS if k in body), "")
        if not resource and action.startswith("S3 "):
            resource = path
        return {"t": arrived, "service": service or "s3", "action": action, "resource": resource, "ua": agent}


def finished(entry: dict) -> dict:
    """The request's entry with ``d``, the seconds since it arrived."""
    return {**entry, "d": round(time.time() - entry["t"], 6)}


class TimedBody:
    """A WSGI response body that writes its request's entry, with the seconds since the request arrived, once
    the server has taken its last chunk (before werkzeug's own checks of the socket that precede ``close()``),
    or at ``close()`` when it was never read to the end: each request is written exactly once."""

    def __init__(self, body, entry: dict, write):
        self.body, self.entry, self.write, self.written = body, entry, write, False

    def __iter__(self):
        try:
            yield from self.body
        finally:
            self.done()

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.done()

    def done(self) -> None:
        if not self.written:
            self.written = True
            self.write(finished(self.entry))


class RecordingEmulator(Emulator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._server.app = Recorder(self._server.app, LOG_PATH)


if __name__ == "__main__":
    LOG_PATH = sys.argv[1]
    cli.Emulator = RecordingEmulator
    sys.exit(cli.main(sys.argv[2:]))
