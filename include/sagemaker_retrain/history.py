"""Model history: one JSON record per run under ``s3://BUCKET/PREFIX/history/ENDPOINT/``.

One object per run (never a read-modify-write of a shared file), so concurrent or retried runs
cannot lose each other's records; reading the history is a prefix listing.
"""

from __future__ import annotations

import json


def history_prefix(prefix: str, endpoint_name: str) -> str:
    return f"{prefix}/history/{endpoint_name}/"


def record_run(s3_client, bucket: str, prefix: str, endpoint_name: str, slug: str, record: dict) -> str:
    key = f"{history_prefix(prefix, endpoint_name)}{slug}.json"
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(record, indent=2, default=str).encode(),
                         ContentType="application/json")
    return f"s3://{bucket}/{key}"


def read_history(s3_client, bucket: str, prefix: str, endpoint_name: str) -> list[dict]:
    """All records for an endpoint, oldest first (keys sort by the run's time)."""
    records = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=history_prefix(prefix, endpoint_name)):
        for obj in page.get("Contents", []):
            records.append(json.loads(s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()))
    return records
