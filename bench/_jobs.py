"""SageMaker jobs against the emulator for the algorithm benchmarks (issue 22): images, requests, waits.

Images are the ones the SageMaker SDK's ``image_uris.retrieve`` gives in the emulator's region
(Linear Learner from the provider's table, the framework images from the emulator's own table);
requests are plain boto3, as any client sends them.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

ROLE_NAME = "BenchSageMakerExecution"
ROLE = f"arn:aws:iam::123456789012:role/{ROLE_NAME}"
INSTANCE = "ml.m5.large"
TERMINAL = ("Completed", "Failed", "Stopped")


def image(algorithm: str, region: str) -> str:
    """The training/inference image of ``algorithm`` (linear-learner, knn, xgboost, sklearn) in ``region``."""
    from sagemaker_retrain.images import LINEAR_LEARNER_ACCOUNTS, linear_learner_image

    if algorithm == "linear-learner":
        return linear_learner_image(region)
    if algorithm == "knn":  # first-party algorithms share their registry account per region
        return f"{LINEAR_LEARNER_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/knn:1"
    from offline_aws.algorithms.images import FRAMEWORK_ACCOUNTS

    repo = {"xgboost": "sagemaker-xgboost:1.7-1", "sklearn": "sagemaker-scikit-learn:1.2-1-cpu-py3"}[algorithm]
    return f"{FRAMEWORK_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/{repo}"


def create_role(emu) -> None:
    """The execution role (script mode assumes it for the script's credentials)."""
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    emu.client("iam").create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))


def channel(name: str, uri: str, content_type: str | None = "text/csv") -> dict:
    spec = {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}
    if content_type:
        spec["ContentType"] = content_type
    return spec


def training_request(name: str, image_uri: str, hyperparameters: dict[str, str], channels: list[dict],
                     output: str, max_runtime: int = 3600) -> dict:
    return {
        "TrainingJobName": name, "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters, "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def wait(describe, key: str, terminal: tuple[str, ...] = TERMINAL, poll: float = 0.05,
         timeout: float = 3600) -> tuple[dict, float]:
    """Poll ``describe`` until ``key`` is terminal; returns (description, time.perf_counter() when seen)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = describe()
        if desc[key] in terminal:
            return desc, time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"still {desc[key]} after {timeout} s")
        time.sleep(poll)


def train(sm, request: dict, poll: float = 0.25) -> tuple[dict, float]:
    """CreateTrainingJob, then poll to the end; returns (DescribeTrainingJob, seconds from submission to Completed).

    The seconds are the job's ``TrainingEndTime`` (when the emulator set it Completed; same machine, same
    clock) less the wall clock just before the CreateTrainingJob call: exact whatever the poll interval,
    which is kept long so polling does not take CPU from the job. Raises unless the job Completed.
    """
    submitted = time.time()
    sm.create_training_job(**request)
    desc, _ = wait(lambda: sm.describe_training_job(TrainingJobName=request["TrainingJobName"]),
                   "TrainingJobStatus", poll=poll)
    if desc["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"{request['TrainingJobName']} {desc['TrainingJobStatus']}: {desc.get('FailureReason')}")
    return desc, desc["TrainingEndTime"].timestamp() - submitted


def sourcedir_tar(folder: Path) -> bytes:
    """``sourcedir.tar.gz`` as the SageMaker SDK packs a ``source_dir``: the folder's files at the archive root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(folder)))
    return buf.getvalue()


def script_hyperparameters(program: str, submit_uri: str, region: str, job: str, user: dict) -> dict[str, str]:
    """Script mode's hyperparameters as the SDK sends them: every value JSON-encoded."""
    hps = {"sagemaker_program": program, "sagemaker_submit_directory": submit_uri,
           "sagemaker_container_log_level": 20, "sagemaker_job_name": job, "sagemaker_region": region, **user}
    return {k: json.dumps(v) for k, v in hps.items()}


def read_tar_member(blob: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = tar.extractfile(name)
        if member is None:
            raise KeyError(name)
        return member.read()


def s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key
