"""Which bytes a run read: the source's identity (sha256 of the bytes, size, S3 ETag and VersionId).

The reader hashes while data preparation streams the source, so the digest costs no second read
and names exactly the bytes that were split and trained on.
"""

from __future__ import annotations

import hashlib
from typing import IO


class HashingReader:
    """Wrap a binary stream; every byte read goes through sha256."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        block = self._stream.read(size)
        self._hash.update(block)
        self.bytes_read += len(block)
        return block

    def close(self) -> None:
        self._stream.close()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def describe_source(uri: str, reader: HashingReader, s3_metadata: dict | None = None) -> dict:
    """The record of the input: URI, sha256 and size of the bytes read, and S3's ETag/VersionId if any."""
    meta = s3_metadata or {}
    return {
        "uri": uri,
        "sha256": reader.sha256,
        "bytes": reader.bytes_read,
        "etag": (meta.get("ETag") or "").strip('"') or None,
        "version_id": meta.get("VersionId"),
    }


# --- which data trained the model behind an endpoint --------------------------------------------
TAG_DATA_SHA256 = "sagemaker-retrain:data-sha256"
TAG_DATA_VERSION = "sagemaker-retrain:data-version-id"


def training_tags(source: dict) -> dict[str, str]:
    """Lineage for the training job's tags (values ≤ 256 characters): the digest and S3 version."""
    tags = {"data_sha256": source.get("sha256"), "data_version_id": source.get("version_id")}
    return {k: str(v)[:256] for k, v in tags.items() if v}


def _package_data(meta: dict) -> dict:
    rows = {k.removeprefix("rows-"): int(v) for k, v in meta.items() if k.startswith("rows-") and v.isdigit()}
    return {"uri": meta.get("dataset-uri"), "sha256": meta.get("dataset-sha256"), "etag": meta.get("dataset-etag"),
            "version_id": meta.get("dataset-version-id"), "bytes": meta.get("dataset-bytes"),
            "parts": meta.get("dataset-parts"), "split_seed": meta.get("split-seed"), "rows": rows or None}


def data_behind_endpoint(sm, endpoint_name: str, s3=None, bucket: str | None = None,
                         prefix: str | None = None, history_path: str = "history") -> dict:
    """Which data trained the model the endpoint serves, from the records alone.

    endpoint → its config → the serving model → the model package it was made from (its
    CustomerMetadataProperties) and the training job (its tags) → the run's history record in S3
    (when ``s3``/``bucket``/``prefix`` are given; under the model's ``history_path``). Each record's digest is kept under ``records``;
    ``consistent`` says whether every record that names a sha256 names the same one.
    """
    from sagemaker_retrain.config import TAG_RUN, TAG_TRAINING_JOB
    from sagemaker_retrain.ownership import tags_of

    endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
    config_name = endpoint["EndpointConfigName"]
    config = sm.describe_endpoint_config(EndpointConfigName=config_name)
    model_name = config["ProductionVariants"][0]["ModelName"]
    model = sm.describe_model(ModelName=model_name)
    containers = [model.get("PrimaryContainer") or {}] + list(model.get("Containers") or [])
    package_arn = next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)
    model_tags = tags_of(sm, model["ModelArn"])
    answer: dict = {"endpoint": endpoint_name, "endpoint_status": endpoint.get("EndpointStatus"),
                    "endpoint_config": config_name, "model": model_name, "model_package": package_arn,
                    "training_job": model_tags.get(TAG_TRAINING_JOB), "run_id": model_tags.get(TAG_RUN),
                    "data": {}, "records": {}}
    data: dict = {}
    if package_arn:
        meta = sm.describe_model_package(ModelPackageName=package_arn).get("CustomerMetadataProperties") or {}
        data = {k: v for k, v in _package_data(meta).items() if v}
        answer["training_job"] = answer["training_job"] or meta.get("training-job")
        answer["run_id"] = answer["run_id"] or meta.get("run-id")
        answer["records"]["model_package"] = data.get("sha256")
        slug = meta.get("run-slug")
    else:
        slug = None
    if answer["training_job"]:
        try:
            job = sm.describe_training_job(TrainingJobName=answer["training_job"])
            job_tags = tags_of(sm, job["TrainingJobArn"])
            answer["records"]["training_job"] = job_tags.get(TAG_DATA_SHA256)
            data.setdefault("version_id", job_tags.get(TAG_DATA_VERSION))
            answer["training_job_status"] = job.get("TrainingJobStatus")
        except Exception as err:  # noqa: BLE001 - a deleted job: the other records still answer
            answer["records"]["training_job"] = f"unreadable: {type(err).__name__}"
    if s3 is not None and bucket and prefix and slug:
        from sagemaker_retrain import history

        key = history.record_key(prefix, endpoint_name, slug, history_path)
        try:
            record = history.read_record(s3, bucket, key)
            source = record.get("data_source") or ((record.get("scored_rows") or {}).get("data")) or {}
            answer["history"] = f"s3://{bucket}/{key}"
            answer["records"]["history"] = source.get("sha256")
            for name in ("uri", "etag", "version_id", "bytes", "parts"):
                if source.get(name) and not data.get(name):
                    data[name] = source[name]
            data.setdefault("uri", record.get("dataset_uri"))
        except Exception as err:  # noqa: BLE001 - no record (yet): the registry still answers
            answer["records"]["history"] = f"unreadable: {type(err).__name__}"
    digests = {v for v in answer["records"].values() if v and not str(v).startswith("unreadable")}
    answer["data"] = {k: v for k, v in data.items() if v is not None}
    answer["consistent"] = len(digests) == 1
    if not data.get("sha256") and len(digests) == 1:
        answer["data"]["sha256"] = next(iter(digests))
    return answer
