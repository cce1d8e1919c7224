"""Restoring saved SageMaker state: finished work comes back as it was, running work comes back Failed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from emu_helpers import IMAGE, ROLE, training_request, wait_job

from offline_aws.persistence import INTERRUPTED, _decode, _encode, _restore_region


def _roundtrip(payload):
    return json.loads(json.dumps(payload, default=_encode), object_hook=_decode)


def test_restore_keeps_finished_jobs_fails_running_ones_and_redeploys_endpoints(backend):
    backend.create_training_job(training_request("done"))
    done = wait_job(backend, "done")
    backend.create_model(
        ModelName="m", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": done["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    backend.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )
    running = dict(done, TrainingJobName="running", TrainingJobStatus="InProgress", SecondaryStatus="Training")
    saved = _roundtrip({
        "training_jobs": [done, running],
        "models": [backend.describe_model(ModelName="m")],
        "endpoint_configs": [backend.describe_endpoint_config(EndpointConfigName="c")],
        "endpoints": [{
            "EndpointName": "e", "EndpointArn": backend.arn("endpoint", "e"), "EndpointConfigName": "c",
            "EndpointStatus": "InService", "CreationTime": done["CreationTime"], "LastModifiedTime": done["CreationTime"],
        }],
        "tags": {},
    })
    backend.training_jobs.clear()
    backend.models.clear()
    backend.endpoint_configs.clear()
    _restore_region(backend, saved)
    assert backend.describe_training_job(TrainingJobName="done") == done
    restored = backend.describe_training_job(TrainingJobName="running")
    assert (restored["TrainingJobStatus"], restored["FailureReason"]) == ("Failed", INTERRUPTED)
    assert backend.describe_endpoint(EndpointName="e")["EndpointStatus"] == "InService"
    payload, _, _ = backend.invoke_endpoint("e", b",".join([b"1"] * 12), "text/csv", "application/json")
    assert json.loads(payload)["predictions"]


def test_restore_transform_jobs(backend):
    created = _roundtrip({"CreationTime": datetime.now(UTC)})
    base = {
        "TransformJobArn": backend.arn("transform-job", "x"), "ModelName": "m",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}},
        "TransformOutput": {"S3OutputPath": "s3://b/out"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "CreationTime": created["CreationTime"], "LastModifiedTime": created["CreationTime"],
    }
    done = dict(base, TransformJobName="t-done", TransformJobStatus="Completed",
                TransformStartTime=created["CreationTime"], TransformEndTime=created["CreationTime"])
    running = dict(base, TransformJobName="t-running", TransformJobStatus="InProgress")
    _restore_region(backend, _roundtrip({"transform_jobs": [done, running]}))
    restored = backend.describe_transform_job(TransformJobName="t-done")
    assert restored == {k: v for k, v in done.items() if k != "LastModifiedTime"}
    failed = backend.describe_transform_job(TransformJobName="t-running")
    assert (failed["TransformJobStatus"], failed["FailureReason"]) == ("Failed", INTERRUPTED)
    assert "TransformEndTime" in failed
