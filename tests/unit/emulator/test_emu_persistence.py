"""Restoring saved SageMaker state: finished work comes back as it was, running work comes back Failed."""

from __future__ import annotations

import json

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
