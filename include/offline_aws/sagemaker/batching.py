"""One input object of a Batch Transform -> its ``.out`` object, as the transform agent does it.

Split the object into records (SplitType), pack records into mini-batches no bigger than
MaxPayloadInMB (BatchStrategy), filter each record (InputFilter), send each mini-batch through
the model's container's own decode/predict/encode (``algorithms``), then join (JoinSource), filter
(OutputFilter) and assemble (AssembleWith) the answers. No S3 and no threads here, so every
rule is testable on bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from ..algorithms.base import ModelError, Predictor
from ..linear_learner.data import RECORDIO_MAGIC
from . import data_processing
from .data_processing import FilterError

MB = 1024 * 1024
DEFAULT_MAX_PAYLOAD_MB = 6
CSV = "text/csv"
JSON_TYPES = ("application/json", "application/jsonlines")
RECORDIO = "application/x-recordio-protobuf"


class BatchFailed(Exception):
    """Fails the job; the message is its FailureReason."""


@dataclass(frozen=True)
class Plan:
    """What a transform job's description asks for, with AWS's defaults filled in."""

    content_type: str
    split_type: str = "None"
    batch_strategy: str = "MultiRecord"
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB
    accept: str | None = None
    assemble_with: str = "None"
    input_filter: str = "$"
    output_filter: str = "$"
    join_source: str = "None"

    @classmethod
    def from_description(cls, desc: dict) -> Plan:
        tin, tout, dp = desc["TransformInput"], desc["TransformOutput"], desc.get("DataProcessing") or {}
        return cls(
            content_type=tin.get("ContentType") or "application/octet-stream",
            split_type=tin.get("SplitType") or "None",
            batch_strategy=desc.get("BatchStrategy") or "MultiRecord",
            max_payload_mb=DEFAULT_MAX_PAYLOAD_MB if desc.get("MaxPayloadInMB") is None else desc["MaxPayloadInMB"],
            accept=tout.get("Accept"),
            assemble_with=tout.get("AssembleWith") or "None",
            input_filter=dp.get("InputFilter") or "$",
            output_filter=dp.get("OutputFilter") or "$",
            join_source=dp.get("JoinSource") or "None",
        )

    @property
    def media(self) -> str:
        return self.content_type.split(";")[0].strip().lower()

    @property
    def per_record(self) -> bool:
        """Answers must be matched to their records (a join or an output filter)."""
        return self.join_source == "Input" or self.output_filter.strip() != "$"

    def check(self) -> None:
        """Refuse, before any work, what the emulator's Linear Learner agent cannot do."""
        if self.split_type == "TFRecord":
            raise BatchFailed("ClientError: SplitType TFRecord is not supported by the Linear Learner container.")
        if self.max_payload_mb == 0:
            raise BatchFailed(
                "ClientError: MaxPayloadInMB 0 (streamed, unlimited payload) is not supported by the Linear "
                "Learner container; set a size of 1 to 100 MB."
            )
        try:
            data_processing.parse(self.input_filter)
            data_processing.parse(self.output_filter)
        except FilterError as exc:
            raise BatchFailed(f"ClientError: {exc}") from None
        filtered = self.input_filter.strip() != "$" or self.per_record
        if filtered and self.media not in (CSV, *JSON_TYPES):
            raise BatchFailed(
                f"ClientError: DataProcessing (InputFilter, OutputFilter, JoinSource) supports text/csv, "
                f"application/json and application/jsonlines input, not {self.content_type!r}."
            )
        if filtered and self.media in (CSV, "application/jsonlines") and self.split_type != "Line":
            raise BatchFailed(
                f"ClientError: DataProcessing with {self.media} input needs SplitType Line, so that each record "
                "is one line."
            )


def split_records(body: bytes, split_type: str) -> list[bytes]:
    """Records as the agent cuts them: the whole object, each non-blank line, or each RecordIO record."""
    if split_type == "Line":
        return [line for line in body.splitlines() if line.strip()]
    if split_type == "RecordIO":
        return _recordio_records(body)
    return [body] if body else []


def _recordio_records(body: bytes) -> list[bytes]:
    records, pos = [], 0
    while pos < len(body):
        if pos + 8 > len(body):
            raise BatchFailed(f"ClientError: Truncated RecordIO header at byte {pos} of the input.")
        magic, lrec = struct.unpack_from("<II", body, pos)
        if magic != RECORDIO_MAGIC:
            raise BatchFailed(f"ClientError: Invalid RecordIO magic 0x{magic:08x} at byte {pos}; SplitType RecordIO "
                              "needs RecordIO-framed input.")
        end = pos + 8 + (((lrec & ((1 << 29) - 1)) + 3) & ~3)
        records.append(body[pos:end])
        pos = end
    return records


def mini_batches(records: list[bytes], plan: Plan, where: str) -> list[list[int]]:
    """Indexes of the records of each mini-batch; a record over MaxPayloadInMB fails the job."""
    limit = plan.max_payload_mb * MB
    sep = 1 if plan.split_type == "Line" else 0
    batches: list[list[int]] = []
    size = 0
    for i, record in enumerate(records):
        if len(record) > limit:
            raise BatchFailed(
                f"ClientError: Too much data for max payload size: record {i + 1} of {where} is {len(record)} "
                f"bytes, over MaxPayloadInMB={plan.max_payload_mb} ({limit} bytes). Split the input with SplitType "
                "or raise MaxPayloadInMB."
            )
        if plan.batch_strategy == "SingleRecord" or not batches or size + sep + len(record) > limit:
            batches.append([i])
            size = len(record)
        else:
            batches[-1].append(i)
            size += sep + len(record)
    return batches


def transform_object(model: Predictor, plan: Plan, body: bytes, where: str) -> bytes:
    """The ``.out`` payload for one input object (``where`` names it in failure reasons)."""
    records = split_records(body, plan.split_type)
    if not records:
        return b""
    csv = plan.media == CSV
    sent = records if plan.input_filter.strip() == "$" else (
        (csv and _sliced_csv(records, plan.input_filter)) or [_filter_input(r, plan, csv) for r in records])
    sep = b"\n" if plan.split_type == "Line" else b""
    raw_answers: list[bytes] = []
    encoded: list[str] = []
    for batch in mini_batches(records, plan, where):
        payload = sep.join(sent[i] for i in batch) + sep
        answer, answer_type = _predict(model, plan, payload, where)
        if not plan.per_record:
            raw_answers.append(answer)
            continue
        items = _answer_items(answer, answer_type)
        if len(items) != len(batch):
            raise BatchFailed(
                f"ClientError: The algorithm returned {len(items)} results for a mini-batch of {len(batch)} records "
                f"of {where}; JoinSource/OutputFilter need one result per record (use SplitType Line)."
            )
        for i, item in zip(batch, items, strict=True):
            encoded.append(_finish_record(records[i], item, answer_type, plan, csv))
    if not plan.per_record:
        if plan.assemble_with == "Line":
            return b"".join(a.rstrip(b"\n") + b"\n" for a in raw_answers)
        return b"".join(raw_answers)
    joiner = "\n" if plan.assemble_with == "Line" else ""
    return (joiner.join(encoded) + joiner).encode("utf-8")


def _predict(model: Predictor, plan: Plan, payload: bytes, where: str) -> tuple[bytes, str]:
    try:
        return model.invoke(payload, plan.content_type, plan.accept, batch=True)
    except ModelError as exc:
        raise BatchFailed(
            f"ClientError: Bad HTTP status received from algorithm: {exc.status} while transforming {where}: "
            f"{exc.message}"
        ) from None


def _sliced_csv(records: list[bytes], path: str) -> list[bytes] | None:
    """InputFilter ``$[a:b]`` on plain CSV records (ASCII, nothing to strip): the cells sliced as bytes.

    The same bytes ``_filter_input`` makes record by record, at a fraction of the cost; None when
    the filter or the records need the general path (which also reports any fault).
    """
    try:
        steps = data_processing.parse(path)
    except FilterError:
        return None
    if len(steps) != 1 or steps[0][0] != "slice":
        return None
    joined = b"\n".join(records)
    if not joined.isascii() or len(joined.translate(None, _ASCII_SPACE)) != len(joined) - len(records) + 1:
        return None
    cells = slice(*steps[0][1])
    return [b",".join(record.split(b",")[cells]) for record in records]


def _filter_input(record: bytes, plan: Plan, csv: bool) -> bytes:
    value = _parse_record(record, csv)
    try:
        picked = data_processing.apply(plan.input_filter, value)
    except FilterError as exc:
        raise BatchFailed(f"ClientError: InputFilter: {exc}") from None
    return _encode_record(picked, csv).encode("utf-8")


_ASCII_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip() removes from ASCII text


def _parse_record(record: bytes, csv: bool):
    text = record.decode("utf-8", errors="replace")
    if csv:
        if record.isascii() and len(record.translate(None, _ASCII_SPACE)) == len(record):
            return text.split(",")  # nothing to strip
        return [cell.strip() for cell in text.split(",")]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchFailed(f"ClientError: A record is not valid JSON ({exc}).") from None


def _answer_items(answer: bytes, answer_type: str) -> list:
    if answer_type == "application/x-recordio-protobuf":
        raise BatchFailed(
            "ClientError: DataProcessing (JoinSource/OutputFilter) cannot read application/x-recordio-protobuf "
            "results; set the TransformOutput Accept to application/json, application/jsonlines or text/csv."
        )
    text = answer.decode("utf-8")
    if answer_type == CSV:
        return [[cell for cell in line.split(",")] for line in text.splitlines() if line.strip()]
    if answer_type == "application/jsonlines":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)["predictions"]


def _finish_record(record: bytes, item, answer_type: str, plan: Plan, csv: bool) -> str:
    """Join one record with its answer and apply OutputFilter; encode like the input (CSV) or as JSON."""
    csv_out = csv if plan.join_source == "Input" else answer_type == CSV
    value = item
    if plan.join_source == "Input":
        if csv and answer_type != CSV:
            raise BatchFailed(
                "ClientError: JoinSource Input with text/csv input appends the results as CSV columns; set "
                "TransformOutput Accept to text/csv."
            )
        if not csv and answer_type == CSV:
            item = [_number(c) for c in item]
            item = item[0] if len(item) == 1 else item
        value = data_processing.join(_parse_record(record, csv), item, csv=csv)
    try:
        value = data_processing.apply(plan.output_filter, value)
    except FilterError as exc:
        raise BatchFailed(f"ClientError: OutputFilter: {exc}") from None
    return _encode_record(value, csv_out)


def _number(cell: str):
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        return cell


def _encode_record(value, csv: bool) -> str:
    if csv and isinstance(value, list):
        if set(map(type, value)) <= {str}:  # CSV cells as read: nothing to convert
            return ",".join(value)
        if not any(isinstance(v, dict | list) for v in value):
            return ",".join(map(str, value))
    if csv and not isinstance(value, dict | list):
        return str(value)
    return json.dumps(value)
