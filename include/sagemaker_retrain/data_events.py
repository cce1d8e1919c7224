"""New data: which objects a run trains on, from S3 event notifications or from the watched prefix.

Objects written under the watched prefix raise S3 event notifications (``s3:ObjectCreated:*``) on
an SQS queue; the DAG's ``AssetWatcher`` receives them and each batch of messages becomes an event
of the Asset ``sagemaker_retrain_new_data`` (extra ``{"from_trigger": true, "payload":
{"message_batch": [SQS messages]}}``). ``prepare`` turns the run's triggering events into a *drop*:

* **one object**: an object whose key ends with the data suffix (default ``.csv``) is a whole
  data set; the run trains on that exact version (the event's ``versionId``, when the bucket is
  versioned);
* **a multi-part drop** (a burst): upload the parts first, then a manifest ending with
  :data:`MANIFEST_SUFFIX` that names them, ``{"parts": ["s3://bucket/key", …]}`` (or keys relative
  to the manifest's folder). Only the manifest is watched, so the burst raises one notification
  and starts one run, which reads the parts in the manifest's order (one header, the same in
  every part). Put the parts where the notification does not look: outside the watched prefix
  (e.g. ``…/staging/DROP/part-0.csv``) or with another suffix (``part-0.csv.part``).

Several drops in one run's events (they arrived while a run was going on): the newest wins (each
drop is a whole data set); the others are logged. Messages that name no new object (S3's
``s3:TestEvent``, removals) and objects outside the watched prefix or with another suffix are
ignored. A scheduled run with a watched prefix trains on the newest drop under it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

MANIFEST_SUFFIX = ".manifest.json"
DEFAULT_DATA_SUFFIX = ".csv"
MAX_MANIFEST_BYTES = 256 * 1024
MAX_PARTS = 1000
WATCH_PREFIX_VARIABLE = "sagemaker_retrain_watch_prefix"
WATCH_SUFFIX_VARIABLE = "sagemaker_retrain_watch_suffix"
NEW_DATA_ASSET = "sagemaker_retrain_new_data"


class DropError(ValueError):
    """A drop cannot be read as announced (bad manifest, missing part); the message names it."""


@dataclass(frozen=True)
class S3Object:
    """One object named by a notification (or found by listing), pinned to its version if known."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    event_time: str = ""
    sequencer: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def as_source(self) -> dict:
        return {"uri": self.uri, "version_id": self.version_id}


@dataclass
class Drop:
    """What a run reads: ``sources`` (uri + version), announced by ``trigger`` (the object or the manifest)."""

    trigger: S3Object
    sources: list[dict]
    kind: str  # "object" or "manifest"
    ignored: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = f"{len(self.sources)} part(s) named by manifest" if self.kind == "manifest" else "object"
        version = f" (version {self.trigger.version_id})" if self.trigger.version_id else ""
        return f"{what} {self.trigger.uri}{version}"


@dataclass(frozen=True)
class Watch:
    """Where new data is expected: ``s3://bucket/prefix/`` and the data suffix (manifests always count)."""

    bucket: str
    prefix: str
    suffix: str = DEFAULT_DATA_SUFFIX

    @classmethod
    def parse(cls, uri: str, suffix: str | None = None) -> Watch:
        if not uri.startswith("s3://") or not uri[5:].partition("/")[0]:
            raise ValueError(f"Variable {WATCH_PREFIX_VARIABLE} must be s3://bucket/prefix/, got {uri!r}")
        bucket, _, prefix = uri[5:].partition("/")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "", suffix or DEFAULT_DATA_SUFFIX)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def covers(self, obj: S3Object) -> bool:
        return (obj.bucket == self.bucket and obj.key.startswith(self.prefix)
                and (obj.key.endswith(self.suffix) or obj.key.endswith(MANIFEST_SUFFIX)))


def load_watch(variables) -> Watch | None:
    """The watched prefix and suffix from Variables (``variables(name) -> str | None``); None when unset."""
    raw = (variables(WATCH_PREFIX_VARIABLE) or "").strip()
    if not raw:
        return None
    return Watch.parse(raw, (variables(WATCH_SUFFIX_VARIABLE) or "").strip() or None)


# --- notifications ----------------------------------------------------------------------------
def _records(body: str) -> list[dict]:
    """The S3 event records of one SQS message body (direct, or wrapped by SNS); [] for anything else."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        return []
    if isinstance(message, dict) and message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        return _records(message["Message"])  # S3 -> SNS -> SQS
    if not isinstance(message, dict) or not isinstance(message.get("Records"), list):
        return []  # e.g. {"Event": "s3:TestEvent", ...} sent when the notification is configured
    return [r for r in message["Records"] if isinstance(r, dict)]


def objects_from_messages(messages: Iterable[Mapping]) -> list[S3Object]:
    """The objects created, in the order the notifications name them (``ObjectCreated:*`` records only)."""
    found = []
    for message in messages:
        for record in _records(message.get("Body", "")):
            if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith(
                    "ObjectCreated:"):
                continue
            s3 = record.get("s3") or {}
            obj = s3.get("object") or {}
            bucket = (s3.get("bucket") or {}).get("name")
            if not bucket or not obj.get("key"):
                continue
            found.append(S3Object(
                bucket=bucket, key=unquote_plus(obj["key"]),  # keys arrive URL-encoded, spaces as '+'
                version_id=obj.get("versionId") or None, etag=obj.get("eTag") or None, size=obj.get("size"),
                event_time=str(record.get("eventTime") or ""), sequencer=str(obj.get("sequencer") or ""),
            ))
    return found


def messages_from_asset_events(extras: Iterable[Mapping | None]) -> list[dict]:
    """The SQS messages carried by the watcher's asset events (``extra.payload.message_batch``)."""
    messages: list[dict] = []
    for extra in extras:
        payload = (extra or {}).get("payload") or {}
        batch = payload.get("message_batch") if isinstance(payload, Mapping) else None
        messages.extend(m for m in batch or [] if isinstance(m, Mapping))
    return messages


def newest(objects: list[S3Object]) -> S3Object | None:
    """The newest object by event time (ISO 8601 UTC sorts as text); ties: the later notification."""
    if not objects:
        return None
    return max(enumerate(objects), key=lambda pair: (pair[1].event_time, pair[0]))[1]


# --- drops ------------------------------------------------------------------------------------
def _get(s3_client, obj: S3Object, **kwargs) -> dict:
    request = {"Bucket": obj.bucket, "Key": obj.key, **kwargs}
    if obj.version_id:
        request["VersionId"] = obj.version_id
    return s3_client.get_object(**request)


def read_manifest(s3_client, manifest: S3Object) -> list[dict]:
    """The parts a manifest names, as sources; DropError for a manifest that is not one."""
    try:
        response = _get(s3_client, manifest)
    except Exception as err:  # botocore ClientError and friends
        raise DropError(f"Cannot read manifest {manifest.uri}: {err}") from err
    if int(response.get("ContentLength") or 0) > MAX_MANIFEST_BYTES:
        response["Body"].close()
        raise DropError(f"Manifest {manifest.uri} is larger than {MAX_MANIFEST_BYTES} bytes")
    return parse_manifest(response["Body"].read(MAX_MANIFEST_BYTES + 1), manifest)


def parse_manifest(raw: bytes, manifest: S3Object) -> list[dict]:
    try:
        document = json.loads(raw)
    except ValueError as err:
        raise DropError(f"Manifest {manifest.uri} is not JSON: {err}") from None
    parts = document.get("parts") if isinstance(document, dict) else None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p for p in parts):
        raise DropError(f'Manifest {manifest.uri} must be {{"parts": ["s3://bucket/key", ...]}} with at least one part')
    if len(parts) > MAX_PARTS:
        raise DropError(f"Manifest {manifest.uri} names {len(parts)} parts; at most {MAX_PARTS} are read")
    folder = manifest.key.rsplit("/", 1)[0] + "/" if "/" in manifest.key else ""
    sources = []
    for part in parts:
        uri = part if part.startswith("s3://") else f"s3://{manifest.bucket}/{folder}{part.lstrip('/')}"
        if part.endswith(MANIFEST_SUFFIX):
            raise DropError(f"Manifest {manifest.uri} names another manifest ({part}); name the data parts")
        sources.append({"uri": uri, "version_id": None})
    if len({s["uri"] for s in sources}) != len(sources):
        raise DropError(f"Manifest {manifest.uri} names a part twice")
    return sources


def drop_of(s3_client, obj: S3Object, allowed: Callable[[str], None] = lambda uri: None) -> Drop:
    """The drop an object announces: itself, or the parts its manifest names.

    ``allowed(uri)`` raises for a location the admins do not allow; it is asked before the
    manifest is read and for every part it names.
    """
    allowed(obj.uri)
    if obj.key.endswith(MANIFEST_SUFFIX):
        sources = read_manifest(s3_client, obj)
        for source in sources:
            allowed(source["uri"])
        return Drop(trigger=obj, sources=sources, kind="manifest")
    return Drop(trigger=obj, sources=[obj.as_source()], kind="object")


def drop_from_events(s3_client, extras: Iterable[Mapping | None], watch: Watch | None,
                     allowed: Callable[[str], None] = lambda uri: None) -> Drop | None:
    """The drop a data-triggered run trains on (the newest announced), or None if the events name none."""
    objects = objects_from_messages(messages_from_asset_events(extras))
    ignored = [o.uri for o in objects if watch is not None and not watch.covers(o)]
    wanted = [o for o in objects if watch is None or watch.covers(o)]
    chosen = newest(wanted)
    if chosen is None:
        return None
    drop = drop_of(s3_client, chosen, allowed)
    drop.ignored = ignored + [o.uri for o in wanted if o is not chosen]
    return drop


def latest_drop(s3_client, watch: Watch, allowed: Callable[[str], None] = lambda uri: None,
                max_keys: int = 100_000) -> Drop | None:
    """The newest drop under the watched prefix (by LastModified), for a scheduled run; None if empty."""
    best = None
    listed = 0
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=watch.bucket, Prefix=watch.prefix):
        for item in page.get("Contents", []):
            listed += 1
            obj = S3Object(watch.bucket, item["Key"], etag=(item.get("ETag") or "").strip('"') or None,
                           size=item.get("Size"), event_time=item["LastModified"].isoformat())
            if watch.covers(obj) and (best is None or (obj.event_time, obj.key) > (best.event_time, best.key)):
                best = obj
        if listed >= max_keys:
            break
    return drop_of(s3_client, best, allowed) if best else None
