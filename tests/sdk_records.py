"""The SageMaker SDK's ``aialgs.data.Record`` schema, built with the ``protobuf`` library at import.

``sagemaker/amazon/record.proto`` (SageMaker Python SDK v2) declared field for field, so tests
encode and decode RecordIO-protobuf with the real protobuf runtime, as the SDK's
``RecordSerializer`` / ``RecordDeserializer`` do, independently of both the provider's encoder
and the emulator's hand-written decoder. ``write_numpy_to_dense_tensor``, ``read_records`` and
``write_manifest`` copy the SDK's ``sagemaker.amazon.common`` behaviour.
"""

from __future__ import annotations

import json
import struct

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
MAGIC = 0xCED7230A


def _build():
    proto = descriptor_pb2.FileDescriptorProto(name="offline_tests/record.proto", package="aialgs.data",
                                               syntax="proto2")

    def tensor(name, value_type):
        msg = proto.message_type.add(name=name)
        msg.field.add(name="values", number=1, type=value_type, label=_F.LABEL_REPEATED).options.packed = True
        msg.field.add(name="keys", number=2, type=_F.TYPE_UINT64, label=_F.LABEL_REPEATED).options.packed = True
        msg.field.add(name="shape", number=3, type=_F.TYPE_UINT64, label=_F.LABEL_REPEATED).options.packed = True

    tensor("Float32Tensor", _F.TYPE_FLOAT)
    tensor("Float64Tensor", _F.TYPE_DOUBLE)
    tensor("Int32Tensor", _F.TYPE_INT32)
    raw = proto.message_type.add(name="Bytes")
    raw.field.add(name="value", number=1, type=_F.TYPE_BYTES, label=_F.LABEL_REPEATED)
    raw.field.add(name="content_type", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    value = proto.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for name, number, type_name in (("float32_tensor", 2, "Float32Tensor"), ("float64_tensor", 3, "Float64Tensor"),
                                    ("int32_tensor", 7, "Int32Tensor"), ("bytes", 9, "Bytes")):
        value.field.add(name=name, number=number, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                        type_name=f".aialgs.data.{type_name}", oneof_index=0)
    record = proto.message_type.add(name="Record")
    for name, number in (("features", 1), ("label", 2)):
        entry = record.nested_type.add(name=name.capitalize() + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                        type_name=".aialgs.data.Value")
        record.field.add(name=name, number=number, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                         type_name=f".aialgs.data.Record.{entry.name}")
    for name, number in (("uid", 3), ("metadata", 4), ("configuration", 5)):
        record.field.add(name=name, number=number, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


Record = _build()


def _tensor_field(record_map, array: np.ndarray) -> None:
    kind = {"i": "int32_tensor", "f": "float64_tensor" if array.dtype == np.float64 else "float32_tensor"}
    getattr(record_map["values"], kind[array.dtype.kind]).values.extend(array.tolist())


def _write_recordio(out: bytearray, data: bytes) -> None:
    out += struct.pack("I", MAGIC) + struct.pack("I", len(data)) + data + b"\x00" * ((4 - len(data) % 4) % 4)


def write_numpy_to_dense_tensor(array: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    """``sagemaker.amazon.common.write_numpy_to_dense_tensor`` (the dtype picks the tensor type)."""
    if array.ndim != 2:
        raise ValueError("Array must be a Matrix")
    out = bytearray()
    record = Record()
    for index, vector in enumerate(array):
        record.Clear()
        _tensor_field(record.features, np.asarray(vector))
        if labels is not None:
            _tensor_field(record.label, np.asarray([labels[index]], dtype=labels.dtype))
        _write_recordio(out, record.SerializeToString())
    return bytes(out)


def read_records(blob: bytes) -> list:
    """``sagemaker.amazon.common.read_records``: RecordIO frames parsed as ``Record`` messages."""
    records, pos = [], 0
    while pos < len(blob):
        magic, length = struct.unpack_from("II", blob, pos)
        assert magic == MAGIC, f"bad RecordIO magic at {pos}"
        record = Record()
        record.ParseFromString(blob[pos + 8:pos + 8 + length])
        records.append(record)
        pos += 8 + length + (4 - length % 4) % 4
    return records


def values(record_map, key: str = "values") -> list[float]:
    value = record_map[key]
    return list(getattr(value, value.WhichOneof("value")).values)


def _build_shards(num_shards: int, array: np.ndarray) -> list[np.ndarray]:
    """``amazon_estimator._build_shards``: equal contiguous shards, the last one takes the remainder."""
    size = int(array.shape[0] / num_shards)
    if size == 0:
        raise ValueError("Array length is less than num shards")
    shards = [array[i * size:(i + 1) * size] for i in range(num_shards - 1)]
    return [*shards, array[(num_shards - 1) * size:]]


def upload_numpy_to_s3_shards(s3, num_shards: int, bucket: str, key_prefix: str, array: np.ndarray,
                              labels: np.ndarray | None = None) -> str:
    """``sagemaker.amazon.amazon_estimator.upload_numpy_to_s3_shards`` with a boto3 client.

    Shards ``matrix_<i>.pbr`` under ``key_prefix``, then ``<key_prefix>.amazon.manifest``:
    ``[{"prefix": "s3://bucket/key_prefix/"}, "matrix_0.pbr", ...]``; returns the manifest's URI.
    """
    shards = _build_shards(num_shards, array)
    label_shards = _build_shards(num_shards, labels) if labels is not None else [None] * num_shards
    if key_prefix[-1] != "/":
        key_prefix += "/"
    uploaded = []
    for index, shard in enumerate(shards):
        name = f"matrix_{str(index).zfill(len(str(len(shards))))}.pbr"
        s3.put_object(Bucket=bucket, Key=key_prefix + name, Body=write_numpy_to_dense_tensor(shard, label_shards[index]))
        uploaded.append(name)
    manifest_key = key_prefix + ".amazon.manifest"
    manifest = json.dumps([{"prefix": f"s3://{bucket}/{key_prefix}"}, *uploaded])
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=manifest.encode("utf-8"))
    return f"s3://{bucket}/{manifest_key}"
