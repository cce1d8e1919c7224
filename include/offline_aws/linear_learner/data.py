"""Linear Learner's input formats: headerless CSV and RecordIO-wrapped protobuf.

Both readers return ``(y, X)`` as float64 arrays. Errors name the line or record, because that
is what a user needs to fix a channel, and the training job's FailureReason shows it.
The protobuf is hand-decoded (the ``aialgs.data.Record`` schema the SageMaker SDK writes), so the
emulator needs no protobuf dependency.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable

import numpy as np

RECORDIO_MAGIC = 0xCED7230A


class DataError(ValueError):
    """A channel's data cannot be used; ``str(err)`` is the training job's FailureReason."""


# ----------------------------------------------------------------------------- CSV


def read_csv_records(chunks: Iterable[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Parse headerless CSV (label first) into ``(y, X)``; chunks are consecutive stream pieces."""
    text = b"".join(chunks).decode("utf-8", errors="replace")
    lines = text.splitlines()
    rows = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise DataError("ClientError: No training data found: the text/csv channel is empty")
    try:  # fast path: numpy parses well-formed files quickly
        data = np.loadtxt(io.StringIO("\n".join(line for _, line in rows)), delimiter=",", ndmin=2,
                          dtype=np.float64)
        if data.shape[1] >= 2 and np.isfinite(data).all():
            return data[:, 0].copy(), data[:, 1:].copy()
    except ValueError:
        pass
    width = None
    out = []
    for lineno, line in rows:  # slow path: find and name the first bad line
        cells = line.split(",")
        if width is None:
            width = len(cells)
            if width < 2:
                raise DataError(
                    f"ClientError: Unable to read text/csv record on line {lineno}: a record needs the "
                    f"label in the first column and at least one feature, found {width} column"
                )
        elif len(cells) != width:
            raise DataError(
                f"ClientError: Unable to read text/csv record on line {lineno}: expected {width} columns "
                f"(label + {width - 1} features) as on the first line, found {len(cells)}"
            )
        row = []
        for col, cell in enumerate(cells, start=1):
            try:
                value = float(cell)
            except ValueError:
                hint = (" (text/csv must not have a header line)" if lineno == rows[0][0] else "")
                raise DataError(
                    f"ClientError: Unable to read text/csv record on line {lineno}, column {col}: "
                    f"could not convert {cell.strip()!r} to float{hint}"
                ) from None
            if not np.isfinite(value):
                raise DataError(
                    f"ClientError: Unable to read text/csv record on line {lineno}, column {col}: "
                    f"{cell.strip()!r} is not a finite number"
                )
            row.append(value)
        out.append(row)
    data = np.asarray(out, dtype=np.float64)
    return data[:, 0].copy(), data[:, 1:].copy()


# ----------------------------------------------------------------------------- protobuf wire


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):
    """Yield (field_number, wire_type, value) where value is int or a memoryview of bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _read_varint(buf, pos)
        out.append(value)
    return out


# Value oneof field number -> (numpy dtype of packed values, or None for varint-packed int32)
_TENSOR_FIELDS = {2: np.dtype("<f4"), 3: np.dtype("<f8"), 7: None}


def _decode_tensor(value: memoryview) -> np.ndarray:
    """Decode an aialgs ``Value`` holding a Float32/Float64/Int32 tensor (dense or sparse)."""
    for number, _wire, tensor in _fields(value):
        if number not in _TENSOR_FIELDS:
            continue
        dtype = _TENSOR_FIELDS[number]
        values: list[np.ndarray] = []
        keys: list[int] = []
        shape: list[int] = []
        for tnum, twire, payload in _fields(tensor):
            if tnum == 1:
                if dtype is None:
                    ints = _packed_varints(payload) if twire == 2 else [payload]
                    values.append(np.array([v - (1 << 64) if v >= 1 << 63 else v for v in ints], float))
                else:  # packed (wire type 2) or a single fixed32/fixed64 value: same bytes
                    values.append(np.frombuffer(payload, dtype=dtype).astype(np.float64))
            elif tnum == 2:
                keys.extend(_packed_varints(payload) if twire == 2 else [payload])
            elif tnum == 3:
                shape.extend(_packed_varints(payload) if twire == 2 else [payload])
        flat = np.concatenate(values) if values else np.zeros(0)
        if keys:
            if not shape:
                raise ValueError("sparse tensor without shape")
            dense = np.zeros(int(np.prod(shape)))
            dense[np.asarray(keys, dtype=np.int64)] = flat
            return dense
        return flat
    raise ValueError("Value holds no float32/float64/int32 tensor")


def _decode_map_entry(entry: memoryview) -> tuple[str, memoryview | None]:
    key, value = "", None
    for number, _wire, payload in _fields(entry):
        if number == 1:
            key = bytes(payload).decode("utf-8")
        elif number == 2:
            value = payload
    return key, value


def _decode_record(data: memoryview) -> tuple[np.ndarray, float]:
    features = label = None
    for number, _wire, payload in _fields(data):
        if number in (1, 2):
            key, value = _decode_map_entry(payload)
            if key == "values" and value is not None:
                if number == 1:
                    features = _decode_tensor(value)
                else:
                    label = _decode_tensor(value)
    if features is None:
        raise ValueError("record has no features['values'] tensor")
    return features, (float(label[0]) if label is not None and label.size else np.nan)


def _recordio_payloads(blob: bytes):
    pos = 0
    index = 0
    while pos < len(blob):
        index += 1
        if pos + 8 > len(blob):
            raise DataError(f"ClientError: Truncated RecordIO header at record {index} (byte {pos})")
        magic, lrec = struct.unpack_from("<II", blob, pos)
        if magic != RECORDIO_MAGIC:
            raise DataError(
                f"ClientError: Invalid RecordIO magic 0x{magic:08x} at record {index} (byte {pos}); "
                "is the channel really application/x-recordio-protobuf?"
            )
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        if cflag != 0:
            raise DataError(f"ClientError: Multi-part RecordIO records are not supported (record {index})")
        start = pos + 8
        if start + length > len(blob):
            raise DataError(f"ClientError: Truncated RecordIO record {index}")
        yield index, memoryview(blob)[start:start + length]
        pos = start + ((length + 3) & ~3)


def read_recordio_protobuf(chunks: Iterable[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Parse RecordIO-protobuf (features['values'], label['values']) into ``(y, X)``.

    A record without a label gets ``nan`` (inference requests carry no label).
    """
    blob = b"".join(chunks)
    fast = _fast_dense_decode(blob)
    if fast is not None:
        return fast
    ys, xs = [], []
    width = None
    for index, payload in _recordio_payloads(blob):
        try:
            features, label = _decode_record(payload)
        except ValueError as err:
            raise DataError(f"ClientError: Unable to decode protobuf record {index}: {err}") from None
        if width is None:
            width = features.size
        elif features.size != width:
            raise DataError(
                f"ClientError: Record {index} has {features.size} features, expected {width} as in record 1"
            )
        xs.append(features)
        ys.append(label)
    if not xs:
        raise DataError("ClientError: No training data found: the application/x-recordio-protobuf channel is empty")
    return np.asarray(ys, dtype=np.float64), np.vstack(xs)


# ----------------------------------------------------------------------------- dense fast path


def _layout(dim: int, with_label: bool) -> tuple[bytes, bytes, int]:
    """Constant byte prefixes of a dense float32 record, as the SageMaker SDK serialises it."""

    def entry(field_no: int, payload_len: int) -> bytes:
        tensor = b"\x0a" + _varint(payload_len)  # Float32Tensor.values, packed
        value = b"\x12" + _varint(len(tensor) + payload_len) + tensor  # Value.float32_tensor
        body = b"\x0a\x06values" + b"\x12" + _varint(len(value) + payload_len) + value
        return bytes([field_no << 3 | 2]) + _varint(len(body) + payload_len) + body

    feat = entry(1, 4 * dim)
    lab = entry(2, 4) if with_label else b""
    size = len(feat) + 4 * dim + len(lab) + (4 if with_label else 0)
    return feat, lab, size


def encode_recordio_protobuf(X: np.ndarray, y: np.ndarray | None = None) -> bytes:
    """Encode dense rows (and labels) as RecordIO-protobuf float32 records, vectorised."""
    X = np.asarray(X, dtype="<f4")
    if X.ndim != 2:
        raise ValueError("X must be 2-dimensional")
    n, dim = X.shape
    with_label = y is not None
    feat, lab, size = _layout(dim, with_label)
    padded = (size + 3) & ~3
    header = struct.pack("<II", RECORDIO_MAGIC, size)
    rec = np.zeros((n, 8 + padded), dtype=np.uint8)
    pos = 0
    for part in (header, feat):
        rec[:, pos:pos + len(part)] = np.frombuffer(part, np.uint8)
        pos += len(part)
    rec[:, pos:pos + 4 * dim] = X.view(np.uint8).reshape(n, 4 * dim)
    pos += 4 * dim
    if with_label:
        labels = np.asarray(y, dtype="<f4").reshape(n, 1)
        rec[:, pos:pos + len(lab)] = np.frombuffer(lab, np.uint8)
        pos += len(lab)
        rec[:, pos:pos + 4] = labels.view(np.uint8)
    return rec.tobytes()


def _fast_dense_decode(blob: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Decode without a Python loop when every record has the SDK's dense float32 layout."""
    if len(blob) < 8:
        return None
    magic, size = struct.unpack_from("<II", blob, 0)
    if magic != RECORDIO_MAGIC or size >> 29:
        return None
    if blob[8:9] != b"\x0a":
        return None
    for with_label in (True, False):
        for dim in _candidate_dims(size):
            feat, lab, rsize = _layout(dim, with_label)
            stride = 8 + ((size + 3) & ~3)
            if rsize != size or len(blob) % stride:
                continue
            recs = np.frombuffer(blob, np.uint8).reshape(-1, stride)
            expected_header = np.frombuffer(struct.pack("<II", RECORDIO_MAGIC, size) + feat, np.uint8)
            if not (recs[:, :len(expected_header)] == expected_header).all():
                continue
            start = len(expected_header)
            X = recs[:, start:start + 4 * dim].copy().view("<f4").astype(np.float64)
            if not with_label:
                return np.full(len(X), np.nan), X
            lstart = start + 4 * dim
            if not (recs[:, lstart:lstart + len(lab)] == np.frombuffer(lab, np.uint8)).all():
                continue
            y = recs[:, lstart + len(lab):lstart + len(lab) + 4].copy().view("<f4").astype(np.float64)
            return y.ravel(), X
    return None


def _candidate_dims(size: int) -> range:
    approx = max(1, (size - 40) // 4)
    return range(max(1, approx - 8), approx + 12)
