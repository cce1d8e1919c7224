"""Model history: one JSON record per run under ``s3://BUCKET/PREFIX/PATH/ENDPOINT/``.

``PATH`` is the model's history path (``ModelSpec.history_path``; ``history`` by default, where the
first model's records have always been). One object per run (never a read-modify-write of a shared
file), so concurrent or retried runs cannot lose each other's records; reading the history is a
prefix listing.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)

HISTORY_PATH = "history"


def history_prefix(prefix: str, endpoint_name: str, path: str = HISTORY_PATH) -> str:
    return f"{prefix}/{path}/{endpoint_name}/"


def record_key(prefix: str, endpoint_name: str, slug: str, path: str = HISTORY_PATH) -> str:
    """Where run ``slug``'s record lives: its writers and its readers (the run's summary) name it alike."""
    return f"{history_prefix(prefix, endpoint_name, path)}{slug}.json"


def record_run(s3_client, bucket: str, prefix: str, endpoint_name: str, slug: str, record: dict,
               path: str = HISTORY_PATH) -> str:
    key = record_key(prefix, endpoint_name, slug, path)
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(record, indent=2, default=str).encode(),
                         ContentType="application/json")
    return f"s3://{bucket}/{key}"


def read_history(s3_client, bucket: str, prefix: str, endpoint_name: str, path: str = HISTORY_PATH) -> list[dict]:
    """All records for an endpoint, oldest first (keys sort by the run's time)."""
    records = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=history_prefix(prefix, endpoint_name, path)):
        for obj in page.get("Contents", []):
            records.append(json.loads(s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()))
    return records


# Bounds for readers (the model history page): a request lists keys, never more than these, and
# reads only the records of the page it shows.
MAX_LISTED_KEYS = 50_000
MAX_ENDPOINTS = 100
MAX_RECORD_BYTES = 1024 * 1024


def list_endpoints(s3_client, bucket: str, prefix: str, max_endpoints: int = MAX_ENDPOINTS,
                   path: str = HISTORY_PATH) -> tuple[list[str], bool]:
    """(endpoint names with records, sorted; whether there are more than ``max_endpoints``): one listing call."""
    response = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{path}/", Delimiter="/",
                                         MaxKeys=max_endpoints)
    names = sorted(p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in response.get("CommonPrefixes", []))
    return names[:max_endpoints], bool(response.get("IsTruncated")) or len(names) > max_endpoints


def list_record_keys(s3_client, bucket: str, prefix: str, endpoint_name: str,
                     max_keys: int = MAX_LISTED_KEYS, path: str = HISTORY_PATH) -> tuple[list[str], bool]:
    """(record keys oldest first, at most ``max_keys``; whether the listing stopped at that bound)."""
    keys: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=history_prefix(prefix, endpoint_name, path),
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


def read_shown_record(s3_client, bucket: str, key: str) -> dict:
    """A record for a reader: one that is not a JSON object (corrupt, truncated, hand-edited) comes back as a
    stub saying so, and is logged, so one bad record never takes a page down."""
    try:
        record = read_record(s3_client, bucket, key)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        record = err
    if isinstance(record, dict):
        return record
    reason = f"{type(record).__name__}: {record}" if isinstance(record, Exception) else f"a JSON {type(record).__name__}"
    log.warning("Unreadable history record s3://%s/%s (%s)", bucket, key, reason)
    return {"outcome": "unreadable record (not a JSON object; see the API server's log)", "key": key,
            "unreadable": True}


def read_page(s3_client, bucket: str, prefix: str, endpoint_name: str, limit: int, offset: int = 0,
              path: str = HISTORY_PATH) -> dict:
    """``limit`` records from ``offset``, newest first: lists keys (bounded) and reads only those records."""
    keys, truncated = list_record_keys(s3_client, bucket, prefix, endpoint_name, path=path)
    newest_first = keys[::-1]
    chosen = newest_first[offset:offset + limit]
    return {
        "endpoint": endpoint_name,
        "total": len(keys),
        "total_is_lower_bound": truncated,
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if offset + limit < len(keys) else None,
        "records": [read_shown_record(s3_client, bucket, key) for key in chosen],
    }
