"""The shared filtering, sorting and pagination of SageMaker's List* operations.

AWS defaults: SortBy CreationTime, SortOrder Descending, MaxResults 10; NameContains matches
case-insensitively; NextToken is opaque and only valid with the same filters.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from .exceptions import ValidationException


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode(token: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except Exception as exc:  # noqa: BLE001 - any garbage token is AWS's same error
        raise ValidationException("Invalid pagination token: the NextToken is not valid.") from exc


def paginate(rows: list[dict], req: dict, *, name_key: str, status_key: str | None = None):
    """Filter/sort/page ``rows`` per the List* request ``req``; return (page, next token or None)."""
    contains = (req.get("NameContains") or "").lower()
    if contains:
        rows = [r for r in rows if contains in r[name_key].lower()]
    if status_key and req.get("StatusEquals"):
        rows = [r for r in rows if r[status_key] == req["StatusEquals"]]
    for key, field, after in (
        ("CreationTimeAfter", "CreationTime", True),
        ("CreationTimeBefore", "CreationTime", False),
        ("LastModifiedTimeAfter", "LastModifiedTime", True),
        ("LastModifiedTimeBefore", "LastModifiedTime", False),
    ):
        if req.get(key) is not None:
            bound = _as_datetime(req[key])
            rows = [
                r for r in rows if field in r and (r[field] > bound if after else r[field] < bound)
            ]
    sort_by = req.get("SortBy") or "CreationTime"
    sort_key = {"Name": name_key, "CreationTime": "CreationTime", "Status": status_key}.get(sort_by)
    if sort_key is None:
        raise ValidationException(f"Sorting by {sort_by} is not supported for this operation.")
    descending = (req.get("SortOrder") or "Descending") == "Descending"
    rows = sorted(rows, key=lambda r: (r[sort_key], r["CreationTime"]), reverse=descending)
    start = _decode(req["NextToken"]) if req.get("NextToken") else 0
    limit = req.get("MaxResults") or 10
    page = rows[start : start + limit]
    token = _encode(start + limit) if start + limit < len(rows) else None
    return page, token
