"""Channel readers: CSV (label first, no header) and RecordIO-protobuf."""

import struct

import numpy as np
import pytest

from offline_aws.linear_learner import data
from offline_aws.linear_learner.data import (
    DataError,
    encode_recordio_protobuf,
    read_csv_records,
    read_recordio_protobuf,
)


def test_csv_label_first_across_chunks():
    y, X = read_csv_records([b"1.5,2,3\n0,4,", b"5\r\n\n-2,6,7e1\n"])
    np.testing.assert_array_equal(y, [1.5, 0, -2])
    np.testing.assert_array_equal(X, [[2, 3], [4, 5], [6, 70]])


def test_csv_header_is_rejected_with_line_number():
    with pytest.raises(DataError, match=r"line 1, column 1.*'medv'.*header"):
        read_csv_records([b"medv,crim\n1,2\n"])


def test_csv_non_numeric_cell_names_line():
    with pytest.raises(DataError, match=r"line 3, column 2.*'x'"):
        read_csv_records([b"1,2\n3,4\n5,x\n"])


def test_csv_ragged_row_names_line():
    with pytest.raises(DataError, match=r"line 2.*expected 3 columns.*found 2"):
        read_csv_records([b"1,2,3\n4,5\n"])


def test_csv_nan_is_rejected():
    with pytest.raises(DataError, match=r"line 2.*finite"):
        read_csv_records([b"1,2\nnan,4\n"])


def test_csv_empty_and_label_only():
    with pytest.raises(DataError, match="empty"):
        read_csv_records([b"\n"])
    with pytest.raises(DataError, match="line 1"):
        read_csv_records([b"1\n2\n"])


def test_recordio_round_trip_with_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 13)).astype(np.float32)
    y = rng.integers(0, 3, size=50).astype(np.float32)
    blob = encode_recordio_protobuf(X, y)
    assert struct.unpack_from("<I", blob)[0] == 0xCED7230A
    assert len(blob) % 4 == 0
    y2, X2 = read_recordio_protobuf([blob[:100], blob[100:]])
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("dim", [1, 30, 31, 200])
def test_recordio_slow_path_agrees_with_fast_path(dim):
    X = np.arange(4 * dim, dtype=np.float32).reshape(4, dim) / 7
    blob = encode_recordio_protobuf(X, [1, 0, 1, 0])
    assert data._fast_dense_decode(blob) is not None
    decoded = [data._decode_record(p) for _, p in data._recordio_payloads(blob)]
    np.testing.assert_array_equal(np.vstack([f for f, _ in decoded]), X)
    assert [lab for _, lab in decoded] == [1, 0, 1, 0]


def test_recordio_without_label_gives_nan():
    y, X = read_recordio_protobuf([encode_recordio_protobuf(np.ones((2, 3)))])
    assert np.isnan(y).all() and X.shape == (2, 3)


def _value(field_no, payload):
    return bytes([field_no << 3 | 2]) + data._varint(len(payload)) + payload


def _entry(field_no, tensor_field, tensor):
    value = _value(tensor_field, tensor)
    body = b"\x0a\x06values" + _value(2, value)
    return _value(field_no, body)


def _recordio(payload):
    pad = (-len(payload)) % 4
    return struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * pad


def test_recordio_float64_sparse_and_int32_label():
    # sparse float64 features: keys [1, 3], shape [4]; int32 label 2
    tensor = _value(1, struct.pack("<2d", 0.5, -1.5)) + _value(2, b"\x01\x03") + _value(3, b"\x04")
    label = _value(1, data._varint(2))
    rec = _entry(1, 3, tensor) + _entry(2, 7, label)
    y, X = read_recordio_protobuf([_recordio(rec) * 2])
    np.testing.assert_array_equal(X, [[0, 0.5, 0, -1.5]] * 2)
    np.testing.assert_array_equal(y, [2, 2])


def test_recordio_bad_magic():
    with pytest.raises(DataError, match="magic"):
        read_recordio_protobuf([b"1,2,3\n4,5,6\n"])


def test_recordio_ragged_records():
    blob = encode_recordio_protobuf(np.ones((1, 3)), [1]) + encode_recordio_protobuf(np.ones((1, 4)), [1])
    with pytest.raises(DataError, match="Record 2 has 4 features, expected 3"):
        read_recordio_protobuf([blob])
