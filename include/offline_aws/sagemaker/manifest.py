"""A ManifestFile data source, as AWS documents it and the SageMaker SDK's ``record_set()`` writes it.

``[{"prefix": "s3://bucket/path/"}, "relative/key1", "relative/key2", ...]``: each listed
object's URI is the prefix followed by the relative key; all of them are in the prefix's bucket.
"""

from __future__ import annotations

import json
import re

from ..limits import MAX_MANIFEST_BYTES


class ManifestError(ValueError):
    """The manifest cannot be used; ``str()`` is the failure reason (without ``ClientError:``)."""


def split_s3(uri: str) -> tuple[str, str]:
    match = re.match(r"^(?:s3|https)://([^/]+)/?(.*)$", uri)
    if not match:
        raise ManifestError(f"Invalid S3 URI {uri!r}.")
    return match.group(1), match.group(2)


def read_manifest(s3, uri: str) -> list[tuple[str, str, str]]:
    """(bucket, key, relative key) of every object the manifest at ``uri`` lists, in its order."""
    bucket, key = split_s3(uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > MAX_MANIFEST_BYTES:
            raise ManifestError(f"The manifest file {uri} is {head['ContentLength']} bytes, over the emulator's "
                                f"cap of {MAX_MANIFEST_BYTES}.")
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_MANIFEST_BYTES + 1)
    except ManifestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any S3 error reads as a download failure
        raise ManifestError(f"Unable to download the manifest file {uri} ({exc}).") from None
    return parse_manifest(raw, uri)


def parse_manifest(raw: bytes, uri: str) -> list[tuple[str, str, str]]:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"The manifest file {uri} is not valid JSON ({exc}).") from None
    if (not isinstance(doc, list) or not doc or not isinstance(doc[0], dict) or "prefix" not in doc[0]
            or not isinstance(doc[0]["prefix"], str) or not all(isinstance(r, str) for r in doc[1:])):
        raise ManifestError(
            f'The manifest file {uri} must be [{{"prefix": "s3://bucket/path/"}}, "relative/key", ...].'
        )
    if len(doc) == 1:
        raise ManifestError(f"The manifest file {uri} lists no objects.")
    bucket, prefix = split_s3(doc[0]["prefix"])
    if not bucket:
        raise ManifestError(f"The prefix of the manifest file {uri} must be a non-empty S3 URI.")
    return [(bucket, prefix + rel, rel) for rel in doc[1:]]
