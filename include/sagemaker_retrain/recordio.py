"""RecordIO-wrapped protobuf records, as the SageMaker SDK's ``write_numpy_to_dense_tensor`` writes them.

The provider's own encoder for ``application/x-recordio-protobuf`` training channels. It writes
dense ``aialgs.data.Record`` messages: ``features["values"]`` a Float32Tensor, and for labelled
rows ``label["values"]`` a one-value Float32Tensor, each in a RecordIO frame (magic
``0xced7230a``, a little-endian length word, the payload padded to 4 bytes). It has no protobuf
dependency and shares no code with the offline emulator's decoder, so each is a check on the other.

Schema (``sagemaker/amazon/record.proto``)::

    message Float32Tensor { repeated float values = 1 [packed = true]; repeated uint64 keys = 2 [packed = true];
                            repeated uint64 shape = 3 [packed = true]; }
    message Value { oneof value { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                                  Int32Tensor int32_tensor = 7; Bytes bytes = 9; } }
    message Record { map<string, Value> features = 1; map<string, Value> label = 2;
                     optional string uid = 3; optional string metadata = 4; optional string configuration = 5; }
"""

from __future__ import annotations

import struct

import numpy as np

RECORDIO_MAGIC = 0xCED7230A
_LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: key (number << 3 | 2), length, payload."""
    return varint(number << 3 | _LENGTH_DELIMITED) + varint(len(payload)) + payload


def _float32_value(values: np.ndarray) -> bytes:
    tensor = _field(1, np.asarray(values, dtype="<f4").tobytes())  # Float32Tensor.values, packed
    return _field(2, tensor)  # Value.float32_tensor


def _map_entry(field_number: int, key: str, value: bytes) -> bytes:
    return _field(field_number, _field(1, key.encode()) + _field(2, value))


def encode_record(features: np.ndarray, label: float | None = None) -> bytes:
    """One ``Record`` message (without the RecordIO frame)."""
    out = _map_entry(1, "values", _float32_value(np.ravel(features)))
    if label is not None:
        out += _map_entry(2, "values", _float32_value(np.array([label])))
    return out


def frame(payload: bytes) -> bytes:
    """Wrap one payload in a RecordIO frame (the SDK's ``_write_recordio``)."""
    return struct.pack("<II", RECORDIO_MAGIC, len(payload)) + payload + b"\x00" * (-len(payload) % 4)


def encode_recordio_protobuf(X: np.ndarray, y: np.ndarray | None = None) -> bytes:
    """Dense rows (and labels) as RecordIO-protobuf float32 records, one per row."""
    return recordio_records(X, y).tobytes()


def recordio_records(X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """``encode_recordio_protobuf``'s bytes as a flat uint8 array (a file's ``write`` takes it as is).

    Every dense float32 record of a width has the same bytes around its numbers, so one template
    record is built with ``encode_record``, copied into every row, and the rows' floats (and labels)
    are converted straight into their places: one pass over the output, whatever ``X``'s dtype or
    layout (a strided view of a wider array is fine), and no copy of the input.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError("X must be 2-dimensional")
    n, dim = X.shape
    if y is not None:
        y = np.asarray(y).reshape(-1)  # a view when it can be: no copy of a strided label column
        if len(y) != n:
            raise ValueError("y and X differ in length")
    if n == 0:
        return np.empty(0, np.uint8)
    features = _map_entry(1, "values", _float32_value(np.zeros(dim)))
    template = np.frombuffer(frame(encode_record(np.zeros(dim), None if y is None else 0.0)), np.uint8)
    width = len(template)
    records = np.empty((n, width), np.uint8)
    records[:] = template
    start = 8 + len(features) - 4 * dim  # the feature floats end the features entry
    # Float32 views of the records' number slots: unaligned is allowed, numpy converts on assignment.
    np.ndarray((n, dim), "<f4", records, start, (width, 4))[:] = X
    if y is not None:
        end = 8 + len(encode_record(np.zeros(dim), 0.0))  # the label float ends the record
        np.ndarray((n,), "<f4", records, end - 4, (width,))[:] = y
    return records.reshape(-1)
