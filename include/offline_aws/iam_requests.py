"""What an S3, CloudWatch, CloudWatch Logs or SQS request asks IAM: its actions, resource ARNs and condition
context, as AWS's Service Authorization Reference names them (for ``iam_enforcement``).

S3 actions come from moto's own table (``moto.s3.responses.ACTION_MAP``), with AWS's names where
moto's differ: HeadBucket is ``s3:ListBucket``, HeadObject ``s3:GetObject`` (with a ``versionId``, as every
object call on a version: ``s3:GetObjectVersion``), DeleteObjects one
``s3:DeleteObject`` per key, a copy also ``s3:GetObject`` on its source. SQS's batch calls are
authorized as their single actions (DeleteMessageBatch is ``sqs:DeleteMessage``), on the queue's
ARN; moto checks them as ``sqs:DeleteMessageBatch``. ``gate_moto_request`` stands
in front of moto: it decides these four services' requests (and refuses in each one's own error
envelope); other services' requests go to moto, whose own access control decides them.
"""

from __future__ import annotations

import io
import json
import re
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

from . import DEFAULT_REGION
from .iam_enforcement import AccessDenied, AuthRequest, IamEnforcer, decided_here
from .sagemaker.responses import credential_scope

CLOUDWATCH_SERVICE = "GraniteServiceVersion20100801"
_RPC_V2_PATH = re.compile(rf"^/service/{CLOUDWATCH_SERVICE}/operation/(\w+)$")
_S3_ACTION_FIXES = {"HeadBucket": "ListBucket"}


def _tag_context(tags: list[dict] | None, key_field: str = "Key", value_field: str = "Value") -> dict:
    context: dict = {f"aws:RequestTag/{t[key_field]}": t.get(value_field, "") for t in tags or []}
    if tags:
        context["aws:TagKeys"] = [t[key_field] for t in tags]
    return context


# A request on an object version is authorized as the version action (AWS's Service Authorization Reference).
_S3_VERSION_ACTIONS = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion", "GetObjectAcl": "GetObjectVersionAcl",
                       "GetObjectTagging": "GetObjectVersionTagging", "PutObjectAcl": "PutObjectVersionAcl",
                       "PutObjectTagging": "PutObjectVersionTagging", "DeleteObjectTagging": "DeleteObjectVersionTagging"}


def s3_bucket_and_key(path: str, host: str | None) -> tuple[str, str]:
    """The bucket and key the request is *served* from, decided as moto decides it: from the Host
    (``BUCKET.example.com``, virtual-hosted style) or else from the path's first segment."""
    from moto.s3.responses import S3Response
    from moto.s3.utils import bucket_name_from_url

    path = unquote(path)
    url = f"http://{host or ''}{path}"
    request = type("HostOnly", (), {"headers": {"host": host} if host else {}, "url": url})()
    if host and S3Response.subdomain_based_buckets(request):
        bucket = bucket_name_from_url(url)
        if bucket:
            return bucket, path.lstrip("/")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def s3_requests(method: str, path: str, query: str, headers, body: bytes) -> list[AuthRequest]:
    from moto.s3.responses import ACTION_MAP

    bucket, key = s3_bucket_and_key(path, headers.get("host"))
    params = parse_qs(query, keep_blank_values=True)
    if not bucket:
        return [AuthRequest("s3:ListAllMyBuckets", "*")]
    if not key and method == "POST" and "delete" in params:
        keys = [k.text or "" for k in ElementTree.fromstring(body or b"<Delete/>").iter()
                if k.tag.rsplit("}", 1)[-1] == "Key"]
        return [AuthRequest("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in keys]
    table = ACTION_MAP["KEY" if key else "BUCKET"].get(method, {})
    names = [name for q, name in table.items() if q not in ("DEFAULT", "versionId") and q in params]
    name = names[-1] if names else table.get("DEFAULT", f"Unknown{method}")
    name = _S3_ACTION_FIXES.get(name, name)
    if key and "versionId" in params:
        name = _S3_VERSION_ACTIONS.get(name, name)
    if not key:
        context = {"s3:prefix": params["prefix"][0]} if name == "ListBucket" and "prefix" in params else {}
        return [AuthRequest(f"s3:{name}", f"arn:aws:s3:::{bucket}", context)]
    out = [AuthRequest(f"s3:{name}", f"arn:aws:s3:::{bucket}/{key}")]
    source = headers.get("x-amz-copy-source")
    if source and method == "PUT":
        out.append(AuthRequest("s3:GetObject", f"arn:aws:s3:::{unquote(source).lstrip('/').split('?')[0]}"))
    return out


def decode_body(body: bytes) -> dict:
    """A JSON (awsJson) or CBOR (smithy-rpc-v2-cbor) request body."""
    if not body:
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        from botocore.parsers import RpcV2CBORParser

        return RpcV2CBORParser().parse_data_item(io.BytesIO(body))


def cloudwatch_operation(path: str, target: str) -> str | None:
    match = _RPC_V2_PATH.match(path)
    if match:
        return match.group(1)
    if target.startswith(f"{CLOUDWATCH_SERVICE}."):
        return target.split(".", 1)[1]
    return None


def cloudwatch_requests(operation: str, body: bytes, region: str, account: str,
                        alarm_exists) -> list[AuthRequest]:
    params = decode_body(body)
    alarm = f"arn:aws:cloudwatch:{region}:{account}:alarm:"
    if operation == "PutMetricAlarm":
        arn = alarm + params["AlarmName"]
        context = _tag_context(params.get("Tags"))
        out = [AuthRequest("cloudwatch:PutMetricAlarm", arn, context)]
        if params.get("Tags") and not alarm_exists(params["AlarmName"]):
            out.append(AuthRequest("cloudwatch:TagResource", arn, context))  # tags of a new alarm
        return out
    if operation in ("DescribeAlarms", "DeleteAlarms") and params.get("AlarmNames"):
        return [AuthRequest(f"cloudwatch:{operation}", alarm + name) for name in params["AlarmNames"]]
    return [AuthRequest(f"cloudwatch:{operation}", "*")]


def logs_requests(target: str, body: bytes, region: str, account: str) -> list[AuthRequest]:
    operation = target.split(".", 1)[1]
    params = decode_body(body)
    group = params.get("logGroupName") or params.get("logGroupIdentifier")
    if not group:
        return [AuthRequest(f"logs:{operation}", "*")]
    stream = f"log-stream:{params['logStreamName']}" if params.get("logStreamName") else "*"
    return [AuthRequest(f"logs:{operation}", f"arn:aws:logs:{region}:{account}:log-group:{group}:{stream}")]


_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def sqs_requests(target: str, body: bytes, region: str, account: str) -> list[AuthRequest]:
    operation = target.split(".", 1)[1]
    params = decode_body(body)
    action = f"sqs:{_SQS_BATCH.get(operation, operation)}"
    url = (params.get("QueueUrl") or "").rstrip("/")
    if url:
        owner, name = url.rsplit("/", 2)[-2:]
        return [AuthRequest(action, f"arn:aws:sqs:{region}:{owner}:{name}")]
    name = params.get("QueueName")
    return [AuthRequest(action, f"arn:aws:sqs:{region}:{account}:{name}" if name else "*")]


def gate_moto_request(enforcer: IamEnforcer, environ, start_response, moto_app):
    """In front of moto: S3, CloudWatch, Logs and SQS requests are decided here (and not again by moto);
    other services go to moto, whose own access control decides."""
    region, scope = credential_scope(environ.get("HTTP_AUTHORIZATION"))
    region = region or DEFAULT_REGION
    account = enforcer.account_id
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
    elif scope == "sqs" and target.startswith("AmazonSQS."):
        describe = ("sqs", lambda body: sqs_requests(target, body, region, account))
    if describe is None:  # moto's own access control decides
        return moto_app(environ, start_response)
    service, requests = describe
    body = _body(environ, read_all=service != "s3" or environ.get("REQUEST_METHOD") == "POST")
    try:
        caller = enforcer.caller(environ, body, "s3" if service == "s3" else scope or "s3")
        enforcer.authorize(caller, requests(body))
    except AccessDenied as exc:
        return _denied(service, exc.message, path, start_response)
    with decided_here():
        return list(moto_app(environ, start_response))


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
    else:  # awsJson (Logs, SQS, CloudWatch's JSON protocol)
        code = "AccessDenied" if service in ("cloudwatch", "sqs") else "AccessDeniedException"
        body = json.dumps({"__type": code, "message": message}).encode()
        status, headers = "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")]
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]
