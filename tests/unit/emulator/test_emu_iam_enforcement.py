"""The emulator's opt-in IAM enforcement: signed callers, their policies, AWS's AccessDenied messages.

Over HTTP with boto3 (SageMaker, Runtime, S3, CloudWatch, Logs, IAM), plus the condition
operators of ``iam_enforcement`` on their own. The DAG-wide proof is tests/infra/test_least_privilege.py.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from offline_aws.iam_enforcement import AuthRequest, conditions_hold, decide
from offline_aws.server import start_emulator

ACCOUNT, REGION, BUCKET = "123456789012", "us-east-1", "iam-enforcement-unit"
SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
TAGS = [{"Key": "team", "Value": "ml"}]
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/p/*"},
    {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
     "Condition": {"StringLikeIfExists": {"s3:prefix": "p/*"}}},
    {"Sid": "Models", "Effect": "Allow", "Action": ["sagemaker:CreateModel", "sagemaker:AddTags"],
     "Resource": f"{SM}model/team-*", "Condition": {"StringEquals": {"aws:RequestTag/team": "ml"}}},
    {"Sid": "Describe", "Effect": "Allow", "Action": "sagemaker:DescribeModel", "Resource": f"{SM}model/*",
     "Condition": {"StringEquals": {"aws:ResourceTag/team": "ml"}}},
    {"Sid": "Pass", "Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/r",
     "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
    {"Sid": "NoOther", "Effect": "Deny", "Action": "sagemaker:CreateModel", "Resource": f"{SM}model/team-secret*"},
]}


@pytest.fixture(scope="module")
def clients():
    emulator = start_emulator(time_scale=0, enforce_iam=True)
    try:
        admin = emulator.env()
        kw = dict(endpoint_url=emulator.url, region_name=REGION)
        root = {**kw, "aws_access_key_id": admin["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": admin["AWS_SECRET_ACCESS_KEY"]}
        iam, s3 = boto3.client("iam", **root), boto3.client("s3", **root)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="p/run:1+x.csv", Body=b"1")
        iam.create_user(UserName="unit-user")
        iam.put_user_policy(UserName="unit-user", PolicyName="p", PolicyDocument=json.dumps(POLICY))
        key = iam.create_access_key(UserName="unit-user")["AccessKey"]
        user = {**kw, "aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        made = {name: boto3.client(name, **user) for name in ("s3", "sagemaker", "sagemaker-runtime", "cloudwatch",
                                                                "logs", "iam")}
        made["wrong-secret"] = boto3.client("s3", **{**user, "aws_secret_access_key": "not-it"})
        made["arn"] = iam.get_user(UserName="unit-user")["User"]["Arn"]
        made.update(url=emulator.url, root_s3=s3, keys=(key["AccessKeyId"], key["SecretAccessKey"]))
        yield made
    finally:
        emulator.stop()


def _denied(call) -> dict:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]


def test_allowed_calls_pass(clients):
    s3 = clients["s3"]
    assert s3.get_object(Bucket=BUCKET, Key="p/run:1+x.csv")["Body"].read() == b"1"
    s3.head_bucket(Bucket=BUCKET)  # authorized as s3:ListBucket, as AWS does
    s3.list_objects_v2(Bucket=BUCKET, Prefix="p/")
    clients["sagemaker"].create_model(ModelName="team-a", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
                                      PrimaryContainer={"Image": "x"}, Tags=TAGS)
    assert clients["sagemaker"].describe_model(ModelName="team-a")["ModelName"] == "team-a"


@pytest.mark.parametrize("what, call, action, resource", [
    ("prefix outside the condition", lambda c: c["s3"].list_objects_v2(Bucket=BUCKET, Prefix="q/"),
     "s3:ListBucket", f"arn:aws:s3:::{BUCKET}"),
    ("no PutObject", lambda c: c["s3"].put_object(Bucket=BUCKET, Key="p/y", Body=b"2"),
     "s3:PutObject", f"arn:aws:s3:::{BUCKET}/p/y"),
    ("create without the request tag", lambda c: c["sagemaker"].create_model(
        ModelName="team-b", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r", PrimaryContainer={"Image": "x"}),
     "sagemaker:CreateModel", f"{SM}model/team-b"),
    ("a role it may not pass", lambda c: c["sagemaker"].create_model(
        ModelName="team-c", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/admin", PrimaryContainer={"Image": "x"},
        Tags=TAGS), "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin"),
    ("an untagged resource", lambda c: c["sagemaker"].describe_model(ModelName="other"),
     "sagemaker:DescribeModel", f"{SM}model/other"),
    ("runtime", lambda c: c["sagemaker-runtime"].invoke_endpoint(EndpointName="e", Body=b"1", ContentType="text/csv"),
     "sagemaker:InvokeEndpoint", f"{SM}endpoint/e"),
    ("cloudwatch (rpc-v2-cbor)", lambda c: c["cloudwatch"].put_metric_alarm(
        AlarmName="a", MetricName="m", Namespace="n", Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
        ComparisonOperator="GreaterThanThreshold"), "cloudwatch:PutMetricAlarm",
     f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:a"),
    ("logs", lambda c: c["logs"].get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="s"),
     "logs:GetLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:s"),
])
def test_denied_calls_name_the_action_and_resource(clients, what, call, action, resource):
    error = _denied(lambda: call(clients))
    assert error["Code"] in ("AccessDenied", "AccessDeniedException"), what
    assert error["Message"] == (f"User: {clients['arn']} is not authorized to perform: {action} on resource: "
                                f"{resource} because no identity-based policy allows the {action} action"), what


def test_explicit_deny_wins_and_moto_guards_iam(clients):
    error = _denied(lambda: clients["sagemaker"].create_model(
        ModelName="team-secret", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r", PrimaryContainer={"Image": "x"},
        Tags=TAGS))
    assert "sagemaker:CreateModel" in error["Message"]
    # IAM is moto's own access control
    error = _denied(lambda: clients["iam"].list_users())
    assert error["Code"] == "AccessDenied" and "iam:ListUsers" in error["Message"]


def test_a_wrong_signature_is_refused(clients):
    error = _denied(lambda: clients["wrong-secret"].get_object(Bucket=BUCKET, Key="p/run:1+x.csv"))
    assert "signature" in error["Message"]


def test_condition_operators():
    ctx = {"aws:RequestTag/team": "ml", "aws:TagKeys": ["team", "cost"]}
    assert conditions_hold({"StringEquals": {"aws:requesttag/team": "ml"}}, ctx)  # keys are case-insensitive
    assert not conditions_hold({"StringEquals": {"aws:RequestTag/team": "ops"}}, ctx)
    assert conditions_hold({"StringLike": {"aws:RequestTag/team": "m*"}}, ctx)
    assert not conditions_hold({"StringLike": {"aws:ResourceTag/team": "*"}}, ctx)  # missing key
    assert conditions_hold({"StringLikeIfExists": {"aws:ResourceTag/team": "x"}}, ctx)
    assert conditions_hold({"Null": {"aws:ResourceTag/team": "true", "aws:TagKeys": "false"}}, ctx)
    assert not conditions_hold({"ForAllValues:StringLike": {"aws:TagKeys": ["team"]}}, ctx)
    assert conditions_hold({"ForAllValues:StringLike": {"aws:TagKeys": ["team", "c*"]}}, ctx)
    assert conditions_hold({"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost"]}}, ctx)
    assert conditions_hold({"StringNotEquals": {"aws:RequestTag/team": "ops"}}, ctx)
    # an Allow whose condition fails is no Deny: another statement may still allow
    statements = [
        {"Sid": "A", "Effect": "Allow", "Action": "sagemaker:AddTags", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/team": "ops"}}},
        {"Sid": "B", "Effect": "Allow", "Action": "sagemaker:AddTags", "Resource": "*"},
    ]
    assert decide(statements, AuthRequest("sagemaker:AddTags", "arn:x", ctx)) == (True, ["B"])


def test_update_endpoint_rollback_alarms_are_read_as_the_execution_role(clients):
    """Deployment guardrails: SageMaker reads the alarms with the execution role's permissions, not the caller's."""
    from moto.iam.models import iam_backends

    from offline_aws.iam_enforcement import IamEnforcer
    from offline_aws.sagemaker.authorization import sagemaker_requests
    from offline_aws.sagemaker.models import SageMakerBackend

    iam = iam_backends[ACCOUNT]["aws"]
    role = iam.create_role("unit-exec", json.dumps({"Version": "2012-10-17", "Statement": []}), "/",
                           permissions_boundary=None, description="", tags=[], max_session_duration=None)
    iam.put_role_policy("unit-exec", "alarms", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms",
         "Resource": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:ok-*"}]}))
    backend = SageMakerBackend(REGION, ACCOUNT)
    backend.models["m"] = {"ModelName": "m", "ExecutionRoleArn": role.arn}
    backend.endpoint_configs["c"] = {"EndpointConfigName": "c", "ProductionVariants": [{"ModelName": "m"}]}
    params = {"EndpointName": "e", "EndpointConfigName": "c", "DeploymentConfig": {
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "ok-1"}, {"AlarmName": "other"}]}}}
    alarms = [r for r in sagemaker_requests(backend, "UpdateEndpoint", params) if r.action == "cloudwatch:DescribeAlarms"]
    assert [r.role for r in alarms] == [role.arn, role.arn]
    enforcer = IamEnforcer(ACCOUNT)
    caller = enforcer.role(f"arn:aws:iam::{ACCOUNT}:role/none")  # a caller allowed nothing: not asked
    enforcer.authorize(caller, alarms[:1])
    with pytest.raises(Exception) as raised:
        enforcer.authorize(caller, alarms[1:])
    assert raised.value.message.startswith(f"User: {role.arn} is not authorized to perform: cloudwatch:DescribeAlarms")


def test_sqs_batch_calls_are_authorized_as_their_single_actions():
    """AWS authorizes DeleteMessageBatch as sqs:DeleteMessage (moto alone would ask for sqs:DeleteMessageBatch)."""
    queue = "arn:aws:sqs:us-east-1:123456789012:new-data"
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
                             "Resource": queue}]}
    emulator = start_emulator(time_scale=0, enforce_iam=True)
    try:
        admin = emulator.env()
        root = dict(endpoint_url=emulator.url, region_name=REGION, aws_access_key_id=admin["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=admin["AWS_SECRET_ACCESS_KEY"])
        iam, sqs_admin = boto3.client("iam", **root), boto3.client("sqs", **root)
        url = sqs_admin.create_queue(QueueName="new-data")["QueueUrl"]
        sqs_admin.create_queue(QueueName="other")
        iam.create_user(UserName="watcher")
        iam.put_user_policy(UserName="watcher", PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="watcher")["AccessKey"]
        sqs = boto3.client("sqs", **{**root, "aws_access_key_id": key["AccessKeyId"],
                                     "aws_secret_access_key": key["SecretAccessKey"]})
        sqs_admin.send_message(QueueUrl=url, MessageBody="{}")
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
        deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages])
        assert len(deleted["Successful"]) == 1
        other = url.replace("new-data", "other")
        error = _denied(lambda: sqs.receive_message(QueueUrl=other, WaitTimeSeconds=0))
        assert error["Message"].startswith(f"User: arn:aws:iam::{ACCOUNT}:user/watcher is not authorized to perform: "
                                           f"sqs:ReceiveMessage on resource: {queue.replace('new-data', 'other')}")
        error = _denied(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x"}]))
        assert "sqs:SendMessage on resource" in error["Message"]
    finally:
        emulator.stop()


def _signed_get(clients, host: str, path: str) -> tuple[int, bytes]:
    """A GET signed by the unit user for ``host`` (as a virtual-hosted client signs it), sent to the emulator."""
    import http.client
    from urllib.parse import urlsplit

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"http://{host}{path}")
    S3SigV4Auth(Credentials(*clients["keys"]), "s3", REGION).add_auth(request)
    emulator = urlsplit(clients["url"])
    connection = http.client.HTTPConnection(emulator.hostname, emulator.port, timeout=30)
    connection.request("GET", path, headers={**dict(request.headers.items()), "Host": host})
    response = connection.getresponse()
    return response.status, response.read()


def test_a_virtual_hosted_request_is_authorized_against_the_bucket_it_reads(clients):
    """Host ``other.localhost``, path ``/<allowed bucket>/p/...``: moto serves bucket ``other``, key
    ``<allowed bucket>/p/...``; IAM must judge ``arn:aws:s3:::other/...`` (the user may not read it)."""
    other = "iam-enforcement-other"
    clients["root_s3"].create_bucket(Bucket=other)
    clients["root_s3"].put_object(Bucket=other, Key=f"{BUCKET}/p/run:1+x.csv", Body=b"other team's secret")
    port = clients["url"].rsplit(":", 1)[1]
    status, body = _signed_get(clients, f"{other}.localhost:{port}", f"/{BUCKET}/p/run:1+x.csv")
    assert status == 403 and b"other team" not in body
    assert f"arn:aws:s3:::{other}/{BUCKET}/p/run:1+x.csv".encode() in body
    status, body = _signed_get(clients, f"127.0.0.1:{port}", f"/{BUCKET}/p/run:1+x.csv")  # path style: allowed
    assert (status, body) == (200, b"1")


def test_a_head_of_a_version_is_get_object_version(clients):
    from offline_aws.iam_requests import s3_requests

    def action(method, query):
        return [r.action for r in s3_requests(method, f"/{BUCKET}/p/k", query, {}, b"")]

    assert action("HEAD", "versionId=v1") == action("GET", "versionId=v1") == ["s3:GetObjectVersion"]
    assert action("HEAD", "") == ["s3:GetObject"]
    assert action("GET", "tagging&versionId=v1") == ["s3:GetObjectVersionTagging"]
    assert action("DELETE", "versionId=v1") == ["s3:DeleteObjectVersion"]
    error = _denied(lambda: clients["s3"].head_object(Bucket=BUCKET, Key="p/run:1+x.csv", VersionId="null"))
    assert error["Code"] in ("403", "AccessDenied")  # the policy allows s3:GetObject only


def test_the_creates_that_spend_carry_sagemakers_condition_keys():
    """sagemaker:InstanceTypes / MaxRuntimeInSeconds / …KmsKey, so the template's limits are evaluated (finding 4)."""
    from offline_aws.sagemaker.authorization import spend_context

    training = {"ResourceConfig": {"InstanceType": "ml.p5.48xlarge", "InstanceCount": 1, "VolumeKmsKeyId": "k1"},
                "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "OutputDataConfig": {"S3OutputPath": "s3://b/"}}
    assert spend_context("CreateTrainingJob", training) == {
        "sagemaker:InstanceTypes": ["ml.p5.48xlarge"], "sagemaker:MaxRuntimeInSeconds": 86400,
        "sagemaker:VolumeKmsKey": "k1"}
    config = {"ProductionVariants": [{"InstanceType": "ml.m5.large"}, {"InstanceType": "ml.c5.xlarge"}]}
    assert spend_context("CreateEndpointConfig", config) == {"sagemaker:InstanceTypes": ["ml.m5.large", "ml.c5.xlarge"]}
    assert spend_context("CreateModel", {}) == {}
    limit = [{"Sid": "T", "Effect": "Allow", "Action": "sagemaker:CreateTrainingJob", "Resource": "*", "Condition": {
        "ForAllValues:StringEquals": {"sagemaker:InstanceTypes": ["ml.m5.large"]},
        "NumericLessThanEquals": {"sagemaker:MaxRuntimeInSeconds": "14400"}}}]
    small = {**training, "ResourceConfig": {"InstanceType": "ml.m5.large"}, "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
    assert decide(limit, AuthRequest("sagemaker:CreateTrainingJob", "arn:x", spend_context("CreateTrainingJob", small)))[0]
    assert not decide(limit, AuthRequest("sagemaker:CreateTrainingJob", "arn:x",
                                         spend_context("CreateTrainingJob", training)))[0]
