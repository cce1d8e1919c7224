"""Read, validate, split and upload a CSV data set in the layout Linear Learner wants.

Streams the file in chunks, so memory stays bounded however large the data set is. Every
problem is reported with the row (line number in the file) or column that causes it, before
anything is uploaded, and before any SageMaker call is made.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
MIN_ROWS = 10
CHUNK_ROWS = 200_000
PART_BYTES = 256 * 1024 * 1024


class DataValidationError(ValueError):
    """The data set is unusable; the message names the row or column at fault."""


@dataclass
class PreparedData:
    """What prepare uploaded: one S3 prefix per channel, the counts, and held-out smoke rows."""

    channel_uris: dict[str, str]
    rows: dict[str, int]
    feature_names: list[str]
    target_column: str
    smoke_features: list[list[float]] = field(default_factory=list)
    smoke_labels: list[float] = field(default_factory=list)

    @property
    def feature_dim(self) -> int:
        return len(self.feature_names)

    def as_dict(self) -> dict:
        return {
            "channel_uris": self.channel_uris,
            "rows": self.rows,
            "feature_names": self.feature_names,
            "feature_dim": self.feature_dim,
            "target_column": self.target_column,
            "smoke_features": self.smoke_features,
            "smoke_labels": self.smoke_labels,
        }


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def open_source(uri: str, s3_client=None, base_dir: Path | None = None) -> IO[bytes]:
    """Open a local path or an s3:// object for streaming; a missing source is a clear error."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        try:
            return s3_client.get_object(Bucket=bucket, Key=key)["Body"]
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


def _read_header(stream: IO[bytes]) -> tuple[list[str], bytes]:
    """Return the header's column names and the raw header line, validating names."""
    raw = stream.readline()
    if not raw.strip():
        raise DataValidationError("The data set is empty: no header row")
    line = raw.decode("utf-8-sig").strip("\r\n")
    names = next(csv.reader([line]))
    if len(names) == 1 and any(sep in line for sep in (";", "\t", "|")):
        raise DataValidationError(
            f"The header has a single column {line[:80]!r}: the file must be comma-separated"
        )
    stripped = [name.strip() for name in names]
    for position, name in enumerate(stripped, start=1):
        if not name:
            raise DataValidationError(f"Column {position} of the header has a blank name")
    seen: set[str] = set()
    for name in stripped:
        if name in seen:
            raise DataValidationError(f"Column name {name!r} appears more than once in the header")
        seen.add(name)
    return stripped, raw


def _check_chunk(chunk: pd.DataFrame, first_line: int) -> np.ndarray:
    """Convert a chunk to float64, naming the first bad cell (line number is 1-based, header = 1)."""
    values = chunk.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        column = chunk.columns[col]
        raw = chunk.iat[row, col]
        line = first_line + row
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            problem = "is empty or missing (NaN, or a short row)"
        elif isinstance(raw, str) and not _is_number(raw):
            problem = f"is not numeric: {raw!r}"
        else:
            problem = f"is not finite: {raw!r}"
        raise DataValidationError(f"Line {line}, column {column!r} {problem}")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def iter_chunks(stream: IO[bytes], names: list[str], chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first line number, float matrix) per chunk of the body after the header."""
    reader = pd.read_csv(
        stream,
        header=None,
        names=names,
        dtype=str,
        chunksize=chunk_rows,
        skip_blank_lines=True,
        keep_default_na=False,
        na_values=[""],
        engine="c",
    )
    line = 2
    try:
        for chunk in reader:
            yield line, _check_chunk(chunk, line)
            line += len(chunk)
    except pd.errors.ParserError as err:
        raise DataValidationError(f"Malformed CSV (ragged row or bad quoting): {err}") from err


def split_counts(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_test = math.ceil(n * test_fraction)
    n_val = math.ceil(n * validation_fraction)
    return n_val, n_test


class _PartWriter:
    """Writes one channel as label-first, headerless CSV part files in a temp folder."""

    def __init__(self, folder: Path, channel: str, part_bytes: int):
        self.folder, self.channel, self.part_bytes = folder, channel, part_bytes
        self.parts: list[Path] = []
        self._handle = None
        self.rows = 0

    def write(self, matrix: np.ndarray) -> None:
        if len(matrix) == 0:
            return
        if self._handle is None or self._handle.tell() >= self.part_bytes:
            self._new_part()
        buffer = io.StringIO()
        np.savetxt(buffer, matrix, delimiter=",", fmt="%.10g")
        self._handle.write(buffer.getvalue())
        self.rows += len(matrix)

    def _new_part(self) -> None:
        if self._handle is not None:
            self._handle.close()
        path = self.folder / f"{self.channel}-part-{len(self.parts):05d}.csv"
        self.parts.append(path)
        self._handle = path.open("w")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


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
) -> tuple[PreparedData, dict[str, list[Path]]]:
    """Validate and split ``source`` into part files under ``workdir`` (nothing is uploaded here)."""
    names, _ = _read_header(source)
    if target_column not in names:
        raise DataValidationError(f"Target column {target_column!r} not in the header; columns are {names}")
    if len(names) < 2:
        raise DataValidationError("The data set needs at least one feature column besides the target")
    target_index = names.index(target_column)
    order = [target_index] + [i for i in range(len(names)) if i != target_index]
    features = [names[i] for i in order[1:]]
    rng = np.random.default_rng(seed)
    writers = {s: _PartWriter(workdir, s, part_bytes) for s in SPLITS}
    labels_seen: set[float] = set()
    label_min, label_max = math.inf, -math.inf
    smoke: list[np.ndarray] = []
    total = 0
    for first_line, values in iter_chunks(source, names, chunk_rows):
        ordered = values[:, order]
        labels = ordered[:, 0]
        _check_labels(labels, predictor_type, num_classes, first_line)
        label_min, label_max = min(label_min, labels.min()), max(label_max, labels.max())
        if len(labels_seen) < 3:
            labels_seen.update(np.unique(labels[:1000]).tolist())
        perm = rng.permutation(len(ordered))
        n_val, n_test = split_counts(len(ordered), validation_fraction, test_fraction)
        test = ordered[perm[:n_test]]
        writers["test"].write(test)
        writers["validation"].write(ordered[perm[n_test : n_test + n_val]])
        writers["train"].write(ordered[perm[n_test + n_val :]])
        if sum(len(s) for s in smoke) < smoke_rows:
            smoke.append(test[:smoke_rows])
        total += len(ordered)
    for writer in writers.values():
        writer.close()
    if total == 0:
        raise DataValidationError("The data set has a header but no data rows")
    if total < MIN_ROWS:
        raise DataValidationError(f"The data set has {total} data row(s); at least {MIN_ROWS} are needed")
    if label_min == label_max:
        raise DataValidationError(f"Target column {target_column!r} is constant ({label_min:g}): nothing to learn")
    empty = [s for s, w in writers.items() if w.rows == 0]
    if empty:
        raise DataValidationError(f"Split(s) {empty} came out empty: add rows or raise the shares")
    smoke_matrix = np.vstack(smoke)[:smoke_rows]
    prepared = PreparedData(
        channel_uris={},
        rows={s: w.rows for s, w in writers.items()},
        feature_names=features,
        target_column=target_column,
        smoke_features=smoke_matrix[:, 1:].tolist(),
        smoke_labels=smoke_matrix[:, 0].tolist(),
    )
    return prepared, {s: w.parts for s, w in writers.items()}


def _check_labels(labels: np.ndarray, predictor_type: str, num_classes: int | None, first_line: int) -> None:
    if predictor_type == "regressor":
        return
    limit = 2 if predictor_type == "binary_classifier" else (num_classes or 0)
    if predictor_type == "multiclass_classifier" and not num_classes:
        raise DataValidationError("predictor_type multiclass_classifier needs the num_classes param")
    bad = (labels != np.floor(labels)) | (labels < 0) | (labels >= limit)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataValidationError(
            f"Line {first_line + row}: label {labels[row]:g} is not a class in 0..{limit - 1} "
            f"(required for {predictor_type})"
        )


def upload_parts(
    s3_client, parts: dict[str, list[Path]], bucket: str, input_prefix: str, transfer_config=None
) -> dict[str, str]:
    """Upload part files under ``input_prefix/<channel>/`` and drop stale keys there (re-runs overwrite)."""
    uris = {}
    for channel, files in parts.items():
        prefix = f"{input_prefix}/{channel}/"
        written = set()
        for path in files:
            key = prefix + path.name.split("-", 1)[1]
            s3_client.upload_file(str(path), bucket, key, Config=transfer_config)
            written.add(key)
        stale = [
            {"Key": obj["Key"]}
            for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if obj["Key"] not in written
        ]
        if stale:
            s3_client.delete_objects(Bucket=bucket, Delete={"Objects": stale})
        uris[channel] = f"s3://{bucket}/{prefix}"
    return uris


def prepare_and_upload(
    uri: str,
    *,
    s3_client,
    bucket: str,
    input_prefix: str,
    params: dict,
    base_dir: Path | None = None,
    transfer_config=None,
) -> PreparedData:
    """The prepare task's body: validate and split ``uri``, then upload under ``input_prefix``."""
    with tempfile.TemporaryDirectory(prefix="prepare-") as tmp:
        source = open_source(uri, s3_client=s3_client, base_dir=base_dir)
        try:
            prepared, parts = prepare_dataset(
                source,
                target_column=params["target_column"],
                predictor_type=params["predictor_type"],
                validation_fraction=float(params["validation_fraction"]),
                test_fraction=float(params["test_fraction"]),
                seed=int(params["split_seed"]),
                smoke_rows=int(params.get("smoke_rows", 5)),
                num_classes=params.get("num_classes"),
                workdir=Path(tmp),
            )
        finally:
            source.close()
        prepared.channel_uris = upload_parts(s3_client, parts, bucket, input_prefix, transfer_config)
    return prepared
