"""Teardown: what a run leaves behind is only what serves (plus one rollback config).

Functions take a boto3 SageMaker client, so the same logic runs against AWS and the emulator,
and is unit-tested against the emulator's backend. None of them waits for SageMaker: the
teardown operator waits (deferred) for the endpoint to settle before it calls them, and only
resources carrying the pipeline's tags for this endpoint are ever deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_ENDPOINT, TAG_PREVIOUS_CONFIG, TAG_RUN
from sagemaker_retrain.ownership import describe_endpoint

log = logging.getLogger(__name__)
STABLE = ("InService", "Failed")


def _missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound")


def _delete(action: Callable, label: str, removed: list[str], **kwargs) -> None:
    try:
        action(**kwargs)
        removed.append(label)
    except ClientError as err:
        if not _missing(err):
            raise


def _tagged_for(sm, arn: str, endpoint_name: str) -> dict[str, str] | None:
    try:
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return tags if tags.get(TAG_ENDPOINT) == endpoint_name else None


def _list_all(sm, op: str, key: str, **kwargs) -> list[dict]:
    return [item for page in sm.get_paginator(op).paginate(**kwargs) for item in page[key]]


def stop_transform_jobs(sm, slug: str, run_id: str) -> list[str]:
    """Stop this run's scoring jobs still running (a killed or retried task may have left one)."""
    stopped = []
    for job in _list_all(sm, "list_transform_jobs", "TransformJobSummaries", NameContains=slug,
                         StatusEquals="InProgress"):
        arn = job["TransformJobArn"]
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
        if tags.get(TAG_RUN) != run_id[:256]:
            continue
        sm.stop_transform_job(TransformJobName=job["TransformJobName"])
        stopped.append(f"transform job {job['TransformJobName']} (stopped)")
    return stopped


def stop_training_job(sm, job_name: str | None) -> list[str]:
    if not job_name:
        return []
    try:
        status = sm.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"]
    except ClientError as err:
        if _missing(err):
            return []
        raise
    if status == "InProgress":
        sm.stop_training_job(TrainingJobName=job_name)
        return [f"training job {job_name} (stopped)"]
    return []


def teardown_ephemeral(sm, *, endpoint_name: str, config_name: str, model_name: str) -> list[str]:
    """The walkthrough's clean-up: delete this run's endpoint, endpoint config and model (each only if it
    carries the project's tags for the run's endpoint: trusted by its tags, not its name)."""
    removed: list[str] = []
    endpoint = describe_endpoint(sm, endpoint_name)
    if endpoint is not None and _tagged_for(sm, endpoint["EndpointArn"], endpoint_name) is not None:
        _delete(sm.delete_endpoint, f"endpoint {endpoint_name}", removed, EndpointName=endpoint_name)
    for kind, name, describe, arn_key, delete, key in (
            ("endpoint config", config_name, sm.describe_endpoint_config, "EndpointConfigArn",
             sm.delete_endpoint_config, "EndpointConfigName"),
            ("model", model_name, sm.describe_model, "ModelArn", sm.delete_model, "ModelName")):
        try:
            arn = describe(**{key: name})[arn_key]
        except ClientError as err:
            if _missing(err):
                continue
            raise
        if _tagged_for(sm, arn, endpoint_name) is None:  # not the pipeline's for this endpoint: not ours to delete
            log.warning("Not deleting %s %s: it does not carry the project's tags for %s", kind, name, endpoint_name)
            continue
        _delete(delete, f"{kind} {name}", removed, **{key: name})
    return removed


def teardown_persistent(sm, *, endpoint_name: str, run_id: str | None = None,
                        is_active: Callable[[str], bool] = lambda run_id: False) -> list[str]:
    """Keep what serves and one config to roll back to; delete every other config/model of this endpoint.

    Covers this run's never-deployed (or losing) model and config, configs superseded by earlier
    runs, and an endpoint of ours whose first create failed (it never served). An endpoint still
    changing keeps everything it may use, and so does another run still in progress (``is_active``
    of the run id its resources are tagged with): its challenger is not a leftover yet.
    """
    removed: list[str] = []
    current = describe_endpoint(sm, endpoint_name)
    if current is not None and _tagged_for(sm, current["EndpointArn"], endpoint_name) is None:
        return removed  # not ours: touch nothing of it
    keep_configs: set[str] = set()
    if current is not None and current["EndpointStatus"] not in STABLE:
        keep_configs.add(current.get("EndpointConfigName", ""))
        keep_configs.add((current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName", ""))
    elif current is not None and current["EndpointStatus"] == "Failed":
        _delete(sm.delete_endpoint, f"endpoint {endpoint_name} (Failed, never served)", removed,
                EndpointName=endpoint_name)
        current = None
    if current is not None and current["EndpointStatus"] in STABLE:
        serving = current["EndpointConfigName"]
        keep_configs.add(serving)
        arn = sm.describe_endpoint_config(EndpointConfigName=serving)["EndpointConfigArn"]
        previous = (_tagged_for(sm, arn, endpoint_name) or {}).get(TAG_PREVIOUS_CONFIG)
        if previous:
            keep_configs.add(previous)
    keep_models: set[str] = set()
    configs = _list_all(sm, "list_endpoint_configs", "EndpointConfigs", NameContains=endpoint_name)
    def in_flight(tags: dict[str, str]) -> bool:
        owner = tags.get(TAG_RUN)
        return bool(owner) and owner != (run_id or "")[:256] and is_active(owner)

    for config in configs:
        name = config["EndpointConfigName"]
        tags = _tagged_for(sm, config["EndpointConfigArn"], endpoint_name)
        if tags is None or (name not in keep_configs and in_flight(tags)):
            continue
        if name in keep_configs:
            try:
                variants = sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
            except ClientError as err:
                if _missing(err):
                    continue
                raise
            keep_models.update(v["ModelName"] for v in variants)
            continue
        _delete(sm.delete_endpoint_config, f"endpoint config {name}", removed, EndpointConfigName=name)
    for model in _list_all(sm, "list_models", "Models", NameContains=endpoint_name):
        name = model["ModelName"]
        if name in keep_models:
            continue
        tags = _tagged_for(sm, model["ModelArn"], endpoint_name)
        if tags is None or in_flight(tags):
            continue
        _delete(sm.delete_model, f"model {name}", removed, ModelName=name)
    return removed
