"""Helpers shared by the emulator tests: the housing split, request builders, polling."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

HOUSING = Path(__file__).resolve().parents[3] / "include" / "data" / "housing.csv"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "offline-bucket"


def housing_split():
    """The reference split: label first, train_test_split(test_size=0.1, random_state=42) in numpy."""
    data = np.genfromtxt(HOUSING, delimiter=",", skip_header=1)
    y, X = data[:, -1], data[:, :-1]
    perm = np.random.RandomState(42).permutation(len(y))
    n_test = int(np.ceil(0.1 * len(y)))
    return (y[perm[n_test:]], X[perm[n_test:]]), (y[perm[:n_test]], X[perm[:n_test]]), (y, X)


def to_csv(y, X) -> bytes:
    return ("\n".join(",".join(repr(float(v)) for v in (yi, *xi)) for yi, xi in zip(y, X, strict=True)) + "\n").encode()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def training_request(name: str, *, channels=("train", "validation"), content_type="text/csv",
                     hyperparameters=None, image=IMAGE, **overrides) -> dict:
    req = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters
        or {"predictor_type": "regressor", "mini_batch_size": "30", "feature_dim": "12"},
        "InputDataConfig": [
            {
                "ChannelName": c,
                "ContentType": content_type,
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/housing/{c}"}
                },
            }
            for c in channels
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    req.update(overrides)
    return req



def wait_job(backend, name: str, timeout: float = 20.0) -> dict:
    return wait_for(
        lambda: (d := backend.describe_training_job(TrainingJobName=name))["TrainingJobStatus"]
        in ("Completed", "Failed", "Stopped")
        and d,
        timeout,
    )


def wait_endpoint(backend, name: str, statuses=("InService", "Failed"), timeout: float = 20.0) -> dict:
    return wait_for(
        lambda: (d := backend.describe_endpoint(EndpointName=name))["EndpointStatus"] in statuses and d, timeout
    )


def shape_problems(operation: str, response: dict, service: str = "sagemaker") -> list[str]:
    """Every required member missing and every wrongly-typed member of ``response`` per botocore's model.

    Works on in-process results (timestamps as datetime) and on boto3-parsed ones alike.
    """
    from datetime import datetime

    from offline_aws.sagemaker.validation import service_model

    problems: list[str] = []
    types = {
        "string": str, "integer": int, "long": int, "float": (int, float), "double": (int, float),
        "boolean": bool, "timestamp": datetime, "list": list, "structure": dict, "map": dict,
    }

    def walk(shape, value, path):
        expected = types.get(shape.type_name)
        if expected and not isinstance(value, expected):
            problems.append(f"{path}: {type(value).__name__} is not {shape.type_name}")
            return
        if shape.type_name == "structure":
            for name in shape.required_members:
                if name not in value:
                    problems.append(f"{path}.{name}: required member missing")
            for name, item in value.items():
                if name == "ResponseMetadata":
                    continue
                if name not in shape.members:
                    problems.append(f"{path}.{name}: not in the output shape")
                else:
                    walk(shape.members[name], item, f"{path}.{name}")
        elif shape.type_name == "list":
            for i, item in enumerate(value):
                walk(shape.member, item, f"{path}[{i}]")
        elif shape.type_name == "map":
            for key, item in value.items():
                walk(shape.value, item, f"{path}.{key}")
        elif shape.type_name == "string" and shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in enum")

    walk(service_model(service).operation_model(operation).output_shape, response, operation)
    return problems
