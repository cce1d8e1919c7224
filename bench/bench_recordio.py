"""RecordIO-protobuf encoding: the vectorised encoder beside a per-record encoder.

Vectorised: ``offline_aws.linear_learner.data.encode_recordio_protobuf(X, y)`` (numpy writes
every record's constant header bytes and float32 payload at once), which
``sagemaker_retrain.data_prep`` uses for ``application/x-recordio-protobuf`` channels.
Per-record: the SageMaker SDK's approach (``write_numpy_to_dense_tensor`` builds one protobuf
``Record`` per row and writes it with its RecordIO header), here in plain Python with
``struct`` (no protobuf library; still one Python-level encode per row, and faster than the
SDK's). Both produce identical bytes (checked); the figure is rows per second, median of runs.

    python bench/bench_recordio.py [--rows 200000] [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, median, report  # noqa: E402

from offline_aws.linear_learner.data import (  # noqa: E402
    RECORDIO_MAGIC,
    _varint,
    encode_recordio_protobuf,
    read_recordio_protobuf,
)


def _entry(field_no: int, values: bytes) -> bytes:
    """A ``features``/``label`` map entry: {"values": Value{float32_tensor{values: packed}}}."""
    tensor = b"\x0a" + _varint(len(values)) + values
    value = b"\x12" + _varint(len(tensor)) + tensor
    body = b"\x0a\x06values" + b"\x12" + _varint(len(value)) + value
    return bytes([field_no << 3 | 2]) + _varint(len(body)) + body


def encode_per_record(X: np.ndarray, y: np.ndarray) -> bytes:
    """One protobuf Record per row, each framed with its RecordIO header and padding."""
    out = bytearray()
    dim = X.shape[1]
    pack_x, pack_y = struct.Struct(f"<{dim}f").pack, struct.Struct("<f").pack
    for features, label in zip(X.tolist(), y.tolist(), strict=True):
        record = _entry(1, pack_x(*features)) + _entry(2, pack_y(label))
        out += struct.pack("<II", RECORDIO_MAGIC, len(record))
        out += record
        out += b"\x00" * (-len(record) % 4)
    return bytes(out)


def measure(rows: int, runs: int) -> list[Figure]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(rows, 12)).astype(np.float32).astype(np.float64)
    y = rng.normal(size=rows).astype(np.float32).astype(np.float64)
    fast, slow = [], []
    for _ in range(runs):
        start = time.perf_counter()
        blob = encode_recordio_protobuf(X, y)
        fast.append(time.perf_counter() - start)
    for _ in range(max(1, runs // 2 + 1)):
        start = time.perf_counter()
        reference = encode_per_record(X, y)
        slow.append(time.perf_counter() - start)
    if blob != reference:
        raise AssertionError("the two encoders disagree")
    y_back, X_back = read_recordio_protobuf([blob])
    assert np.array_equal(X_back, X) and np.array_equal(y_back, y)
    fast_rate, slow_rate = rows / median(fast), rows / median(slow)
    return [Figure(f"recordio-protobuf encode ({rows:,} rows x 12 features)", f"{fast_rate:,.0f} rows/s",
                   f"{slow_rate:,.0f} rows/s per-record encoder", f"{fast_rate / slow_rate:.0f}x", "", None,
                   note=f"vectorised median of {runs}, per-record median of {len(slow)}; identical bytes; "
                        f"{len(blob) / rows:.0f} B/row",
                   raw={"vectorised_rows_s": fast_rate, "per_record_rows_s": slow_rate})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    report(measure(args.rows, args.runs), args.json)


if __name__ == "__main__":
    main()
