"""What the Linear Learner inference container does with a request body.

Request and response formats follow AWS's "Linear learner response formats" and common data
formats pages. Errors are ``ModelError``: the runtime turns them into InvokeEndpoint's
``ModelError`` (HTTP 424) carrying the container's status and message, as SageMaker does.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

from ..answers import ModelError, choose_accept, json_answer
from .data import RECORDIO_MAGIC, DataError, _varint, read_recordio_protobuf

RECORDIO = "application/x-recordio-protobuf"
REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines", RECORDIO)
# AWS documents json, jsonlines and recordio-protobuf responses; text/csv is the emulator's own (batch
# transform's CSV JoinSource uses it), see the README.
RESPONSE_TYPES = ("application/json", "application/jsonlines", RECORDIO, "text/csv")


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _bad(detail: str) -> ModelError:
    return ModelError(f"unable to evaluate payload provided: {detail}", 400)


def _to_float(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad(f"{where}: {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise _bad(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise _bad(f"{where}: {value!r} is not a finite number")
    return number


def _rows_from_csv(text: str) -> list[list[float]] | np.ndarray:
    matrix = _csv_matrix(text)
    if matrix is not None:
        return matrix
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows.append([_to_float(cell.strip(), f"line {lineno}") for cell in line.split(",")])
    return rows


def _csv_matrix(text: str) -> np.ndarray | None:
    """Every cell converted in one numpy call (as ``float()`` would), or None so the per-cell path names the fault.

    Only for a payload whose lines all have the same number of cells and whose values are all
    finite; anything else goes through ``_to_float`` one cell at a time, which says what is wrong.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    commas = lines[0].count(",")
    if any(line.count(",") != commas for line in lines):
        return None
    try:
        values = np.array(",".join(lines).split(","), dtype=np.float64)
    except ValueError:
        return None
    if not np.isfinite(values).all():
        return None
    return values.reshape(len(lines), commas + 1)


def _features_of(instance, where: str) -> list:
    """A record's dense features: ``{"features": [...]}``, or ``{"data": {"features": {"values": [...]}}}``
    with ``keys`` and ``shape`` for the sparse form (AWS's common inference formats)."""
    if isinstance(instance, dict):
        if "features" in instance:
            return instance["features"]
        data = instance.get("data")
        if isinstance(data, dict) and isinstance(data.get("features"), dict) and "values" in data["features"]:
            tensor = data["features"]
            if "keys" in tensor or "shape" in tensor:
                return _sparse(tensor, where)
            return tensor["values"]
    raise _bad(f"{where}: expected {{\"features\": [...]}} or {{\"data\": {{\"features\": {{\"values\": [...]}}}}}}")


def _sparse(tensor: dict, where: str) -> list[float]:
    keys, shape, values = tensor.get("keys"), tensor.get("shape"), tensor.get("values")
    if (not isinstance(keys, list) or not isinstance(values, list) or not isinstance(shape, list)
            or len(shape) != 1 or len(keys) != len(values)):
        raise _bad(f"{where}: a sparse record needs \"keys\" and \"values\" of one length and a one-element \"shape\"")
    size = shape[0]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 10_000_000:
        raise _bad(f"{where}: \"shape\" must be [feature_dim]")
    dense = [0.0] * size
    for key, value in zip(keys, values, strict=True):
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < size:
            raise _bad(f"{where}: sparse key {key!r} is outside shape {shape}")
        dense[key] = _to_float(value, where)
    return dense


def _rows_from_json(text: str) -> list[list[float]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise _bad(f"invalid JSON ({err})") from None
    if isinstance(doc, dict) and isinstance(doc.get("instances"), list):
        instances = doc["instances"]
    elif isinstance(doc, dict) and ("features" in doc or "data" in doc):
        instances = [doc]  # a single record
    else:
        raise _bad('expected {"instances": [{"features": [...]}, ...]}')
    return [_feature_list(_features_of(inst, f"instance {i}"), f"instance {i}") for i, inst in enumerate(instances)]


def _rows_from_jsonlines(text: str) -> list[list[float]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as err:
            raise _bad(f"line {lineno}: invalid JSON ({err})") from None
        rows.append(_feature_list(_features_of(doc, f"line {lineno}"), f"line {lineno}"))
    return rows


def _feature_list(values, where: str) -> list[float]:
    if not isinstance(values, list):
        raise _bad(f"{where}: features must be a list of numbers")
    return [_to_float(v, where) for v in values]


def decode_request(body: bytes, content_type: str, feature_dim: int) -> np.ndarray:
    """Turn an InvokeEndpoint body into an (n, feature_dim) matrix, or raise ModelError."""
    media = _media_type(content_type)
    if media not in REQUEST_TYPES:
        raise ModelError(
            f"Content type {content_type!r} is not supported by this algorithm; supported content types are "
            + ", ".join(REQUEST_TYPES),
            415,
        )
    if not body or not body.strip():
        raise _bad("the request body is empty")
    if media == "application/x-recordio-protobuf":
        try:
            _, X = read_recordio_protobuf([body])
        except DataError as err:
            raise _bad(str(err).removeprefix("ClientError: ")) from None
        rows = X
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("the request body is not UTF-8 text") from None
        parse = {"text/csv": _rows_from_csv, "application/json": _rows_from_json,
                 "application/jsonlines": _rows_from_jsonlines}[media]
        rows = parse(text)
        if len(rows) == 0:
            raise _bad("the request contains no records")
    for i, row in enumerate(rows, start=1):
        if len(row) != feature_dim:
            raise _bad(f"record {i} has {len(row)} features but the model expects feature_dim={feature_dim}")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), feature_dim)


def _records(predictions: dict[str, np.ndarray], predictor_type: str) -> list[dict]:
    scores = np.asarray(predictions["score"])
    labels = predictions.get("predicted_label")
    out = []
    for i in range(len(scores)):
        score = scores[i].tolist() if predictor_type == "multiclass_classifier" else float(scores[i])
        record = {"score": score}
        if predictor_type != "regressor" and labels is not None:
            record["predicted_label"] = int(labels[i])
        out.append(record)
    return out


def encode_response(predictions: dict[str, np.ndarray], accept: str, predictor_type: str) -> tuple[bytes, str]:
    """Serialise predictions in the Accept format; returns (body, content type)."""
    media, _ = choose_accept(accept, RESPONSE_TYPES, default="application/json")
    records = _records(predictions, predictor_type)
    if media == "application/json":
        return json_answer(records, media), media
    if media == RECORDIO:
        return encode_prediction_records(records), media
    if media == "application/jsonlines":
        scores = [r["score"] for r in records]
        if predictor_type == "regressor" and all(map(math.isfinite, scores)):  # json.dumps writes repr(float)
            return "".join(f'{{"score": {score!r}}}\n' for score in scores).encode("utf-8"), media
        return json_answer(records, media), media
    lines = []
    for r in records:
        if predictor_type == "regressor":
            lines.append(repr(r["score"]))
        elif predictor_type == "binary_classifier":
            lines.append(f"{r['predicted_label']},{r['score']!r}")
        else:
            lines.append(",".join([str(r["predicted_label"]), *(repr(p) for p in r["score"])]))
    return ("\n".join(lines) + "\n").encode("utf-8"), media


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_prediction_records(records: list[dict]) -> bytes:
    """RecordIO-protobuf responses as AWS documents them for Linear Learner: one ``Record`` per row,
    ``label["score"]`` (one value, or one per class for multiclass) and, for classifiers,
    ``label["predicted_label"]``, each a Float32Tensor; ``features`` empty."""
    out = bytearray()
    for record in records:
        payload = b""
        for key in ("score", "predicted_label"):
            if key not in record:
                continue
            values = np.atleast_1d(np.asarray(record[key], dtype="<f4"))
            value = _length_delimited(2, _length_delimited(1, values.tobytes()))  # Value.float32_tensor.values
            payload += _length_delimited(2, _length_delimited(1, key.encode()) + _length_delimited(2, value))
        out += struct.pack("<II", RECORDIO_MAGIC, len(payload)) + payload + b"\x00" * (-len(payload) % 4)
    return bytes(out)
