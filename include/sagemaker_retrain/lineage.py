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
