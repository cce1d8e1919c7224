"""Helpers for the algorithm tests: upload channels, train, deploy, read the job's log and artifact."""

from __future__ import annotations

import io
import tarfile

import boto3
import numpy as np
from emu_helpers import BUCKET, ROLE, wait_endpoint, wait_job

REGION = "us-east-1"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
KNN_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def csv_rows(y, X) -> bytes:
    rows = X if y is None else np.column_stack([y, X])
    return ("\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n").encode()


def shuffled(X, y, seed=7):
    perm = np.random.RandomState(seed).permutation(len(y))
    return X[perm], y[perm]


def train_job(backend, name: str, image: str, hyperparameters: dict, channels: dict, *, content_type="text/csv",
              max_runtime=3600, metric_definitions=None, timeout=120.0) -> dict:
    """Upload ``channels`` ({channel: bytes}) under ``<name>/<channel>/data.csv``, train, wait for the end."""
    s3 = boto3.client("s3", region_name=REGION)
    inputs = []
    for channel, body in channels.items():
        s3.put_object(Bucket=BUCKET, Key=f"{name}/{channel}/data.csv", Body=body)
        entry = {"ChannelName": channel,
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{name}/{channel}"}}}
        if content_type is not None:
            entry["ContentType"] = content_type
        inputs.append(entry)
    algo = {"TrainingImage": image, "TrainingInputMode": "File"}
    if metric_definitions:
        algo["MetricDefinitions"] = metric_definitions
    request = {
        "TrainingJobName": name, "RoleArn": ROLE, "AlgorithmSpecification": algo,
        "HyperParameters": hyperparameters, "InputDataConfig": inputs,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }
    if not inputs:
        del request["InputDataConfig"]
    backend.create_training_job(request)
    return wait_job(backend, name, timeout)


def metrics(desc: dict) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in desc.get("FinalMetricDataList", [])}


def log_lines(name: str) -> list[str]:
    logs = boto3.client("logs", region_name=REGION)
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/")
    lines = []
    for stream in streams["logStreams"]:
        events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                     logStreamName=stream["logStreamName"], startFromHead=True)["events"]
        lines.extend(e["message"] for e in events)
    return lines


def artifact_members(desc: dict) -> dict[str, bytes]:
    uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = uri[len("s3://"):].split("/", 1)
    blob = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def deploy(backend, name: str, image: str, model_url: str, environment: dict | None = None) -> dict:
    container = {"Image": image, "ModelDataUrl": model_url}
    if environment:
        container["Environment"] = environment
    backend.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    backend.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    backend.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_endpoint(backend, name, timeout=60)


def invoke(backend, name: str, body: bytes, content_type: str, accept: str | None = None) -> tuple[bytes, str]:
    payload, out_type, _ = backend.invoke_endpoint(name, body, content_type, accept)
    return payload, out_type
