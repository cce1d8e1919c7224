"""The Airflow policy allows every AWS call the DAG really makes (a first deployment, a blue/green
update, an ephemeral run), as recorded by the emulator and evaluated against the deployed policy.

The evaluator is deliberately small, not IAM: Allow statements only (the policy has no Deny),
``Action``/``Resource`` wildcards, and the condition operators the template uses. Resource tags are
the ones the recorded creates and AddTags set. It catches a missing action, a name or key outside
the prefixes, a create without the required tag and a tag key AddTags would refuse. Calls are
the Airflow side's only (its user agent carries ``Airflow/``), not the emulated SageMaker's own.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote

import boto3
import pytest

from offline_aws.airflow_run import airflow_env, dags_test
from offline_aws.sagemaker.responses import credential_scope
from offline_aws.server import start_emulator

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT / "infra" / "sagemaker-retrain.yaml"
REGION, ACCOUNT = "us-east-1", "123456789012"
# moto's state outlives an emulator (it is per process): names of their own, apart from test_template's.
PREFIX = "policy-probe"
BUCKET = "policy-probe-data"
ENDPOINT = "sagemaker-retrain-housing"  # starts with the default ResourceNamePrefix
WEAK = {"epochs": 1, "learning_rate": 0.0005, "gate_threshold": 1000.0}
SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
KINDS = {"TrainingJob": ("training-job", "TrainingJobName"), "Model": ("model", "ModelName"),
         "EndpointConfig": ("endpoint-config", "EndpointConfigName"), "Endpoint": ("endpoint", "EndpointName")}


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


class Recorder:
    """Wraps the emulator's dispatcher: remembers each request's service, target, path and body."""

    def __init__(self, emulator):
        self.calls: list[dict] = []
        self._pick = emulator.dispatcher.pick
        emulator.dispatcher.pick = self.pick

    def pick(self, environ) -> str:
        where = self._pick(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if "Airflow/" in environ.get("HTTP_USER_AGENT", ""):
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            self.calls.append({
                "where": where, "scope": credential_scope(environ.get("HTTP_AUTHORIZATION"))[1], "target": target,
                "method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""),
                "query": environ.get("QUERY_STRING", ""), "body": json.loads(body or b"{}") if target else {},
            })
        return where


def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, entries in condition.items():
        for key, wanted in entries.items():
            wanted, have = _as_list(wanted), context.get(key)
            if operator == "Null":
                holds = (have is None) == (wanted[0] == "true")
            elif operator in ("StringLike", "StringLikeIfExists"):
                holds = (have is None and operator.endswith("IfExists")) or (
                    have is not None and any(fnmatch.fnmatchcase(h, w) for h in _as_list(have) for w in wanted))
            elif operator == "StringEquals":
                holds = have is not None and any(h in wanted for h in _as_list(have))
            elif operator == "ForAllValues:StringLike":
                holds = have is None or all(any(fnmatch.fnmatchcase(h, w) for w in wanted) for h in have)
            else:
                raise AssertionError(f"the evaluator does not know {operator}")
            if not holds:
                return False
    return True


def _allowing_sid(document: dict, action: str, resource: str, context: dict) -> str | None:
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            return statement["Sid"]
    return None


def _package_arn(name: str) -> str:
    return (name if name.startswith("arn:") else f"{SM}model-package/{name}").lower()


def _requests(calls: list[dict], role_arn: str):
    """(what, IAM action, resource ARN, condition context) for each recorded call."""
    tags: dict[str, dict[str, str]] = {}
    for call in calls:
        target, body = call["target"], call["body"]
        if target.startswith("SageMaker."):
            op = target.split(".", 1)[1]
            match = re.match(r"(Create|Describe|Delete|Update|Stop)(TrainingJob|Model|EndpointConfig|Endpoint)$", op)
            if match:
                kind, field = KINDS[match.group(2)]
                arns = [f"{SM}{kind}/{body[field]}".lower()]
                if op in ("CreateEndpoint", "UpdateEndpoint"):
                    arns.append(f"{SM}endpoint-config/{body['EndpointConfigName']}".lower())
            elif op in ("CreateModelPackageGroup", "DescribeModelPackageGroup"):
                arns = [f"{SM}model-package-group/{body['ModelPackageGroupName']}".lower()]
            elif op == "CreateModelPackage":  # the version's number is the answer's: any in the group
                arns = [f"{SM}model-package/{body['ModelPackageGroupName']}/new".lower()]
            elif op in ("DescribeModelPackage", "UpdateModelPackage"):
                arns = [_package_arn(body.get("ModelPackageName") or body["ModelPackageArn"])]
            elif op in ("AddTags", "ListTags"):
                arns = [body["ResourceArn"].lower()]
            else:
                arns = ["*"]
            request_tags = {t["Key"]: t["Value"] for t in body.get("Tags", [])}
            for arn in arns:
                known = tags.get(arn) or tags.get(re.sub(r"(:model-package/[^/]+)/\d+$", r"\1/new", arn), {})
                context = {f"aws:ResourceTag/{k}": v for k, v in known.items()}
                if request_tags:
                    context |= {f"aws:RequestTag/{k}": v for k, v in request_tags.items()}
                    context["aws:TagKeys"] = list(request_tags)
                yield op, f"sagemaker:{op}", arn, context
            if request_tags and op.startswith("Create"):
                yield f"{op} (tags)", "sagemaker:AddTags", arns[0], {"aws:TagKeys": list(request_tags)}
            for field in ("RoleArn", "ExecutionRoleArn"):
                if field in body:
                    assert body[field] == role_arn
                    yield op, "iam:PassRole", body[field], {"iam:PassedToService": "sagemaker.amazonaws.com"}
            if op.startswith("Create") or op == "AddTags":
                tags.setdefault(arns[0], {}).update(request_tags)
        elif target.startswith("Logs_"):
            op = target.split(".", 1)[1]
            stream = f"log-stream:{body['logStreamName']}" if "logStreamName" in body else "*"
            yield op, f"logs:{op}", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{body['logGroupName']}:{stream}", {}
        elif call["where"] == "sagemaker":  # SageMaker Runtime: POST /endpoints/NAME/invocations
            yield "InvokeEndpoint", "sagemaker:InvokeEndpoint", f"{SM}endpoint/{call['path'].split('/')[2]}".lower(), {}
        elif call["scope"] == "s3":
            bucket, _, key = call["path"].lstrip("/").partition("/")
            query = parse_qs(call["query"])
            if not key and call["method"] == "POST" and "delete" in call["query"]:
                yield "DeleteObjects", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/", {}  # keys are in the body
            elif not key:  # HeadBucket (no prefix) or ListObjectsV2
                context = {"s3:prefix": query["prefix"][0]} if "prefix" in query else {}
                yield f"{call['method']} bucket", "s3:ListBucket", f"arn:aws:s3:::{bucket}", context
            else:
                action = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject", "POST": "s3:PutObject",
                          "DELETE": "s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject"}
                yield f"{call['method']} object", action[call["method"]], f"arn:aws:s3:::{bucket}/{unquote(key)}", {}
        else:
            yield "unexpected", f"{call['scope']}:{call['target'] or call['method']}", call["path"], {}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    emulator = start_emulator(time_scale=0)
    try:
        kw = dict(endpoint_url=emulator.url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
        cf, iam = boto3.client("cloudformation", **kw), boto3.client("iam", **kw)
        boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
        cf.create_stack(StackName=PREFIX, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                        Parameters=[{"ParameterKey": "ExistingBucketName", "ParameterValue": BUCKET},
                                    {"ParameterKey": "Prefix", "ParameterValue": PREFIX}])
        outputs = {o["OutputKey"]: o["OutputValue"] for o in cf.describe_stacks(StackName=PREFIX)["Stacks"][0]["Outputs"]}
        policy = iam.get_policy(PolicyArn=outputs["AirflowPolicyArn"])["Policy"]
        document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        document = document["PolicyVersion"]["Document"]
        document = document if isinstance(document, dict) else json.loads(document)

        recorder = Recorder(emulator)
        env = airflow_env(PROJECT, tmp_path_factory.mktemp("airflow-home"), emulator.env(), BUCKET,
                          role_arn=outputs["ExecutionRoleArn"],
                          extra={"AIRFLOW_VAR_SAGEMAKER_RETRAIN_PREFIX": outputs["Prefix"]})
        runs = {}
        for label, conf in (("create", WEAK), ("update", {}), ("ephemeral", {"mode": "ephemeral"})):
            result = dags_test(env, conf={"endpoint_name": ENDPOINT, **conf})
            assert result.state == "success", result.output[-3000:]
            runs[label] = result.states
        yield document, outputs, recorder.calls, runs
    finally:
        emulator.stop()


def test_the_runs_took_the_paths_to_cover(recorded):
    _, _, calls, runs = recorded
    assert runs["create"]["deploy"] == runs["update"]["deploy"] == runs["ephemeral"]["teardown"] == "success"
    targets = {c["target"] for c in calls}
    assert {"SageMaker.CreateEndpoint", "SageMaker.UpdateEndpoint", "SageMaker.DeleteEndpoint",
            "SageMaker.AddTags", "SageMaker.ListModels", "SageMaker.CreateModelPackageGroup",
            "SageMaker.CreateModelPackage", "SageMaker.UpdateModelPackage"} <= targets


def test_policy_allows_every_call_the_dag_made(recorded):
    document, outputs, calls, _ = recorded
    denied = sorted({(what, action, resource, json.dumps(context, sort_keys=True))
                     for what, action, resource, context in _requests(calls, outputs["ExecutionRoleArn"])
                     if _allowing_sid(document, action, resource, context) is None})
    assert not denied, "\n".join(" | ".join(d) for d in denied)


def test_evaluator_refuses_what_the_policy_must_refuse(recorded):
    """The evaluator is not vacuous: names outside the prefix, missing or foreign tags, keys outside the prefix."""
    document, outputs, _, _ = recorded
    tag = "aws:RequestTag/sagemaker-retrain:endpoint"
    refused = [
        ("sagemaker:CreateTrainingJob", f"{SM}training-job/other-job", {tag: "other-job"}),
        ("sagemaker:CreateTrainingJob", f"{SM}training-job/{ENDPOINT}-x", {}),
        ("sagemaker:CreateEndpoint", f"{SM}endpoint/{ENDPOINT}", {tag: "someone-else"}),
        ("sagemaker:UpdateEndpoint", f"{SM}endpoint/{ENDPOINT}", {}),
        ("sagemaker:AddTags", f"{SM}endpoint/{ENDPOINT}", {"aws:TagKeys": ["owner"]}),
        ("sagemaker:DeleteEndpoint", f"{SM}endpoint/{ENDPOINT}", {"aws:ResourceTag/sagemaker-retrain:endpoint": "x"}),
        ("sagemaker:DeleteEndpoint", f"{SM}endpoint/other", {}),
        ("sagemaker:CreateTrainingJob", f"{SM}hyper-parameter-tuning-job/{ENDPOINT}", {tag: ENDPOINT}),
        ("sagemaker:CreateModelPackage", f"{SM}model-package/other/1", {tag: "other"}),
        ("sagemaker:UpdateModelPackage", f"{SM}model-package/{ENDPOINT}/1", {}),
        ("iam:PassRole", outputs["ExecutionRoleArn"], {"iam:PassedToService": "ec2.amazonaws.com"}),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", {"iam:PassedToService": "sagemaker.amazonaws.com"}),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/other/key", {}),
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "other/"}),
        ("s3:GetObject", f"arn:aws:s3:::another-bucket/{PREFIX}/x", {}),
    ]
    allowed = [r for r in refused if _allowing_sid(document, *r) is not None]
    assert not allowed, allowed
