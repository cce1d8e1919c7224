"""The Airflow policy allows every AWS call the DAG really makes (a first deployment, a blue/green
update that wins the gate against the champion, an ephemeral run whose teardown deletes it), as
recorded by the emulator and evaluated against the deployed policy.

The evaluator is deliberately small, not IAM: Allow statements only (the policy has no Deny),
``Action``/``Resource`` wildcards, and the condition operators the template uses. Resource tags are
the ones the recorded creates and AddTags set. It catches a missing action, a name or key outside
the prefixes, a create without the required tags and a tag key AddTags would refuse. Calls are
the Airflow side's only (its user agent carries ``Airflow/``), not the emulated SageMaker's own;
one implicit authorization is added: a create's Tags (also ``AddTags`` / ``cloudwatch:TagResource``).
(SageMaker reads an UpdateEndpoint's rollback alarms as the execution role, not as the caller.)
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote

import boto3
import pytest

from offline_aws.airflow_run import airflow_env, dags_test
from offline_aws.iam_enforcement import AuthRequest, decide
from offline_aws.iam_requests import decode_body
from offline_aws.sagemaker.authorization import spend_context
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
CW = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
KINDS = {"TrainingJob": ("training-job", "TrainingJobName"), "TransformJob": ("transform-job", "TransformJobName"),
         "Model": ("model", "ModelName"), "EndpointConfig": ("endpoint-config", "EndpointConfigName"),
         "Endpoint": ("endpoint", "EndpointName")}
SM_OP = re.compile(r"(Create|Describe|Delete|Update|Stop)(TrainingJob|TransformJob|Model|EndpointConfig|Endpoint)$")
# CloudWatch speaks smithy-rpc-v2-cbor (POST /service/GraniteServiceVersion20100801/operation/NAME, CBOR
# body) or, with older clients, JSON with X-Amz-Target GraniteServiceVersion20100801.NAME.
CLOUDWATCH_SERVICE = "GraniteServiceVersion20100801"
RPC_V2_PATH = re.compile(rf"^/service/{CLOUDWATCH_SERVICE}/operation/(\w+)$")



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
            target, path = environ.get("HTTP_X_AMZ_TARGET", ""), environ.get("PATH_INFO", "")
            rpc_v2 = RPC_V2_PATH.match(path)
            if rpc_v2:
                target = f"{CLOUDWATCH_SERVICE}.{rpc_v2.group(1)}"
            self.calls.append({
                "where": where, "scope": credential_scope(environ.get("HTTP_AUTHORIZATION"))[1], "target": target,
                "method": environ["REQUEST_METHOD"], "path": path,
                "query": environ.get("QUERY_STRING", ""), "body": decode_body(body) if target else {},
            })
        return where


def _allowing_sid(document: dict, action: str, resource: str, context: dict) -> str | None:
    """The Sid of a statement that allows the request, by the emulator's evaluator (checked against the
    IAM documentation's answers in tests/unit/emulator/test_emu_iam_policy_evaluation.py)."""
    allowed, sids = decide(document["Statement"], AuthRequest(action, resource, context))
    return sids[0] if allowed else None


def _tag_context(prefix: str, tags: dict[str, str]) -> dict:
    return {f"aws:{prefix}/{k}": v for k, v in tags.items()}


def _package_arn(name: str) -> str:
    return (name if name.startswith("arn:") else f"{SM}model-package/{name}").lower()


def _requests(calls: list[dict], role_arn: str):
    """(what, IAM action, resource ARN, condition context) for each recorded call."""
    tags: dict[str, dict[str, str]] = {}  # ARN -> tags, from the recorded creates and AddTags
    for call in calls:
        target, body = call["target"], call["body"]
        if target.startswith("SageMaker."):
            op = target.split(".", 1)[1]
            match = SM_OP.match(op)
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
            else:  # List* take no resource ARN
                arns = ["*"]
            request_tags = {t["Key"]: t["Value"] for t in body.get("Tags", [])}
            request_context = _tag_context("RequestTag", request_tags) | spend_context(op, body)
            if request_tags:
                request_context["aws:TagKeys"] = list(request_tags)
            for arn in arns:
                known = tags.get(arn) or tags.get(re.sub(r"(:model-package/[^/]+)/\d+$", r"\1/new", arn), {})
                context = _tag_context("ResourceTag", known) if arn != "*" else {}
                yield op, f"sagemaker:{op}", arn, context | request_context
            if request_tags and op.startswith("Create"):  # tag-on-create is authorized as AddTags as well
                yield f"{op} (tags)", "sagemaker:AddTags", arns[0], request_context
            for field in ("RoleArn", "ExecutionRoleArn"):
                if field in body:
                    assert body[field] == role_arn
                    yield op, "iam:PassRole", body[field], {"iam:PassedToService": "sagemaker.amazonaws.com"}
            if op == "CreateModelPackage":  # a version carries its group's tags (it takes none of its own)
                tags[arns[0]] = dict(tags.get(f"{SM}model-package-group/{body['ModelPackageGroupName']}".lower(), {}))
            if op.startswith("Create") or op == "AddTags":
                tags.setdefault(arns[0], {}).update(request_tags)
        elif target.startswith(f"{CLOUDWATCH_SERVICE}."):
            op = target.split(".", 1)[1]
            assert op == "PutMetricAlarm", f"the policy grants no cloudwatch:{op}"
            arn = f"{CW}{body['AlarmName']}"
            request_tags = {t["Key"]: t["Value"] for t in body.get("Tags", [])}
            context = _tag_context("RequestTag", request_tags) | _tag_context("ResourceTag", tags.get(arn, {}))
            if request_tags:
                context["aws:TagKeys"] = list(request_tags)
            yield op, f"cloudwatch:{op}", arn, context
            if request_tags and arn not in tags:  # creating a tagged alarm also needs TagResource
                yield f"{op} (tags)", "cloudwatch:TagResource", arn, context
            tags.setdefault(arn, {}).update(request_tags)
        elif target.startswith("Logs_"):
            op = target.split(".", 1)[1]
            stream = f"log-stream:{body['logStreamName']}" if "logStreamName" in body else "*"
            yield op, f"logs:{op}", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{body['logGroupName']}:{stream}", {}
        elif call["where"] == "sagemaker":  # SageMaker Runtime: POST /endpoints/NAME/invocations
            arn = f"{SM}endpoint/{call['path'].split('/')[2]}".lower()
            yield "InvokeEndpoint", "sagemaker:InvokeEndpoint", arn, _tag_context("ResourceTag", tags.get(arn, {}))
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


def _created_tags(calls: list[dict]) -> dict[str, dict[str, str]]:
    """ARN -> tags of every SageMaker resource the recorded runs created (lower-case ARNs)."""
    created: dict[str, dict[str, str]] = {}
    for call in calls:
        match = SM_OP.match(call["target"].removeprefix("SageMaker.")) if call["target"].startswith("SageMaker.") else None
        if match and match.group(1) == "Create":
            kind, field = KINDS[match.group(2)]
            created[f"{SM}{kind}/{call['body'][field]}".lower()] = {t["Key"]: t["Value"] for t in call["body"]["Tags"]}
    return created


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
    # the update scored the serving model too and beat it: a blue/green switch with rollback alarms
    assert "score_1" not in runs["create"] and runs["update"]["score_1"] == "success"
    targets = {c["target"] for c in calls}
    assert {"SageMaker.CreateModel", "SageMaker.CreateTransformJob", "SageMaker.DescribeTransformJob",
            "SageMaker.CreateEndpoint", "SageMaker.UpdateEndpoint", "SageMaker.AddTags",
            f"{CLOUDWATCH_SERVICE}.PutMetricAlarm", "SageMaker.ListTransformJobs", "SageMaker.ListModels",
            "SageMaker.DeleteEndpoint", "SageMaker.DeleteEndpointConfig", "SageMaker.DeleteModel",
            "SageMaker.CreateModelPackageGroup", "SageMaker.CreateModelPackage", "SageMaker.UpdateModelPackage"} <= targets
    (update,) = [c["body"] for c in calls if c["target"] == "SageMaker.UpdateEndpoint"]
    alarms = [a["AlarmName"] for a in update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
    assert alarms == [f"{PREFIX}-{ENDPOINT}-invocation-5xx", f"{PREFIX}-{ENDPOINT}-model-latency"]
    transform_jobs = [c["body"]["TransformJobName"] for c in calls if c["target"] == "SageMaker.CreateTransformJob"]
    assert len(transform_jobs) == 4, transform_jobs  # challenger x3, champion x1


def test_policy_allows_every_call_the_dag_made(recorded):
    document, outputs, calls, _ = recorded
    denied = sorted({(what, action, resource, json.dumps(context, sort_keys=True))
                     for what, action, resource, context in _requests(calls, outputs["ExecutionRoleArn"])
                     if _allowing_sid(document, action, resource, context) is None})
    assert not denied, "\n".join(" | ".join(d) for d in denied)


def test_policy_lets_teardown_stop_this_runs_jobs(recorded):
    """The runs finish their jobs before teardown (nothing to stop at time scale 0): stopping each
    training and scoring job they created, tagged as created, must still be allowed."""
    document, _, calls, _ = recorded
    jobs = {arn: tags for arn, tags in _created_tags(calls).items() if "-job/" in arn}
    assert {arn.split(":")[-1].split("/")[0] for arn in jobs} == {"training-job", "transform-job"}
    denied = []
    for arn, tags in jobs.items():
        action = "sagemaker:StopTrainingJob" if ":training-job/" in arn else "sagemaker:StopTransformJob"
        for request in (action, "sagemaker:ListTags"):
            if _allowing_sid(document, request, arn, _tag_context("ResourceTag", tags)) is None:
                denied.append((request, arn))
    assert not denied, denied


def test_evaluator_refuses_what_the_policy_must_refuse(recorded):
    """The evaluator is not vacuous: names outside the prefix, missing or foreign tags, keys outside the prefix."""
    document, outputs, _, _ = recorded
    tag, project = "aws:RequestTag/sagemaker-retrain:endpoint", "aws:RequestTag/sagemaker-retrain:project"
    owned = {tag: ENDPOINT, project: "sagemaker-retrain"}
    resource_tag, resource_project = "aws:ResourceTag/sagemaker-retrain:endpoint", "aws:ResourceTag/sagemaker-retrain:project"
    alarm = f"{CW}{PREFIX}-{ENDPOINT}-invocation-5xx"
    refused = [
        ("sagemaker:CreateTrainingJob", f"{SM}training-job/other-job", {tag: "other-job", project: "sagemaker-retrain"}),
        ("sagemaker:CreateTrainingJob", f"{SM}training-job/{ENDPOINT}-x", {}),
        ("sagemaker:CreateTrainingJob", f"{SM}training-job/{ENDPOINT}-x", {tag: ENDPOINT}),  # no project tag
        ("sagemaker:CreateEndpoint", f"{SM}endpoint/{ENDPOINT}", {tag: "someone-else", project: "sagemaker-retrain"}),
        ("sagemaker:CreateModel", f"{SM}model/{ENDPOINT}-x", {tag: ENDPOINT, project: "another-project"}),
        ("sagemaker:CreateTransformJob", f"{SM}transform-job/{ENDPOINT}-x", {tag: ENDPOINT}),
        ("sagemaker:CreateTransformJob", f"{SM}transform-job/other-x", owned),
        ("sagemaker:UpdateEndpoint", f"{SM}endpoint/{ENDPOINT}", {}),
        ("sagemaker:UpdateEndpoint", f"{SM}endpoint/{ENDPOINT}", {resource_tag: ENDPOINT}),  # no project tag
        ("sagemaker:StopTransformJob", f"{SM}transform-job/{ENDPOINT}-x", {resource_tag: ENDPOINT}),
        ("sagemaker:InvokeEndpoint", f"{SM}endpoint/{ENDPOINT}", {}),
        ("sagemaker:AddTags", f"{SM}endpoint/{ENDPOINT}", {"aws:TagKeys": ["owner"]}),
        ("sagemaker:AddTags", f"{SM}endpoint-config/{ENDPOINT}-x",  # ownership tags onto a foreign config
         {"aws:TagKeys": ["sagemaker-retrain:endpoint"], "aws:RequestTag/sagemaker-retrain:endpoint": ENDPOINT}),
        ("sagemaker:AddTags", f"{SM}endpoint-config/{ENDPOINT}-x", {"aws:TagKeys": ["sagemaker-retrain:previous-config"]}),
        ("sagemaker:DeleteEndpoint", f"{SM}endpoint/{ENDPOINT}", {resource_tag: "x"}),
        ("sagemaker:DeleteEndpoint", f"{SM}endpoint/{ENDPOINT}", {resource_tag: ENDPOINT, resource_project: "other"}),
        ("sagemaker:DeleteEndpoint", f"{SM}endpoint/other", {}),
        # untagged, its name under the prefix: another team's endpoint (issue 24, finding 4)
        ("sagemaker:DeleteEndpoint", f"{SM}endpoint/sagemaker-retrain-other-prod", {}),
        ("sagemaker:DeleteModel", f"{SM}model/sagemaker-retrain-other-prod", {}),
        ("sagemaker:CreateTrainingJob", f"{SM}hyper-parameter-tuning-job/{ENDPOINT}", owned),
        ("cloudwatch:PutMetricAlarm", alarm, {tag: ENDPOINT}),
        ("cloudwatch:PutMetricAlarm", f"{CW}{ENDPOINT}-invocation-5xx", owned),  # not under Prefix
        ("cloudwatch:PutMetricAlarm", f"{CW}{PREFIX}-{ENDPOINT}-cpu", owned),
        ("cloudwatch:DescribeAlarms", f"{CW}{PREFIX}-other-invocation-5xx", {}),
        ("cloudwatch:DeleteAlarms", alarm, {}),
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
