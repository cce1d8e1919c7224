"""Cut a byte stream into the header line and chunks of whole lines, with each chunk's first line number.

Chunks are what everything downstream works on: a few megabytes each, so memory stays bounded
however large the file is, and line numbers stay exact (blank lines are kept) for error messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import numpy as np

from sagemaker_retrain.data_prep.errors import DataValidationError

CHUNK_ROWS = 200_000
CHUNK_BYTES = 8 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024
_NEWLINE = ord("\n")


def _read_blocks(stream: IO[bytes], chunk_bytes: int) -> Iterator[bytes]:
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            return
        yield block


def iter_raw_chunks(
    stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES, chunk_rows: int = CHUNK_ROWS
) -> tuple[bytes, Iterator[tuple[int, bytes]]]:
    """Read the header line, then yield ``(line number of the chunk's first line, bytes)``.

    Each chunk holds whole lines (blank ones included, so line numbers stay exact), at most
    ``chunk_rows`` of them and about ``chunk_bytes`` bytes; the last one ends with a newline.
    The header comes back as raw bytes (without its newline); an empty stream is an error.
    """
    blocks = _read_blocks(stream, chunk_bytes)
    head = b""
    while b"\n" not in head:
        block = next(blocks, b"")
        if not block:
            break
        head += block
        if len(head) > MAX_HEADER_BYTES and b"\n" not in head:
            raise DataValidationError(
                f"No line break in the first {MAX_HEADER_BYTES} bytes: is this a CSV file with one row per line?"
            )
    if not head.strip():
        raise DataValidationError("The data set is empty: no header row")
    header, _, rest = head.partition(b"\n")

    def chunks() -> Iterator[tuple[int, bytes]]:
        # A chunk is the last block's unfinished line + this block up to its last newline, joined
        # in one copy (slicing and concatenating bytes would copy the block twice).
        line, tail, block = 2, b"", rest
        while True:
            end = block.rfind(b"\n") + 1
            if end:
                data = block if not tail and end == len(block) else b"".join((tail, memoryview(block)[:end]))
                tail = block[end:]
                for piece, lines in _cap_rows(data, chunk_rows):
                    yield line, piece
                    line += lines
            else:
                tail += block
            block = next(blocks, b"")
            if not block:
                break
        if tail:
            yield line, tail + b"\n"

    return header, chunks()


def _cap_rows(data: bytes, chunk_rows: int) -> Iterator[tuple[bytes, int]]:
    """Cut ``data`` (whole lines) into pieces of at most ``chunk_rows`` lines; yield (piece, lines)."""
    while data:
        lines = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE))  # twice as fast as bytes.count
        if lines <= chunk_rows:
            yield data, lines
            return
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
        cut = int(ends[chunk_rows - 1]) + 1
        yield data[:cut], chunk_rows
        data = data[cut:]
