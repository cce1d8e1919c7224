"""What each channel's part files hold: ``text/csv`` (label first, no header) or dense RecordIO-protobuf."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sagemaker_retrain.data_prep.csv_rows import Rows
from sagemaker_retrain.data_prep.errors import DataValidationError

CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
CONTENT_TYPES = {CSV: ".csv", RECORDIO: ".pbr"}
# The test channel stays CSV in every mode: evaluation reads it back and scores it as text/csv.
CSV_ONLY_CHANNELS = ("test",)

Encoder = Callable[[Rows, np.ndarray], bytes | np.ndarray]  # bytes-like: what a binary file writes


def channel_content_types(content_type: str, channels: tuple[str, ...]) -> dict[str, str]:
    """Each channel's ContentType for ``content_type`` (the test channel is always CSV)."""
    if content_type not in CONTENT_TYPES:
        raise DataValidationError(f"Content type {content_type!r} is not one of {sorted(CONTENT_TYPES)}")
    return {c: (CSV if c in CSV_ONLY_CHANNELS else content_type) for c in channels}


def encoder(content_type: str) -> Encoder:
    """``encode(rows, index)``: the bytes of rows ``index`` (label first) in ``content_type``."""
    if content_type == CSV:
        return lambda rows, index: rows.csv(index)
    from sagemaker_retrain.recordio import recordio_records

    def encode(rows: Rows, index: np.ndarray) -> bytes | np.ndarray:
        if len(index) == 0:
            return b""
        values = rows.take(index, np.float32)  # what the records hold: converted once, in the gather
        return recordio_records(values[:, 1:], values[:, 0])  # written as is: no bytes copy

    return encode
