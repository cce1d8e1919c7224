"""Read the parts of a multi-part drop (issue 14's manifest convention) as one CSV stream, hashing each part."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from sagemaker_retrain.data_prep.chunks import MAX_HEADER_BYTES
from sagemaker_retrain.data_prep.errors import DataValidationError
from sagemaker_retrain.lineage import HashingReader, describe_source


class ConcatenatedParts:
    """The parts of a multi-part drop read as one CSV: the first part's header, then every part's rows.

    Each part must start with the same header line (byte for byte) and is hashed on its own
    (``parts``); ``sha256`` is the digest of all parts' bytes in order, what ``cat PARTS | sha256sum``
    prints. Parts are opened one at a time, as the reader reaches them.
    """

    def __init__(self, sources: list[dict], opener: Callable[[dict, dict], IO[bytes]]):
        import hashlib

        self._sources = list(sources)
        self._opener = opener
        self._index = -1
        self._current: HashingReader | None = None
        self._metadata: dict = {}
        self._header: bytes | None = None
        self._pending = b""
        self._last_byte = b"\n"
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        self.parts: list[dict] = []

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _raw(self, size: int) -> bytes:
        block = self._current.read(size)
        self._hash.update(block)
        self.bytes_read += len(block)
        return block

    def _next_part(self) -> bool:
        self._finish_part()
        self._index += 1
        if self._index >= len(self._sources):
            return False
        source = self._sources[self._index]
        self._metadata = {}
        self._current = HashingReader(self._opener(source, self._metadata))
        header = b""
        while not header.endswith(b"\n") and len(header) <= MAX_HEADER_BYTES:
            block = self._raw(1 if header else min(65536, MAX_HEADER_BYTES))
            if not block:
                break
            header += block
        line, newline, rest = header.partition(b"\n")
        if self._header is None:
            self._header = line
            self._pending = header
        else:
            if line.rstrip(b"\r") != self._header.rstrip(b"\r"):
                raise DataValidationError(
                    f"Part {source['uri']} of the drop has another header than the first part "
                    f"({self._sources[0]['uri']}): every part must start with the same header line")
            self._pending = (b"\n" if self._last_byte != b"\n" else b"") + rest
        return True

    def _finish_part(self) -> None:
        if self._current is not None:
            self.parts.append(describe_source(self._sources[self._index]["uri"], self._current, self._metadata))
            self._current.close()
            self._current = None

    def read(self, size: int = -1) -> bytes:
        out = b""
        want = size if size and size > 0 else None
        while want is None or len(out) < want:
            if self._pending:
                take = self._pending if want is None else self._pending[: want - len(out)]
                self._pending = self._pending[len(take):]
                out += take
                self._last_byte = take[-1:] or self._last_byte
                continue
            if self._current is None and not self._next_part():
                break
            if self._pending:
                continue
            block = self._raw(65536 if want is None else max(want - len(out), 1))
            if not block:
                self._finish_part()
                continue
            out += block
            self._last_byte = block[-1:]
        return out

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


def describe_parts(reader: ConcatenatedParts, label: str) -> dict:
    """The lineage of a multi-part drop: every part's record and the digest of all their bytes."""
    return {"uri": label, "sha256": reader.sha256, "bytes": reader.bytes_read, "etag": None, "version_id": None,
            "parts": reader.parts}
