"""The Batch Transform "instance": InProgress -> Completed / Failed, or Stopping -> Stopped.

It runs in a background thread like ``training`` and ``hosting``: loads the model's
``model.tar.gz`` from S3 through boto3 as an endpoint does, reads every input object (S3Prefix
or a manifest), turns each into ``<name relative to the prefix>.out`` with ``batching``, and
writes them under S3OutputPath. As on AWS, a stopped job stores no output.
"""

from __future__ import annotations

import json
import re
import threading

from .. import algorithms
from ..algorithms.base import Predictor
from ..limits import LimitExceeded, gunzip
from .batching import BatchFailed, Plan, transform_object
from .hosting import fetch_s3
from .records import Backend, TransformJob, now

# Emulated durations in seconds at time scale 1 (the transform itself takes its real time).
LAUNCHING_SECONDS = 3.0  # instances up, container and model downloaded
UPLOADING_SECONDS = 1.0


class TransformStopped(Exception):
    """Ends the job Stopped (StopTransformJob was called)."""


def start_transform_job(backend: Backend, job: TransformJob) -> None:
    job.thread = threading.Thread(
        target=run_transform_job, args=(backend, job), name=f"transform-{job.desc['TransformJobName']}", daemon=True
    )
    job.thread.start()


def run_transform_job(backend: Backend, job: TransformJob) -> None:
    """The whole life of one job; never raises (every outcome lands in the job record)."""
    try:
        _run(backend, job)
    except TransformStopped:
        finish_transform_job(backend, job, "Stopped")
    except BatchFailed as exc:
        finish_transform_job(backend, job, "Failed", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - the emulator must not lose a job to a bug
        finish_transform_job(backend, job, "Failed", reason=f"InternalServerError: {type(exc).__name__}: {exc}")


def finish_transform_job(backend: Backend, job: TransformJob, status: str, *,
                         reason: str | None = None) -> None:
    with backend.lock:
        desc = job.desc
        if desc["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return
        if job.stop_requested.is_set() and status != "Completed":  # a job whose output is written completes
            status, reason = "Stopped", None
        stamp = now()
        desc["TransformJobStatus"] = status
        if reason is not None:
            desc["FailureReason"] = reason
        desc.setdefault("TransformStartTime", desc["CreationTime"])
        desc["TransformEndTime"] = stamp
        desc["LastModifiedTime"] = stamp


def _pause(backend: Backend, job: TransformJob, seconds: float) -> None:
    if backend.clock.pause(seconds, job.stop_requested) or job.stop_requested.is_set():
        raise TransformStopped()


def _run(backend: Backend, job: TransformJob) -> None:
    with backend.lock:
        desc = dict(job.desc)  # top-level copy; nested request parts are never mutated
    _pause(backend, job, LAUNCHING_SECONDS)
    if job.injected_failure is not None:
        raise BatchFailed(job.injected_failure)
    with backend.lock:
        job.desc["TransformStartTime"] = job.desc["LastModifiedTime"] = now()
    plan = Plan.from_description(desc)
    plan.check()
    model = load_model(backend, desc["ModelName"])
    s3 = backend.aws.client("s3")
    compressed = desc["TransformInput"].get("CompressionType") == "Gzip"
    outputs = []
    for bucket, key, name in list_inputs(s3, desc["TransformInput"]["DataSource"]["S3DataSource"]):
        _pause(backend, job, 0)
        body = _get(s3, bucket, key)
        if compressed:
            try:
                body = gunzip(body, what=f"s3://{bucket}/{key}")
            except LimitExceeded as exc:
                raise BatchFailed(f"ClientError: {exc}.") from None
            except OSError as exc:
                raise BatchFailed(f"ClientError: s3://{bucket}/{key} is not Gzip data ({exc}).") from None
        outputs.append((f"{name}.out", transform_object(model, plan, body, f"s3://{bucket}/{key}")))
    _pause(backend, job, UPLOADING_SECONDS)  # the last moment a stop keeps every output away
    out_bucket, out_prefix = split_s3(desc["TransformOutput"]["S3OutputPath"])
    for name, payload in outputs:
        key = f"{out_prefix.rstrip('/')}/{name}" if out_prefix.strip("/") else name
        try:
            s3.put_object(Bucket=out_bucket, Key=key, Body=payload)
        except Exception as exc:  # noqa: BLE001 - e.g. NoSuchBucket, reported in the job
            raise BatchFailed(f"ClientError: Failed to upload s3://{out_bucket}/{key}: {exc}") from None
    finish_transform_job(backend, job, "Completed")


def split_s3(uri: str) -> tuple[str, str]:
    match = re.match(r"^(?:s3|https)://([^/]+)/?(.*)$", uri)
    if not match:
        raise BatchFailed(f"ClientError: Invalid S3 URI {uri!r}.")
    return match.group(1), match.group(2)


def _get(s3, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - any S3 error reads as a download failure
        raise BatchFailed(f"ClientError: Failed to download s3://{bucket}/{key}: {exc}") from None


def list_inputs(s3, source: dict) -> list[tuple[str, str, str]]:
    """(bucket, key, output name) of every input object, sorted as the agent reads them."""
    kind, uri = source["S3DataType"], source["S3Uri"]
    if kind == "ManifestFile":
        return _manifest_inputs(s3, uri)
    if kind != "S3Prefix":
        raise BatchFailed(f"ClientError: S3DataType {kind} is not supported offline (use S3Prefix or ManifestFile).")
    bucket, prefix = split_s3(uri)
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    except Exception as exc:  # noqa: BLE001 - reported as AWS does, whatever S3 said
        raise BatchFailed(_no_objects(uri, bucket, f" ({exc})")) from None
    if not keys:
        raise BatchFailed(_no_objects(uri, bucket, ""))
    base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return [(bucket, key, key[len(base):]) for key in sorted(keys)]


def _manifest_inputs(s3, uri: str) -> list[tuple[str, str, str]]:
    """AWS's manifest: ``[{"prefix": "s3://bucket/path/"}, "relative/key1", ...]``."""
    bucket, key = split_s3(uri)
    try:
        doc = json.loads(_get(s3, bucket, key))
    except json.JSONDecodeError as exc:
        raise BatchFailed(f"ClientError: The manifest file {uri} is not valid JSON ({exc}).") from None
    if (not isinstance(doc, list) or not doc or not isinstance(doc[0], dict) or "prefix" not in doc[0]
            or not all(isinstance(r, str) for r in doc[1:])):
        raise BatchFailed(
            f'ClientError: The manifest file {uri} must be [{{"prefix": "s3://bucket/path/"}}, "relative/key", ...].'
        )
    if len(doc) == 1:
        raise BatchFailed(f"ClientError: The manifest file {uri} lists no objects.")
    prefix_bucket, prefix = split_s3(doc[0]["prefix"])
    return [(prefix_bucket, prefix + rel, rel) for rel in doc[1:]]


def _no_objects(uri: str, bucket: str, detail: str) -> str:
    return (
        f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure that '
        f'the bucket exists in the selected region, that objects exist under that S3 prefix, and that the role '
        f'has "s3:ListBucket" permissions on bucket "{bucket}".{detail}'
    )


def load_model(backend: Backend, model_name: str) -> Predictor:
    """The model's artifact, downloaded through boto3 and loaded by its image's algorithm, as an endpoint loads it."""
    with backend.lock:
        model_desc = backend.models.get(model_name.lower())
    if model_desc is None:
        raise BatchFailed(f'ClientError: Could not find model "{backend.arn("model", model_name)}".')
    container = backend.model_container(model_desc)
    image = container.get("Image", "")
    try:
        algorithm = algorithms.for_image(image)
    except algorithms.UnknownImage as exc:
        raise BatchFailed(f"ClientError: {exc} (model {model_name})") from None
    url = container.get("ModelDataUrl")
    if not url:
        raise BatchFailed(f"ClientError: Model {model_name} has no ModelDataUrl.")
    bucket, key = split_s3(url)
    try:
        blob = backend.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception:  # noqa: BLE001 - any S3 error reads as AWS's download failure
        raise BatchFailed(
            f"ClientError: Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there "
            "is an object located at the URL and that the role passed to CreateModel has permissions to download "
            "the model."
        ) from None
    try:
        return algorithm.load(blob, container, lambda uri: fetch_s3(backend, uri))
    except ValueError as exc:
        raise BatchFailed(f"ClientError: Unable to load the model of {model_name}: {exc}") from None
