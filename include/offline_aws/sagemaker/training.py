"""The training "instance": moves a job through Starting -> Downloading -> Training -> Uploading.

It runs in a background thread, reads the channels from S3 and writes the log and the model
through boto3 (the emulator's own S3/Logs), like the real container does, so everything a
client observes (statuses, transitions, logs, artifacts) comes from real work.
"""

from __future__ import annotations

import re
import threading
import time

from .. import algorithms
from ..algorithms.base import AlgorithmFailed, JobStopped, JobStoppedByRuntime, TrainingContext
from ..limits import MAX_DECOMPRESSED_BYTES, LimitExceeded, gunzip
from .cloudwatch import LogWriter
from .manifest import ManifestError, read_manifest
from .records import Backend, TrainingJob, now, record_transition

# Emulated durations in seconds at time scale 1 (training itself takes its real time).
STARTING_SECONDS = 2.0
DOWNLOADING_SECONDS = 2.0
UPLOADING_SECONDS = 1.0


class JobFailed(Exception):
    """Ends the job Failed; the message is the FailureReason."""


def start_training_job(backend: Backend, job: TrainingJob) -> None:
    job.thread = threading.Thread(
        target=run_training_job, args=(backend, job), name=f"training-{job.desc['TrainingJobName']}", daemon=True
    )
    job.thread.start()


def run_training_job(backend: Backend, job: TrainingJob) -> None:
    """The whole life of one job; never raises (every outcome lands in the job record)."""
    log = LogWriter(
        backend.aws, "/aws/sagemaker/TrainingJobs", f"{job.desc['TrainingJobName']}/algo-1-{int(time.time())}"
    )
    try:
        _run(backend, job, log)
        return
    except JobStopped:
        outcome = ("Stopped", "Stopped", "Training job stopped by user.", None, False)
    except JobStoppedByRuntime as exc:
        outcome = ("Stopped", "MaxRuntimeExceeded", str(exc), str(exc), True)
    except JobFailed as exc:
        outcome = ("Failed", "Failed", f"Training job failed. {exc}", str(exc), False)
    except Exception as exc:  # noqa: BLE001 - the emulator must not lose a job to a bug
        reason = f"AlgorithmError: {type(exc).__name__}: {exc}"
        outcome = ("Failed", "Failed", f"Training job failed. {reason}", reason, False)
    finally:
        try:  # the log is complete before the job ends, so a client reading it after the end sees every line
            log.flush()
        except Exception:  # noqa: BLE001 - logs are best effort, the job outcome is not
            pass
    status, secondary, message, reason, runtime = outcome
    finish_job(backend, job, status, secondary, message, reason=reason, runtime=runtime)


def _phase(backend: Backend, job: TrainingJob, status: str, message: str, seconds: float) -> None:
    with backend.lock:
        if job.stop_requested.is_set():
            raise JobStopped()
        record_transition(job.desc, status, message)
    if backend.clock.pause(seconds, job.stop_requested):
        raise JobStopped()


def _run(backend: Backend, job: TrainingJob, log: LogWriter) -> None:
    desc = job.desc  # read-only here except under backend.lock
    if backend.clock.pause(STARTING_SECONDS, job.stop_requested):
        raise JobStopped()
    _phase(backend, job, "Starting", "Preparing the instances for training", 0)
    if job.injected_failure is not None:
        raise JobFailed(job.injected_failure)
    algorithm = _algorithm(desc["AlgorithmSpecification"])
    with backend.lock:
        desc["TrainingStartTime"] = now()
    _phase(backend, job, "Downloading", "Downloading input data", 0)
    started = time.monotonic()
    files: dict[str, list[str]] = {}
    data = _download_channels(backend, desc, log, algorithm, files)
    if backend.clock.pause(max(0.0, DOWNLOADING_SECONDS - (time.monotonic() - started)), job.stop_requested):
        raise JobStopped()
    _phase(backend, job, "Training", "Training image download completed. Training in progress.", 0)

    def sink(line: str) -> None:
        log.write(line)
        if job.stop_requested.is_set():
            raise JobStopped()

    log.write("Docker entrypoint called with argument(s): train")
    log.write("Running default environment configuration script")
    stopping = desc.get("StoppingCondition") or {}
    ctx = TrainingContext(
        desc=desc, hyperparameters=dict(desc.get("HyperParameters") or {}), channels=data, log=sink,
        stop_requested=job.stop_requested, aws=backend.aws, endpoint_url=backend.aws.endpoint_url,
        max_runtime=stopping.get("MaxRuntimeInSeconds"),
        extra={"nan_weights": job.nan_weights, "channel_files": files, "region": backend.region},
        flush=log.flush,
    )
    try:
        result = algorithm.train(ctx)
    except AlgorithmFailed as exc:
        raise JobFailed(str(exc)) from None
    log.flush()

    _phase(backend, job, "Uploading", "Uploading generated training model", 0)
    started = time.monotonic()
    _upload_model(backend, desc, result.artifact)
    if result.output is not None:  # <S3OutputPath>/<job>/output/output.tar.gz, as AWS writes it
        _upload_model(backend, desc, result.output, name="output.tar.gz")
    if backend.clock.pause(max(0.0, UPLOADING_SECONDS - (time.monotonic() - started)), job.stop_requested):
        raise JobStopped()
    stamp = now()
    with backend.lock:
        desc["FinalMetricDataList"] = [  # as AWS: the algorithm's MetricDefinitions over its log
            {"MetricName": name, "Value": value, "Timestamp": stamp} for name, value in result.metrics.items()
        ]
    finish_job(backend, job, "Completed", "Completed", "Training job completed")


def finish_job(backend, job, status: str, secondary: str, message: str, *, reason: str | None = None,
               runtime: bool = False) -> None:
    with backend.lock:
        desc = job.desc
        if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return
        if status == "Failed" and job.stop_requested.is_set() and not runtime:
            status, secondary, message, reason = "Stopped", "Stopped", "Training job stopped by user.", None
        end = now()
        desc["TrainingJobStatus"] = status
        record_transition(desc, secondary, message, final=True)
        if reason is not None:
            desc["FailureReason"] = reason
        desc.setdefault("TrainingStartTime", desc["CreationTime"])
        desc["TrainingEndTime"] = end
        seconds = max(1, round((end - desc["TrainingStartTime"]).total_seconds()))
        desc["TrainingTimeInSeconds"] = seconds
        desc["BillableTimeInSeconds"] = seconds * int(desc["ResourceConfig"].get("InstanceCount", 1))


def _algorithm(algo: dict):
    image = algo.get("TrainingImage")
    if not image:
        raise JobFailed(
            f"ClientError: Algorithm {algo.get('AlgorithmName')!r} is not available offline: the emulator runs "
            f"the built-in images only ({algorithms.images.SUPPORTED})."
        )
    try:
        return algorithms.for_image(image)
    except algorithms.UnknownImage as exc:
        raise JobFailed(f"ClientError: {exc}") from None


def _split_s3(uri: str) -> tuple[str, str]:
    match = re.match(r"^(?:s3|https)://([^/]+)/?(.*)$", uri)
    if not match:
        raise JobFailed(f"ClientError: Invalid S3 URI {uri!r}.")
    return match.group(1), match.group(2)


def _download_channels(backend: Backend, desc: dict, log: LogWriter, algorithm,
                       files: dict[str, list[str]] | None = None) -> dict[str, tuple[str | None, list[bytes]]]:
    """Fetch every channel's objects: an S3Prefix's part files sorted by key, or a manifest's in its order.

    ``files`` (if given) gets each channel's file names as the container sees them under
    ``/opt/ml/input/data/<channel>/``: the key less the S3Uri prefix, or a manifest entry's file name.
    """
    s3 = backend.aws.client("s3")
    channels: dict[str, tuple[str | None, list[bytes]]] = {}
    names = [c["ChannelName"] for c in desc.get("InputDataConfig") or []]
    allowed = getattr(algorithm, "channels", None)  # None: any channel (script mode)
    for name in names:
        if allowed is not None and name not in allowed:
            raise JobFailed(
                f"ClientError: Unable to initialize the algorithm. Unexpected channel {name!r}: {algorithm.title} "
                f"accepts the channels {', '.join(allowed[:-1])} and {allowed[-1]}."
            )
    if allowed is not None and "train" not in names:
        raise JobFailed("ClientError: Unable to initialize the algorithm. The 'train' channel is required.")
    instances = int(desc["ResourceConfig"].get("InstanceCount", 1))
    for channel in desc.get("InputDataConfig") or []:
        name = channel["ChannelName"]
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise JobFailed(f"ClientError: Channel {name!r}: only S3DataSource is supported offline.")
        kind = source["S3DataType"]
        if kind == "S3Prefix":
            objects = _list_prefix(s3, source["S3Uri"])
        elif kind == "ManifestFile":
            try:
                objects = [(bucket, key) for bucket, key, _ in read_manifest(s3, source["S3Uri"])]
            except ManifestError as exc:
                raise JobFailed(f"ClientError: Data download failed:{exc}") from None
        else:
            raise JobFailed(
                f"ClientError: Channel {name!r}: S3DataType {kind} is not supported offline (use S3Prefix or "
                "ManifestFile; AugmentedManifestFile needs Pipe mode and attribute names, not emulated)."
            )
        if source.get("S3DataDistributionType") == "ShardedByS3Key" and instances > 1:
            # Host algo-(i+1) gets objects i, i+n, i+2n...; the emulator trains once, as all hosts together.
            for host in range(instances):
                shard = [f"s3://{b}/{k}" for b, k in objects[host::instances]]
                log.write(f"Channel '{name}' (ShardedByS3Key) on algo-{host + 1}: {len(shard)} object(s) {shard}")
        blobs = []
        prefix = _split_s3(source["S3Uri"])[1] if kind == "S3Prefix" else None
        if files is not None:  # the key less the S3Uri's prefix (an object named by the URI: its file name)
            files[name] = [(key[len(prefix):].lstrip("/") if prefix is not None else "") or key.rsplit("/", 1)[-1]
                           for _, key in objects]
        for bucket, key in objects:
            body = _get_object(s3, bucket, key, source["S3Uri"] if kind == "ManifestFile" else None)
            if channel.get("CompressionType") == "Gzip":
                try:
                    body = gunzip(body, what=f"s3://{bucket}/{key}")
                except (LimitExceeded, OSError) as exc:
                    raise JobFailed(f"ClientError: Channel {name!r}: {exc}") from None
            blobs.append(body)
        channels[name] = (channel.get("ContentType"), blobs)
    return channels


def _list_prefix(s3, uri: str) -> list[tuple[str, str]]:
    bucket, prefix = _split_s3(uri)
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    except Exception as exc:  # noqa: BLE001 - reported as AWS does, whatever S3 said
        raise JobFailed(_no_objects(uri, bucket, f" ({exc})")) from None
    if not keys:
        raise JobFailed(_no_objects(uri, bucket, ""))
    return [(bucket, key) for key in sorted(keys)]


def _get_object(s3, bucket: str, key: str, manifest_uri: str | None) -> bytes:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001 - a listed object that is not there fails the job
        if manifest_uri is None:
            raise JobFailed(f"ClientError: Data download failed:Unable to download s3://{bucket}/{key} ({exc}).") from None
        raise JobFailed(
            f"ClientError: Data download failed:The object s3://{bucket}/{key} listed in the manifest file "
            f"{manifest_uri} could not be downloaded. Please ensure that every object the manifest lists exists "
            f'in the selected region and that the role has "s3:GetObject" permissions on it.'
        ) from None
    if head["ContentLength"] > MAX_DECOMPRESSED_BYTES:
        raise JobFailed(f"ClientError: s3://{bucket}/{key} is {head['ContentLength']} bytes, over the emulator's "
                        f"cap of {MAX_DECOMPRESSED_BYTES} per object.")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _upload_model(backend: Backend, desc: dict, payload: bytes, name: str | None = None) -> None:
    bucket, key = _split_s3(desc["ModelArtifacts"]["S3ModelArtifacts"])
    if name is not None:
        key = f"{key.rsplit('/', 1)[0]}/{name}"
    try:
        backend.aws.client("s3").put_object(Bucket=bucket, Key=key, Body=payload)
    except Exception as exc:  # noqa: BLE001 - e.g. NoSuchBucket, reported in the job
        raise JobFailed(f"ClientError: Failed to upload the model to s3://{bucket}/{key}: {exc}") from None


def _no_objects(uri: str, bucket: str, detail: str) -> str:
    return (
        f'ClientError: Data download failed:No S3 objects found under S3 URL "{uri}" given in input data '
        "source. Please ensure that the bucket exists in the selected region, that objects exist under that "
        f'S3 prefix, and that the role has "s3:ListBucket" permissions on bucket "{bucket}".{detail}'
    )
