"""Script mode over HTTP with IAM enforcement: the script runs as the execution role, never as the emulator."""

from __future__ import annotations

import io
import json
import tarfile
import time

import boto3
import pytest

from offline_aws.server import start_emulator

ACCOUNT, REGION, BUCKET = "123456789012", "us-east-1", "script-identity"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/allowed/*"},
]}
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
SCRIPT = """
import os, boto3
from botocore.exceptions import ClientError
print("IDENTITY " + boto3.client("sts").get_caller_identity()["Arn"])
s3 = boto3.client("s3")
print("ALLOWED " + s3.get_object(Bucket="script-identity", Key="allowed/a.txt")["Body"].read().decode())
try:
    s3.get_object(Bucket="script-identity", Key="secret/b.txt")
    print("SECRET read")
except ClientError as exc:
    print("SECRET " + exc.response["Error"]["Code"])
print("KEY " + os.environ["AWS_ACCESS_KEY_ID"][:4])
"""


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator(time_scale=0, enforce_iam=True)
    yield emu
    emu.stop()


def test_the_script_has_the_roles_identity_and_policies(emulator):
    admin = emulator.env()
    kw = {"endpoint_url": emulator.url, "region_name": REGION, "aws_access_key_id": admin["AWS_ACCESS_KEY_ID"],
          "aws_secret_access_key": admin["AWS_SECRET_ACCESS_KEY"]}
    s3, iam, sm, logs = (boto3.client(n, **kw) for n in ("s3", "iam", "sagemaker", "logs"))
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="allowed/a.txt", Body=b"visible")
    s3.put_object(Bucket=BUCKET, Key="secret/b.txt", Body=b"hidden")
    s3.put_object(Bucket=BUCKET, Key="data/train.csv", Body=b"1,2\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(SCRIPT.encode())
        tar.addfile(info, io.BytesIO(SCRIPT.encode()))
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=buf.getvalue())
    role = iam.create_role(RoleName="ScriptRole", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName="ScriptRole", PolicyName="read-allowed", PolicyDocument=json.dumps(ROLE_POLICY))
    sm.create_training_job(
        TrainingJobName="identity", RoleArn=role,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": json.dumps("train.py"),
                         "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/code/sourcedir.tar.gz")},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    deadline = time.monotonic() + 60
    while (desc := sm.describe_training_job(TrainingJobName="identity"))["TrainingJobStatus"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                       logStreamNamePrefix="identity/")["logStreams"][0]["logStreamName"]
    lines = [e["message"] for e in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                                       logStreamName=stream, startFromHead=True)["events"]]
    said = dict(line.split(" ", 1) for line in lines if line.split(" ", 1)[0] in ("IDENTITY", "ALLOWED", "SECRET", "KEY"))
    assert said["IDENTITY"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/ScriptRole/")
    assert said["ALLOWED"] == "visible"
    assert said["SECRET"] == "AccessDenied"  # the role's policies apply, not the emulator's service identity
    assert said["KEY"] != admin["AWS_ACCESS_KEY_ID"][:4]
