"""The prepare task's body: read, validate, split and write the data set, uploading parts as they finish.

The data set is streamed in chunks of a few megabytes (``chunks``), so memory stays bounded
however large it is; each chunk is parsed and validated (``csv_rows``, ``checks``), its rows are
drawn into the splits (``splitting``) and written label-first into part files (``encoding``,
``parts``), and each finished part file is uploaded (``upload``) while the next one is being
prepared. Every problem is reported with the line of the file (the header is line 1) or the
column that causes it, before any SageMaker call is made; if a bad row turns up after some parts
were uploaded, those parts are deleted again.

Output: label first, no header, in part files of about ``part_bytes`` (``text/csv``), or dense
float32 RecordIO-protobuf (``application/x-recordio-protobuf``) for the train and validation
channels. The train channel gets at least ``min_train_parts`` files, so a job with several
instances can shard it with ``ShardedByS3Key``.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import numpy as np

from sagemaker_retrain.data_prep import checks, encoding
from sagemaker_retrain.data_prep.chunks import CHUNK_BYTES, CHUNK_ROWS, iter_raw_chunks
from sagemaker_retrain.data_prep.csv_rows import parse_chunk, parse_header
from sagemaker_retrain.data_prep.drop import ConcatenatedParts, describe_parts
from sagemaker_retrain.data_prep.encoding import CONTENT_TYPES, CSV
from sagemaker_retrain.data_prep.parts import PART_BYTES, ChannelWriter
from sagemaker_retrain.data_prep.source import open_source
from sagemaker_retrain.data_prep.splitting import SPLITS, Splitter
from sagemaker_retrain.data_prep.upload import PartUploader
from sagemaker_retrain.lineage import HashingReader, describe_source

T = TypeVar("T")
R = TypeVar("R")


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
    types = encoding.channel_content_types(content_type, SPLITS)
    header, chunks = iter_raw_chunks(source, chunk_bytes, chunk_rows)
    names = parse_header(header)
    order = checks.label_first_order(names, target_column)
    splitter = Splitter(validation_fraction, test_fraction, seed)
    writers = {
        s: ChannelWriter(workdir, s, max(1, min_train_parts) if s == "train" else 1, part_bytes,
                         CONTENT_TYPES[types[s]], on_part)
        for s in SPLITS
    }
    encoders = {s: encoding.encoder(types[s]) for s in SPLITS}
    label_min, label_max = math.inf, -math.inf
    smoke: list[np.ndarray] = []
    chunk_number = 0
    parsed = _parsed_ahead(chunks, lambda chunk: parse_chunk(chunk[1], names, chunk[0], order))
    try:
        for rows in parsed:
            if len(rows) == 0:
                continue
            checks.check_labels(rows, predictor_type, num_classes)
            labels = rows.labels
            label_min, label_max = min(label_min, labels.min()), max(label_max, labels.max())
            index = splitter.assign(len(rows))
            for split in ("test", "validation"):
                writers[split].write(0, encoders[split](rows, index[split]), len(index[split]))
            train_writer = writers["train"]
            for i, lane_index in enumerate(np.array_split(index["train"], train_writer.lanes)):
                lane = (i + chunk_number) % train_writer.lanes  # rotate who gets the extra rows
                train_writer.write(lane, encoders["train"](rows, lane_index), len(lane_index))
            chunk_number += 1
            if sum(len(s) for s in smoke) < smoke_rows:
                smoke.append(rows.take(index["test"][:smoke_rows]))
        checks.check_totals(splitter.total, (label_min, label_max), target_column,
                            {s: w.rows for s, w in writers.items()}, min_train_parts)
    except BaseException:
        for writer in writers.values():
            writer.close(notify=False)
        raise
    finally:
        parsed.close()  # an error stops the worker now, before the caller closes the source
    for writer in writers.values():
        writer.close(notify=True)
    smoke_matrix = np.vstack(smoke)[:smoke_rows]
    prepared = PreparedData(
        channel_uris={},
        rows={s: w.rows for s, w in writers.items()},
        feature_names=[names[i] for i in order[1:]],
        target_column=target_column,
        smoke_features=smoke_matrix[:, 1:].tolist(),
        smoke_labels=smoke_matrix[:, 0].tolist(),
        content_types=types,
        parts={s: len(w.parts) for s, w in writers.items()},
    )
    return prepared, {s: w.parts for s, w in writers.items()}


def _parsed_ahead(chunks: Iterator[T], parse: Callable[[T], R]) -> Iterator[R]:
    """``parse(chunk)`` for each chunk in order, the next one read and parsed on a worker thread meanwhile.

    Reading, hashing and pandas' parser release the GIL, so on a machine with a spare core the
    next chunk is parsed while this one is split, gathered and written. Results and errors come
    back in file order, so the first bad line is still the one reported.
    """
    iterator = iter(chunks)
    done = object()

    def step():
        chunk = next(iterator, done)
        return done if chunk is done else parse(chunk)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-parse") as pool:
        ahead = pool.submit(step)
        while True:
            rows = ahead.result()
            if rows is done:
                return
            ahead = pool.submit(step)
            yield rows


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
