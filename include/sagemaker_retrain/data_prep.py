"""Read, validate, split and upload a CSV data set in the layout Linear Learner wants.

The data set is streamed in chunks of a few megabytes, so memory stays bounded however large it
is, and each finished part file is uploaded (multipart, in parallel, by boto3's transfer manager)
while the next one is being prepared. Every problem is reported with the line of the file
(the header is line 1) or the column that causes it, before any SageMaker call is made; if a bad
row turns up after some parts were uploaded, those parts are deleted again.

Two paths through a chunk, with the same result:

* the **fast path** (plain numeric CSV: digits, ``.eE+-``, commas, newlines, one field per
  column on every line): pandas' C parser converts the chunk to floats for validation, and the
  output rows are the input's own bytes, rearranged label-first and gathered into the splits
  with numpy (no number is formatted back to text, so nothing is rounded);
* the **careful path** (quotes, blanks, spaces, ragged lines, anything unusual): Python's csv
  module, one line at a time, which names the first bad line and column exactly.

Output: label first, no header, in part files of about ``part_bytes`` (``text/csv``), or dense
float32 RecordIO-protobuf (``application/x-recordio-protobuf``) for the train and validation
channels. The train channel gets at least ``min_train_parts`` files, so a job with several
instances can shard it with ``ShardedByS3Key``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from sagemaker_retrain.lineage import HashingReader, describe_source

SPLITS = ("train", "validation", "test")
MIN_ROWS = 10
CHUNK_ROWS = 200_000
CHUNK_BYTES = 8 * 1024 * 1024
PART_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
CONTENT_TYPES = {CSV: ".csv", RECORDIO: ".pbr"}
# The test channel stays CSV in every mode: evaluation reads it back and scores it as text/csv.
CSV_ONLY_CHANNELS = ("test",)

# Bytes allowed on the fast path: what plain numbers, commas and newlines are made of.
_FAST_BYTES = b"0123456789.eE+-,\n"
_COMMA, _NEWLINE = ord(","), ord("\n")


def default_transfer_config():
    """Multipart uploads of 16 MB parts, 8 in flight: several part files move at once."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                          max_concurrency=8, use_threads=True)


class DataValidationError(ValueError):
    """The data set is unusable; the message names the row or column at fault."""


@dataclass
class PreparedData:
    """What prepare uploaded: one S3 prefix per channel, the counts, and held-out smoke rows.

    ``content_types`` is each channel's ContentType for the training job (the test channel is
    always ``text/csv``); ``parts`` is the number of files per channel.
    """

    channel_uris: dict[str, str]
    rows: dict[str, int]
    feature_names: list[str]
    target_column: str
    smoke_features: list[list[float]] = field(default_factory=list)
    source: dict = field(default_factory=dict)  # lineage: uri, sha256 and size of the bytes read, ETag, VersionId
    smoke_labels: list[float] = field(default_factory=list)
    content_types: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SPLITS, CSV))
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return len(self.feature_names)

    @property
    def content_type(self) -> str:
        """The train channel's ContentType."""
        return self.content_types.get("train", CSV)

    def as_dict(self) -> dict:
        return {
            "channel_uris": self.channel_uris,
            "rows": self.rows,
            "feature_names": self.feature_names,
            "feature_dim": self.feature_dim,
            "target_column": self.target_column,
            "smoke_features": self.smoke_features,
            "smoke_labels": self.smoke_labels,
            "content_types": self.content_types,
            "parts": self.parts,
            "source": self.source,
        }


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def open_source(uri: str, s3_client=None, base_dir: Path | None = None, metadata: dict | None = None,
                version_id: str | None = None) -> IO[bytes]:
    """Open a local path or an s3:// object (``version_id``: that version) for streaming; a missing
    source is a clear error.

    ``metadata``, if given, receives the S3 object's ``ETag`` and ``VersionId`` (lineage).
    """
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        try:
            response = s3_client.get_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
            if metadata is not None:
                metadata.update({k: response.get(k) for k in ("ETag", "VersionId")})
            return response["Body"]
        except Exception as err:  # botocore ClientError and friends
            raise DataValidationError(f"Cannot read data set {uri}: {err}") from err
    path = Path(uri)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise DataValidationError(f"Data set {uri!r} not found (looked at {path})")
    if not os.access(path, os.R_OK):
        raise DataValidationError(f"Data set {path} is not readable")
    return path.open("rb")


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


# ----------------------------------------------------------------------------- reading


def _parse_header(raw: bytes) -> list[str]:
    """The header's column names, validated (binary, blank, duplicate, wrong delimiter)."""
    if raw.startswith(b"\x1f\x8b") or b"\x00" in raw:
        raise DataValidationError("Line 1 is binary, not text: the data set must be an uncompressed, "
                                  "comma-separated CSV file (is it gzip or another binary format?)")
    try:
        line = raw.decode("utf-8-sig").strip("\r\n")
    except UnicodeDecodeError as err:
        raise DataValidationError(f"Line 1 is not UTF-8 text ({err.reason} at byte {err.start}): the data set "
                                  "must be a comma-separated CSV file") from None
    if not line.strip():
        raise DataValidationError("Line 1 is blank: the first line must be the header row")
    names = next(csv.reader([line]))
    if len(names) == 1 and any(sep in line for sep in (";", "\t", "|")):
        # The line itself is not shown: a file that is not CSV may hold anything (a password file, say).
        raise DataValidationError("The header has a single column: the file must be comma-separated")
    stripped = [name.strip() for name in names]
    for position, name in enumerate(stripped, start=1):
        if not name:
            raise DataValidationError(f"Column {position} of the header has a blank name")
    seen: set[str] = set()
    for name in stripped:
        if name in seen:
            raise DataValidationError(f"Column name {name!r} appears more than once in the header")
        seen.add(name)
    return stripped


_COLUMN_NAME = re.compile(r"^[A-Za-z0-9_ .()%/#-]{1,64}$")


def _looks_like_column_names(names: list[str]) -> bool:
    """Whether a header may be echoed in a message: several plain names, so not some other kind of file."""
    return len(names) >= 2 and all(_COLUMN_NAME.match(name) for name in names)


def _read_blocks(stream: IO[bytes], chunk_bytes: int) -> Iterator[bytes]:
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            return
        yield block


def iter_raw_chunks(
    stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES, chunk_rows: int = CHUNK_ROWS
) -> tuple[list[str], Iterator[tuple[int, bytes]]]:
    """Read the header, then yield ``(line number of the chunk's first line, bytes)``.

    Each chunk holds whole lines (blank ones included, so line numbers stay exact), at most
    ``chunk_rows`` of them and about ``chunk_bytes`` bytes; the last one ends with a newline.
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
    names = _parse_header(header)

    def chunks() -> Iterator[tuple[int, bytes]]:
        line, buffer = 2, rest
        while True:
            end = buffer.rfind(b"\n") + 1
            if end:
                for piece, lines in _cap_rows(buffer[:end] if end < len(buffer) else buffer, chunk_rows):
                    yield line, piece
                    line += lines
                buffer = buffer[end:]
            block = next(blocks, b"")
            if not block:
                break
            buffer = buffer + block if buffer else block
        if buffer:
            yield line, buffer + b"\n"

    return names, chunks()


def _cap_rows(data: bytes, chunk_rows: int) -> Iterator[tuple[bytes, int]]:
    """Cut ``data`` (whole lines) into pieces of at most ``chunk_rows`` lines; yield (piece, lines)."""
    while data:
        lines = data.count(b"\n")
        if lines <= chunk_rows:
            yield data, lines
            return
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
        cut = int(ends[chunk_rows - 1]) + 1
        yield data[:cut], chunk_rows
        data = data[cut:]


class _Rows:
    """One chunk's rows: float values (file column order) and label-first rows or CSV on demand."""

    values: np.ndarray
    order: list[int]
    first_line: int
    line_numbers: np.ndarray | None = None  # per row, when blank lines make them irregular

    def __len__(self) -> int:
        return len(self.values)

    @property
    def labels(self) -> np.ndarray:
        return self.values[:, self.order[0]]

    def take(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` as floats, label first."""
        return self.values[index][:, self.order]

    def line_of(self, row: int) -> int:
        """The file line number of data row ``row`` of this chunk."""
        if self.line_numbers is not None:
            return int(self.line_numbers[row])
        return self.first_line + row

    def csv(self, index: np.ndarray) -> bytes:
        raise NotImplementedError


class _FastRows(_Rows):
    """Rows of plain numeric CSV: the output is the input's bytes, gathered with numpy.

    A row ``P,T,S\\n`` (``T`` the target field) is three byte segments written as ``T,`` + ``P,``
    + ``S\\n``; when the target is the last field (``P,T\\n``) two separators are swapped after.
    """

    def __init__(self, raw: np.ndarray, seps: np.ndarray, values: np.ndarray, order: list[int], first_line: int):
        self.raw, self.values, self.order, self.first_line = raw, values, order, first_line
        target = order[0]
        ends = seps[:, -1]
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        t_start = starts if target == 0 else seps[:, target - 1] + 1
        t_end = seps[:, target]
        self.seg_src = np.stack([t_start, starts, t_end + 1], axis=1)
        self.seg_len = np.stack([t_end + 1 - t_start, t_start - starts, ends - t_end], axis=1)
        self.target_len = t_end - t_start
        self.swap = target == seps.shape[1] - 1

    def csv(self, index: np.ndarray) -> bytes:
        if len(index) == 0:
            return b""
        lens = self.seg_len[index].ravel()
        out_start = np.cumsum(lens) - lens
        total = int(out_start[-1] + lens[-1])
        dtype = np.int32 if max(total, len(self.raw)) < 2**31 - 1 else np.int64
        gather = np.repeat((self.seg_src[index].ravel() - out_start).astype(dtype), lens)
        gather += _arange(total, dtype)
        out = self.raw[gather]
        del gather
        if self.swap:
            row_start = out_start[::3]
            out[row_start + self.target_len[index]] = _COMMA
            out[row_start + lens.reshape(-1, 3).sum(axis=1) - 1] = _NEWLINE
        return out.tobytes()


_ARANGE: dict = {}


def _arange(n: int, dtype) -> np.ndarray:
    """``np.arange(n)`` from a cached array (saves allocating and faulting in one per gather)."""
    cached = _ARANGE.get(np.dtype(dtype))
    if cached is None or len(cached) < n:
        if n > 64 * 1024 * 1024:  # too big to keep around
            return np.arange(n, dtype=dtype)
        cached = _ARANGE[np.dtype(dtype)] = np.arange(max(n, 2 * CHUNK_BYTES), dtype=dtype)
    return cached[:n]


class _FormattedRows(_Rows):
    """Rows that came through the careful path: written back as shortest round-trip floats."""

    def __init__(self, values: np.ndarray, order: list[int], first_line: int, line_numbers: list[int]):
        self.values, self.order, self.first_line = values, order, first_line
        self.line_numbers = np.asarray(line_numbers, dtype=np.int64)

    def csv(self, index: np.ndarray) -> bytes:
        if len(index) == 0:
            return b""
        lines = [",".join(map(repr, row)) for row in self.take(index).tolist()]
        return ("\n".join(lines) + "\n").encode()


def _fast_rows(data: bytes, width: int, order: list[int], first_line: int) -> _Rows | None:
    """The fast path, or None when the chunk needs the careful path (or has an error to name)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if data.translate(None, _FAST_BYTES):
        return None
    newline = raw == _NEWLINE
    rows = int(np.count_nonzero(newline))
    seps = np.flatnonzero(newline | (raw == _COMMA))
    del newline
    if len(seps) != rows * width:
        return None
    seps = seps.reshape(rows, width)
    if not (raw[seps[:, -1]] == _NEWLINE).all():  # so every line has width - 1 commas: none is blank
        return None
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None, dtype=np.float64, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None
    values = frame.to_numpy(dtype=np.float64)
    if values.shape != (rows, width) or not np.isfinite(values).all():
        return None
    return _FastRows(raw, seps, values, order, first_line)


def _careful_rows(data: bytes, names: list[str], first_line: int, order: list[int]) -> _Rows:
    """Parse line by line; raise DataValidationError naming the first bad line and column."""
    width = len(names)
    out: list[list[float]] = []
    line_numbers: list[int] = []
    for offset, line in enumerate(data.decode("utf-8", errors="replace").split("\n")):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        lineno = first_line + offset
        fields = next(csv.reader([line])) if '"' in line else line.split(",")
        if len(fields) != width:
            hint = " (is the delimiter a comma?)" if len(fields) == 1 and width > 1 else " (ragged row)"
            raise DataValidationError(
                f"Line {lineno} has {len(fields)} field(s) but the header has {width} columns{hint}"
            )
        row = []
        for name, cell in zip(names, fields, strict=True):
            token = cell.strip()
            if not token:
                raise DataValidationError(f"Line {lineno}, column {name!r} is empty or missing")
            try:
                value = float(token)
            except ValueError:
                raise DataValidationError(f"Line {lineno}, column {name!r} is not numeric: {token!r}") from None
            if not math.isfinite(value):
                raise DataValidationError(f"Line {lineno}, column {name!r} is not finite: {token!r}")
            row.append(value)
        out.append(row)
        line_numbers.append(lineno)
    values = np.asarray(out, dtype=np.float64).reshape(-1, width)
    return _FormattedRows(values, order, first_line, line_numbers)


def parse_chunk(data: bytes, names: list[str], first_line: int, order: list[int]) -> _Rows:
    """Validate one chunk of whole lines; its values and text come back in ``order`` (label first)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    rows = _fast_rows(data, len(names), order, first_line) if data else None
    return rows if rows is not None else _careful_rows(data, names, first_line, order)


def split_counts(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_test = math.ceil(n * test_fraction)
    n_val = math.ceil(n * validation_fraction)
    return n_val, n_test


# ----------------------------------------------------------------------------- writing


class _ChannelWriter:
    """One channel's part files; ``lanes`` files are written side by side (for sharding)."""

    def __init__(self, folder: Path, channel: str, lanes: int, part_bytes: int, suffix: str,
                 on_part: Callable[[str, Path], None] | None):
        self.folder, self.channel, self.part_bytes, self.suffix = folder, channel, part_bytes, suffix
        self.on_part = on_part
        self.handles: list[IO[bytes] | None] = [None] * lanes
        self.paths: list[Path | None] = [None] * lanes
        self.parts: list[Path] = []
        self.rows = 0

    @property
    def lanes(self) -> int:
        return len(self.handles)

    def write(self, lane: int, payload: bytes, rows: int) -> None:
        if not rows:
            return
        handle = self.handles[lane]
        if handle is not None and handle.tell() >= self.part_bytes:
            self._finish(lane)
            handle = None
        if handle is None:
            path = self.folder / f"{self.channel}-part-{len(self.parts):05d}{self.suffix}"
            self.parts.append(path)
            self.paths[lane] = path
            handle = self.handles[lane] = path.open("wb")
        handle.write(payload)
        self.rows += rows

    def _finish(self, lane: int) -> None:
        handle, path = self.handles[lane], self.paths[lane]
        if handle is None:
            return
        handle.close()
        self.handles[lane] = self.paths[lane] = None
        if self.on_part is not None:
            self.on_part(self.channel, path)

    def close(self, notify: bool = True) -> None:
        for lane in range(self.lanes):
            if notify:
                self._finish(lane)
            elif self.handles[lane] is not None:
                self.handles[lane].close()
                self.handles[lane] = None


def _encoder(content_type: str) -> Callable[[_Rows, np.ndarray], bytes]:
    if content_type == CSV:
        return lambda rows, index: rows.csv(index)
    from sagemaker_retrain.recordio import encode_recordio_protobuf

    def encode(rows: _Rows, index: np.ndarray) -> bytes:
        if len(index) == 0:
            return b""
        values = rows.take(index)
        return encode_recordio_protobuf(np.ascontiguousarray(values[:, 1:]), np.ascontiguousarray(values[:, 0]))

    return encode


def prepare_dataset(
    source: IO[bytes],
    *,
    target_column: str,
    predictor_type: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    workdir: Path,
    smoke_rows: int = 5,
    num_classes: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    part_bytes: int = PART_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    content_type: str = CSV,
    min_train_parts: int = 1,
    on_part: Callable[[str, Path], None] | None = None,
) -> tuple[PreparedData, dict[str, list[Path]]]:
    """Validate and split ``source`` into part files under ``workdir``.

    Nothing is uploaded here; ``on_part(channel, path)`` is called as each part file is
    finished (the caller may upload it while the rest is prepared). The split is seeded and
    the same for the same file, seed and chunk sizes: each chunk's rows are drawn at random so
    that the running totals of test and validation rows are ``ceil(rows * fraction)``.
    """
    if content_type not in CONTENT_TYPES:
        raise DataValidationError(f"Content type {content_type!r} is not one of {sorted(CONTENT_TYPES)}")
    names, chunks = iter_raw_chunks(source, chunk_bytes, chunk_rows)
    if target_column not in names:
        shown = f"columns are {names}" if _looks_like_column_names(names) else (
            f"the header has {len(names)} column(s) whose names do not look like CSV column names (not shown)")
        raise DataValidationError(f"Target column {target_column!r} not in the header; {shown}")
    if len(names) < 2:
        raise DataValidationError("The data set needs at least one feature column besides the target")
    target_index = names.index(target_column)
    order = [target_index] + [i for i in range(len(names)) if i != target_index]
    features = [names[i] for i in order[1:]]
    rng = np.random.default_rng(seed)
    types = {s: (CSV if s in CSV_ONLY_CHANNELS else content_type) for s in SPLITS}
    writers = {
        s: _ChannelWriter(workdir, s, max(1, min_train_parts) if s == "train" else 1, part_bytes,
                          CONTENT_TYPES[types[s]], on_part)
        for s in SPLITS
    }
    encoders = {s: _encoder(types[s]) for s in SPLITS}
    label_min, label_max = math.inf, -math.inf
    smoke: list[np.ndarray] = []
    total = n_val_done = n_test_done = chunk_number = 0
    try:
        for first_line, data in chunks:
            rows = parse_chunk(data, names, first_line, order)
            n = len(rows)
            if n == 0:
                continue
            labels = rows.labels
            _check_labels(rows, predictor_type, num_classes)
            label_min, label_max = min(label_min, labels.min()), max(label_max, labels.max())
            total += n
            n_val_all, n_test_all = split_counts(total, validation_fraction, test_fraction)
            n_test, n_val = n_test_all - n_test_done, n_val_all - n_val_done
            n_test_done, n_val_done = n_test_all, n_val_all
            test, val, train = _assign(rng, n, n_test, n_val)
            for split, index in (("test", test), ("validation", val)):
                writers[split].write(0, encoders[split](rows, index), len(index))
            train_writer = writers["train"]
            for i, index in enumerate(np.array_split(train, train_writer.lanes)):
                lane = (i + chunk_number) % train_writer.lanes  # rotate who gets the extra rows
                train_writer.write(lane, encoders["train"](rows, index), len(index))
            chunk_number += 1
            if sum(len(s) for s in smoke) < smoke_rows:
                smoke.append(rows.take(test[:smoke_rows]))
    except BaseException:
        for writer in writers.values():
            writer.close(notify=False)
        raise
    if total == 0:
        _close(writers, notify=False)
        raise DataValidationError("The data set has a header but no data rows")
    if total < MIN_ROWS:
        _close(writers, notify=False)
        raise DataValidationError(f"The data set has {total} data row(s); at least {MIN_ROWS} are needed")
    if label_min == label_max:
        _close(writers, notify=False)
        raise DataValidationError(f"Target column {target_column!r} is constant ({label_min:g}): nothing to learn")
    empty = [s for s, w in writers.items() if w.rows == 0]
    if empty:
        _close(writers, notify=False)
        raise DataValidationError(f"Split(s) {empty} came out empty: add rows or raise the shares")
    if writers["train"].rows < min_train_parts:
        _close(writers, notify=False)
        raise DataValidationError(
            f"The train split has {writers['train'].rows} row(s), fewer than the {min_train_parts} "
            "training instances that would share it"
        )
    _close(writers, notify=True)
    smoke_matrix = np.vstack(smoke)[:smoke_rows]
    prepared = PreparedData(
        channel_uris={},
        rows={s: w.rows for s, w in writers.items()},
        feature_names=features,
        target_column=target_column,
        smoke_features=smoke_matrix[:, 1:].tolist(),
        smoke_labels=smoke_matrix[:, 0].tolist(),
        content_types=types,
        parts={s: len(w.parts) for s, w in writers.items()},
    )
    return prepared, {s: w.parts for s, w in writers.items()}


def _assign(rng: np.random.Generator, n: int, n_test: int, n_val: int) -> tuple[np.ndarray, ...]:
    """Seeded random membership; rows keep their file order inside each split.

    (Order inside a split does not matter to Linear Learner, which shuffles every epoch, and
    gathering rows in file order is several times faster than in shuffled order.)
    """
    split = np.full(n, 2, dtype=np.int8)
    perm = rng.permutation(n)
    split[perm[:n_test]] = 0
    split[perm[n_test:n_test + n_val]] = 1
    return tuple(np.flatnonzero(split == k) for k in range(3))


def _close(writers: dict[str, _ChannelWriter], notify: bool) -> None:
    for writer in writers.values():
        writer.close(notify=notify)


def _check_labels(rows: _Rows, predictor_type: str, num_classes: int | None) -> None:
    if predictor_type == "regressor":
        return
    limit = 2 if predictor_type == "binary_classifier" else (num_classes or 0)
    if predictor_type == "multiclass_classifier" and not num_classes:
        raise DataValidationError("predictor_type multiclass_classifier needs the num_classes param")
    labels = rows.labels
    bad = (labels != np.floor(labels)) | (labels < 0) | (labels >= limit)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataValidationError(
            f"Line {rows.line_of(row)}: label {labels[row]:g} is not a class in 0..{limit - 1} "
            f"(required for {predictor_type})"
        )


# ----------------------------------------------------------------------------- uploading


def part_key(input_prefix: str, channel: str, path: Path) -> str:
    """``<input_prefix>/<channel>/part-00000.csv`` for the local file ``<channel>-part-00000.csv``."""
    return f"{input_prefix}/{channel}/{path.name.split('-', 1)[1]}"


class PartUploader:
    """Uploads part files as they are finished, with boto3's transfer manager (multipart, parallel).

    ``finish()`` waits for every upload and deletes keys under each channel's prefix that this
    run did not write (a re-run overwrites and leaves no stale part); ``abort()`` cancels and
    deletes what was uploaded, so a data set that fails validation halfway leaves nothing.
    """

    def __init__(self, s3_client, bucket: str, input_prefix: str, transfer_config=None,
                 delete_local: bool = True):
        from boto3.s3.transfer import create_transfer_manager

        self.s3, self.bucket, self.input_prefix = s3_client, bucket, input_prefix
        self.delete_local = delete_local
        self.manager = create_transfer_manager(s3_client, transfer_config or default_transfer_config())
        self.futures: list = []
        self.keys: dict[str, list[str]] = {}

    def submit(self, channel: str, path: Path) -> None:
        key = part_key(self.input_prefix, channel, path)
        self.keys.setdefault(channel, []).append(key)
        subscribers = [_DeleteWhenDone(path)] if self.delete_local else []
        self.futures.append(self.manager.upload(str(path), self.bucket, key, subscribers=subscribers))

    def finish(self, channels=SPLITS) -> dict[str, str]:
        for future in self.futures:
            future.result()
        self.manager.shutdown()
        uris = {}
        for channel in channels:
            prefix = f"{self.input_prefix}/{channel}/"
            written = set(self.keys.get(channel, ()))
            stale = [
                obj["Key"]
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
                if obj["Key"] not in written
            ]
            self._delete(stale)
            uris[channel] = f"s3://{self.bucket}/{prefix}"
        return uris

    def abort(self) -> None:
        try:
            self.manager.shutdown(cancel=True, cancel_msg="data preparation failed")
        except Exception:  # noqa: BLE001 - the original error is the one to raise
            pass
        for future in self.futures:  # s3transfer's own wait stops at the first cancelled transfer
            try:
                future.result()
            except Exception:  # noqa: BLE001 - cancelled or failed: either way it is over
                pass
        self._delete([key for keys in self.keys.values() for key in keys])

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


class _DeleteWhenDone:
    """s3transfer subscriber: remove the local part once it is uploaded (keeps disk use small)."""

    def __init__(self, path: Path):
        self.path = path

    def on_queued(self, future, **kwargs):
        pass

    def on_progress(self, future, bytes_transferred, **kwargs):
        pass

    def on_done(self, future, **kwargs):
        try:
            future.result()
        except Exception:  # noqa: BLE001 - the failure is raised from finish()
            return
        self.path.unlink(missing_ok=True)


def upload_parts(
    s3_client, parts: dict[str, list[Path]], bucket: str, input_prefix: str, transfer_config=None
) -> dict[str, str]:
    """Upload part files under ``input_prefix/<channel>/`` and drop stale keys there (re-runs overwrite)."""
    uploader = PartUploader(s3_client, bucket, input_prefix, transfer_config, delete_local=False)
    try:
        for channel, files in parts.items():
            for path in files:
                uploader.submit(channel, path)
        return uploader.finish(list(parts))
    except BaseException:
        uploader.abort()
        raise


def prepare_and_upload(
    uri: str,
    *,
    s3_client,
    bucket: str,
    input_prefix: str,
    params: dict,
    base_dir: Path | None = None,
    transfer_config=None,
    sources: list[dict] | None = None,
) -> PreparedData:
    """The prepare task's body: validate and split ``uri``, uploading parts under ``input_prefix``.

    ``sources`` (``[{"uri", "version_id"}]``), when given, are what is read instead: one object at
    its version, or the parts of a multi-part drop as one CSV (``uri`` then labels the drop, e.g.
    its manifest).

    Reads from ``params``: target_column, predictor_type, validation_fraction, test_fraction,
    split_seed, smoke_rows, num_classes, and optionally ``training_content_type`` (``text/csv``,
    the default, or ``application/x-recordio-protobuf``) and ``training_instance_count`` (the
    train channel gets at least that many part files, for ``ShardedByS3Key``).
    """
    content_type = params.get("training_content_type") or CSV
    min_parts = int(params.get("training_instance_count") or 1)
    with tempfile.TemporaryDirectory(prefix="prepare-") as tmp:
        s3_metadata: dict = {}
        if sources and len(sources) > 1:
            source = ConcatenatedParts(sources, lambda src, meta: open_source(
                src["uri"], s3_client=s3_client, base_dir=base_dir, metadata=meta, version_id=src.get("version_id")))
        else:
            version = (sources or [{}])[0].get("version_id")
            source = HashingReader(open_source(uri, s3_client=s3_client, base_dir=base_dir, metadata=s3_metadata,
                                               version_id=version))
        uploader = PartUploader(s3_client, bucket, input_prefix, transfer_config)
        try:
            prepared, _ = prepare_dataset(
                source,
                target_column=params["target_column"],
                predictor_type=params["predictor_type"],
                validation_fraction=float(params["validation_fraction"]),
                test_fraction=float(params["test_fraction"]),
                seed=int(params["split_seed"]),
                smoke_rows=int(params.get("smoke_rows", 5)),
                num_classes=params.get("num_classes"),
                workdir=Path(tmp),
                content_type=content_type,
                min_train_parts=min_parts,
                on_part=uploader.submit,
            )
            prepared.channel_uris = uploader.finish()
            prepared.source = (describe_parts(source, uri) if isinstance(source, ConcatenatedParts)
                               else describe_source(uri, source, s3_metadata))
        except BaseException:
            uploader.abort()
            raise
        finally:
            source.close()
    return prepared
