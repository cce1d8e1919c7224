"""What an S3, CloudWatch or CloudWatch Logs request asks IAM: its actions, resource ARNs and condition
context, as AWS's Service Authorization Reference names them (for ``iam_enforcement``).

S3 actions come from moto's own table (``moto.s3.responses.ACTION_MAP``), with AWS's names where
moto's differ: HeadBucket is ``s3:ListBucket``, HeadObject ``s3:GetObject``, DeleteObjects one
``s3:DeleteObject`` per key, a copy also ``s3:GetObject`` on its source. Requests of other services
return None: moto's own access control decides them.
"""

from __future__ import annotations

import io
import json
import re
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

from .iam_enforcement import AuthRequest

CLOUDWATCH_SERVICE = "GraniteServiceVersion20100801"
_RPC_V2_PATH = re.compile(rf"^/service/{CLOUDWATCH_SERVICE}/operation/(\w+)$")
_S3_ACTION_FIXES = {"HeadBucket": "ListBucket"}


def _tag_context(tags: list[dict] | None, key_field: str = "Key", value_field: str = "Value") -> dict:
    context: dict = {f"aws:RequestTag/{t[key_field]}": t.get(value_field, "") for t in tags or []}
    if tags:
        context["aws:TagKeys"] = [t[key_field] for t in tags]
    return context


def s3_requests(method: str, path: str, query: str, headers, body: bytes) -> list[AuthRequest]:
    from moto.s3.responses import ACTION_MAP

    bucket, _, key = unquote(path).lstrip("/").partition("/")
    params = parse_qs(query, keep_blank_values=True)
    if not bucket:
        return [AuthRequest("s3:ListAllMyBuckets", "*")]
    if not key and method == "POST" and "delete" in params:
        keys = [k.text or "" for k in ElementTree.fromstring(body or b"<Delete/>").iter()
                if k.tag.rsplit("}", 1)[-1] == "Key"]
        return [AuthRequest("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in keys]
    table = ACTION_MAP["KEY" if key else "BUCKET"].get(method, {})
    names = [name for q, name in table.items() if q != "DEFAULT" and q in params]
    name = names[-1] if names else table.get("DEFAULT", f"Unknown{method}")
    name = _S3_ACTION_FIXES.get(name, name)
    if not key:
        context = {"s3:prefix": params["prefix"][0]} if name == "ListBucket" and "prefix" in params else {}
        return [AuthRequest(f"s3:{name}", f"arn:aws:s3:::{bucket}", context)]
    out = [AuthRequest(f"s3:{name}", f"arn:aws:s3:::{bucket}/{key}")]
    source = headers.get("x-amz-copy-source")
    if source and method == "PUT":
        out.append(AuthRequest("s3:GetObject", f"arn:aws:s3:::{unquote(source).lstrip('/').split('?')[0]}"))
    return out


def _decode(body: bytes) -> dict:
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
    params = _decode(body)
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
    params = _decode(body)
    group = params.get("logGroupName") or params.get("logGroupIdentifier")
    if not group:
        return [AuthRequest(f"logs:{operation}", "*")]
    stream = f"log-stream:{params['logStreamName']}" if params.get("logStreamName") else "*"
    return [AuthRequest(f"logs:{operation}", f"arn:aws:logs:{region}:{account}:log-group:{group}:{stream}")]
