"""S3 event notifications as AWS formats them: moto's, with the fields moto leaves out.

moto already delivers ``s3:ObjectCreated:*`` notifications to SQS (and SNS, Lambda) in server
mode, honouring the prefix/suffix filter rules, and sends ``s3:TestEvent`` when a queue is
configured. Its event records lack what AWS adds (the object's ``versionId`` in a versioned
bucket, the ``sequencer``, ``userIdentity``, ``requestParameters``, ``responseElements``) and moto encodes ``/`` in keys,
which AWS leaves as is; this
module wraps moto's record builder to add them, once per process (:func:`install`).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from urllib.parse import quote_plus

_installed = False
_lock = threading.Lock()
_sequence = itertools.count()


def _sequencer() -> str:
    """Hex, growing with every event (AWS: comparable for events on the same key)."""
    return f"{time.time_ns():016X}{next(_sequence) % 0xFFFF:04X}"


def enrich(event: dict, bucket, key) -> dict:
    """Add AWS's fields to moto's event body (``{"Records": [record]}``) for ``key`` in ``bucket``."""
    for record in event.get("Records", []):
        obj = record["s3"]["object"]
        obj["key"] = quote_plus(key.name, safe="/")  # AWS keeps '/' (moto encodes it as %2F)
        if getattr(bucket, "is_versioned", False) and getattr(key, "version_id", "null") not in (None, "null"):
            obj["versionId"] = key.version_id
        obj["sequencer"] = _sequencer()
        record.setdefault("userIdentity", {"principalId": f"AWS:{getattr(key, 'account_id', '123456789012')}"})
        record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
        record.setdefault("responseElements", {"x-amz-request-id": secrets.token_hex(8).upper(),
                                               "x-amz-id-2": secrets.token_urlsafe(48)})
        record["s3"]["bucket"].setdefault("ownerIdentity", {"principalId": "A3NL1KOZZKExample"})
    return event


def install() -> None:
    """Wrap moto's S3 event builder (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from moto.s3 import notifications

        original = notifications._get_s3_event

        def _get_s3_event(event_name, bucket, key, notification_id):
            return enrich(original(event_name, bucket, key, notification_id), bucket, key)

        notifications._get_s3_event = _get_s3_event
        _installed = True
