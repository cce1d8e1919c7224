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


# Bounds for readers (the model history page): a request lists keys, never more than these, and
# reads only the records of the page it shows.
MAX_LISTED_KEYS = 50_000
MAX_ENDPOINTS = 100
MAX_RECORD_BYTES = 1024 * 1024


def list_endpoints(s3_client, bucket: str, prefix: str, max_endpoints: int = MAX_ENDPOINTS) -> tuple[list[str], bool]:
    """(endpoint names with records, sorted; whether there are more than ``max_endpoints``): one listing call."""
    response = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/history/", Delimiter="/",
                                         MaxKeys=max_endpoints)
    names = sorted(p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in response.get("CommonPrefixes", []))
    return names[:max_endpoints], bool(response.get("IsTruncated")) or len(names) > max_endpoints


def list_record_keys(s3_client, bucket: str, prefix: str, endpoint_name: str,
                     max_keys: int = MAX_LISTED_KEYS) -> tuple[list[str], bool]:
    """(record keys oldest first, at most ``max_keys``; whether the listing stopped at that bound)."""
    keys: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=history_prefix(prefix, endpoint_name),
                               PaginationConfig={"MaxItems": max_keys + 1, "PageSize": 1000})
    for page in pages:
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(".json"))
        if len(keys) > max_keys:
            return keys[:max_keys], True
    return keys, False


def read_record(s3_client, bucket: str, key: str, max_bytes: int = MAX_RECORD_BYTES) -> dict:
    """One record; a record over ``max_bytes`` is not read (a stub says so)."""
    response = s3_client.get_object(Bucket=bucket, Key=key)
    if response.get("ContentLength", 0) > max_bytes:
        response["Body"].close()
        return {"outcome": f"record too large to show ({response['ContentLength']} bytes)", "key": key}
    return json.loads(response["Body"].read(max_bytes + 1))


def read_page(s3_client, bucket: str, prefix: str, endpoint_name: str, limit: int, offset: int = 0) -> dict:
    """``limit`` records from ``offset``, newest first: lists keys (bounded) and reads only those records."""
    keys, truncated = list_record_keys(s3_client, bucket, prefix, endpoint_name)
    newest_first = keys[::-1]
    chosen = newest_first[offset:offset + limit]
    return {
        "endpoint": endpoint_name,
        "total": len(keys),
        "total_is_lower_bound": truncated,
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if offset + limit < len(keys) else None,
        "records": [read_record(s3_client, bucket, key) for key in chosen],
    }
