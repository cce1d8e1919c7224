"""The provider's RecordIO-protobuf encoder against the wire format itself (protobuf's own runtime)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import sdk_records

from sagemaker_retrain.recordio import RECORDIO_MAGIC, encode_recordio_protobuf, recordio_records, varint


def test_varint_matches_the_protobuf_encoding():
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(127) == b"\x7f"
    assert varint(128) == b"\x80\x01"
    assert varint(300) == b"\xac\x02"
    with pytest.raises(ValueError):
        varint(-1)


@pytest.mark.parametrize("dim", [1, 12, 40, 300])
@pytest.mark.parametrize("labelled", [True, False])
def test_bytes_equal_what_the_sdk_writes_for_float32_rows(dim, labelled):
    rng = np.random.default_rng(dim)
    X = rng.normal(size=(7, dim)).astype("float32")
    y = rng.integers(0, 3, size=7).astype("float32") if labelled else None
    ours = encode_recordio_protobuf(X, y)
    assert ours == sdk_records.write_numpy_to_dense_tensor(X, y)  # byte for byte, protobuf-serialised


def test_protobuf_parses_every_record_back():
    X = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, 7.0]])
    y = np.array([10.0, 20.5])
    blob = encode_recordio_protobuf(X, y)
    records = sdk_records.read_records(blob)
    assert len(records) == 2
    for record, row, label in zip(records, X, y, strict=True):
        assert record.features["values"].WhichOneof("value") == "float32_tensor"
        assert sdk_records.values(record.features) == pytest.approx(row.tolist(), rel=1e-6)
        assert sdk_records.values(record.label) == [label]


def test_recordio_frames_are_padded_to_four_bytes():
    blob = encode_recordio_protobuf(np.ones((3, 5)), np.zeros(3))
    pos = 0
    while pos < len(blob):
        magic, length = struct.unpack_from("<II", blob, pos)
        assert magic == RECORDIO_MAGIC and length >> 29 == 0  # one complete part per record
        pos += 8 + length + (-length % 4)
        assert pos % 4 == 0
    assert pos == len(blob)


def test_refuses_a_label_count_that_differs_from_the_rows():
    with pytest.raises(ValueError):
        encode_recordio_protobuf(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError):
        encode_recordio_protobuf(np.ones(3))


@pytest.mark.parametrize("dim", [1, 12, 300])
def test_a_strided_float64_view_encodes_as_its_float32_copy(dim):
    """Data prep hands the encoder label-first float64 rows as views (``values[:, 1:]``, ``values[:, 0]``)."""
    rng = np.random.default_rng(dim)
    values = rng.normal(size=(9, dim + 1))
    X, y = values[:, 1:], values[:, 0]
    assert not X.flags.c_contiguous and not y.flags.c_contiguous
    expected = sdk_records.write_numpy_to_dense_tensor(np.ascontiguousarray(X, "float32"), y.astype("float32"))
    assert encode_recordio_protobuf(X, y) == expected
    assert recordio_records(X, y).tobytes() == expected


def test_no_rows_encode_to_nothing():
    assert encode_recordio_protobuf(np.ones((0, 3)), np.ones(0)) == b""
    assert encode_recordio_protobuf(np.ones((0, 3))) == b""
