"""Keep an emulator's resources across restarts (``offline-aws --state-dir DIR``).

Saved at shutdown, loaded at start: SageMaker's records as JSON, and S3's objects as files
(read and written through boto3 like any client, since moto keeps S3 only in memory). A job
that was running when the emulator stopped comes back Failed, as an instance loss would leave
it; endpoints are re-deployed from their config, so their models are really loaded again.
CloudWatch Logs, IAM and STS are not kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

from .sagemaker.hosting import DeployFailed, load_variants, variant_summaries
from .sagemaker.models import SageMakerBackend
from .sagemaker.records import Endpoint, TrainingJob, TransformJob
from .sagemaker.training import finish_job
from .sagemaker.transform import finish_transform_job

SAGEMAKER_FILE = "sagemaker.json"
S3_DIR = "s3"
S3_INDEX = "index.json"
INTERRUPTED = "InternalServerError: The offline emulator stopped while this job was running."


def _encode(value):
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    raise TypeError(f"cannot persist {type(value).__name__}")


def _decode(obj: dict):
    if set(obj) == {"__datetime__"}:
        return datetime.fromisoformat(obj["__datetime__"])
    return obj


def _write_json(path: Path, payload) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, default=_encode, indent=1))
    tmp.replace(path)


# --- save -------------------------------------------------------------------------------------
def save_state(emulator, directory: str | Path) -> None:
    """Write SageMaker's records and every S3 object under ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    regions = {}
    for region in emulator.service.regions():
        backend = emulator.service.backend(region)
        with backend.lock:
            regions[region] = {
                "training_jobs": [copy.deepcopy(j.desc) for j in backend.training_jobs.values()],
                "transform_jobs": [copy.deepcopy(j.desc) for j in backend.transform_jobs.values()],
                "models": copy.deepcopy(list(backend.models.values())),
                "endpoint_configs": copy.deepcopy(list(backend.endpoint_configs.values())),
                "endpoints": [copy.deepcopy(e.desc) for e in backend.endpoints.values()],
                "tags": copy.deepcopy(backend.tags),
                "model_package_groups": copy.deepcopy(list(backend.model_package_groups.values())),
                "model_packages": copy.deepcopy(list(backend.model_packages.values())),
                "model_package_versions": dict(backend.model_package_versions),
            }
    _write_json(directory / SAGEMAKER_FILE, {"regions": regions})
    _save_s3(emulator, directory)


def _save_s3(emulator, directory: Path) -> None:
    target, staging = directory / S3_DIR, directory / f"{S3_DIR}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    s3 = emulator.backend().aws.client("s3")
    index = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        (staging / name).mkdir()
        objects = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                got = s3.get_object(Bucket=name, Key=item["Key"])
                # Named by the key's digest, not the key: a key of 1,024 bytes or named ".." is a valid S3
                # key but no file name, and one such key must not lose the whole save.
                filename = hashlib.sha256(item["Key"].encode()).hexdigest()
                with (staging / name / filename).open("wb") as out:
                    shutil.copyfileobj(got["Body"], out)  # streamed: an object is never held whole in memory
                objects[item["Key"]] = {"file": filename, "ContentType": got.get("ContentType")}
        index[name] = {"region": region, "objects": objects}
    _write_json(staging / S3_INDEX, index)
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)


# --- load -------------------------------------------------------------------------------------
def load_state(emulator, directory: str | Path) -> None:
    """Restore what :func:`save_state` wrote; a missing directory is an empty state."""
    directory = Path(directory)
    _load_s3(emulator, directory / S3_DIR)
    path = directory / SAGEMAKER_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text(), object_hook=_decode)
    for region, state in saved.get("regions", {}).items():
        _restore_region(emulator.service.backend(region), state)


class StateFileError(ValueError):
    """A state file names a path outside the state directory (or not a regular file)."""


def confined(folder: Path, *parts: str) -> Path:
    """``folder / parts`` if it resolves (symlinks too) to a regular file inside ``folder``, else StateFileError."""
    root = folder.resolve()
    if any(not isinstance(p, str) or not p or "\x00" in p for p in parts):
        raise StateFileError(f"invalid file name {parts!r} in {folder / S3_INDEX}")
    path = root.joinpath(*parts).resolve()
    if root not in path.parents:
        raise StateFileError(f"{'/'.join(parts)!r} points outside the state directory {folder}")
    if not path.is_file():
        raise StateFileError(f"{'/'.join(parts)!r} is not a file in the state directory {folder}")
    return path


def _load_s3(emulator, folder: Path) -> None:
    index_path = folder / S3_INDEX
    if not index_path.exists():
        return
    s3 = emulator.backend().aws.client("s3")
    for bucket, info in json.loads(index_path.read_text()).items():
        kwargs = {}
        if info["region"] != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": info["region"]}
        try:
            s3.create_bucket(Bucket=bucket, **kwargs)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        for key, meta in info["objects"].items():
            extra = {"ContentType": meta["ContentType"]} if meta.get("ContentType") else {}
            try:
                body = confined(folder, bucket, meta["file"]).read_bytes()
            except (StateFileError, OSError) as exc:  # skip it, keep loading the rest and keep serving
                print(f"# offline AWS: --state-dir object s3://{bucket}/{key} not restored: {exc}", file=sys.stderr)
                continue
            s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def _restore_region(backend: SageMakerBackend, state: dict) -> None:
    with backend.lock:
        backend.tags.update(state.get("tags", {}))
        for desc in state.get("model_package_groups", []):
            backend.model_package_groups[desc["ModelPackageGroupName"].lower()] = desc
        for desc in state.get("model_packages", []):
            backend.model_packages[desc["ModelPackageArn"]] = desc
        backend.model_package_versions.update(state.get("model_package_versions", {}))
        for desc in state.get("models", []):
            backend.models[desc["ModelName"].lower()] = desc
        for desc in state.get("endpoint_configs", []):
            backend.endpoint_configs[desc["EndpointConfigName"].lower()] = desc
        jobs = []
        for desc in state.get("training_jobs", []):
            job = TrainingJob(desc=desc)
            backend.training_jobs[desc["TrainingJobName"].lower()] = job
            jobs.append(job)
        transforms = []
        for desc in state.get("transform_jobs", []):
            transform = TransformJob(desc=desc)
            backend.transform_jobs[desc["TransformJobName"].lower()] = transform
            transforms.append(transform)
    for job in jobs:
        if job.desc["TrainingJobStatus"] in ("InProgress", "Stopping"):
            finish_job(backend, job, "Failed", "Failed", f"Training job failed. {INTERRUPTED}", reason=INTERRUPTED)
    for transform in transforms:
        if transform.desc["TransformJobStatus"] in ("InProgress", "Stopping"):
            finish_transform_job(backend, transform, "Failed", reason=INTERRUPTED)
    for desc in state.get("endpoints", []):
        if desc["EndpointStatus"] == "Deleting":
            continue
        endpoint = Endpoint(desc=desc)
        with backend.lock:
            backend.endpoints[desc["EndpointName"].lower()] = endpoint
        if desc["EndpointStatus"] == "Failed":
            continue
        _redeploy(backend, endpoint)


def _redeploy(backend: SageMakerBackend, endpoint: Endpoint) -> None:
    """Load the endpoint's current config again (an Updating one resumes on the config it was moving to)."""
    desc = endpoint.desc
    try:
        with backend.lock:
            config = copy.deepcopy(backend._endpoint_config(desc["EndpointConfigName"]))
        loaded = load_variants(backend, config)
    except Exception as exc:  # noqa: BLE001 - DeployFailed or a vanished config: the endpoint is Failed
        reason = str(exc) if isinstance(exc, DeployFailed) else getattr(exc, "message", str(exc))
        with backend.lock:
            desc.update(EndpointStatus="Failed", FailureReason=reason)
        return
    with backend.lock:
        endpoint.serving = loaded
        desc.pop("PendingDeploymentSummary", None)
        desc.update(EndpointStatus="InService", ProductionVariants=variant_summaries(loaded))


__all__ = ["save_state", "load_state"]
