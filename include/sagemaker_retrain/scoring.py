"""Score champion and challenger on the same rows: read batch-transform output back against the labels.

Both models score this run's test split in batch transform jobs (never through the production
endpoint); each ``part-N.csv`` of the label-first split yields ``part-N.csv.out`` with one line per
row, in order, in the format of the algorithm that made it (``algorithms``: each model's output is
parsed by its own algorithm, so models of different algorithms are compared on the same rows). Reading the labels and the predictions part by part pairs them row for
row, so the gate compares two numbers computed on identical rows.
"""

from __future__ import annotations

import io
import math

import numpy as np

from sagemaker_retrain.algorithms import Algorithm, AnswerError
from sagemaker_retrain.algorithms.base import json_lines
from sagemaker_retrain.evaluation import compute_metrics
from sagemaker_retrain.smoke import SmokeTestError, check_predictions

# The gate's metric names (as SageMaker names them for its built-in algorithms' test channel) -> the
# metric the gate computes itself on rows, whatever the algorithm.
ROW_METRIC = {
    "test:mse": "mse",
    "test:absolute_loss": "mae",
    "test:binary_classification_accuracy": "accuracy",
    "test:binary_f_beta": "f1",
    "test:roc_auc_score": "auc",
    "test:multiclass_accuracy": "accuracy",
    "test:macro_f_beta": "f1",
}


class ScoringError(RuntimeError):
    """The model's batch output cannot be paired with the test rows, or is not usable."""


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _list_keys(s3, uri: str) -> list[str]:
    bucket, prefix = _split(uri)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Size"] > 0]
    return sorted(keys)


def _parse_lines(body: bytes, where: str) -> list[dict]:
    """One JSON value per non-blank line (JSON Lines output)."""
    try:
        return json_lines(body, where)
    except AnswerError as err:
        raise ScoringError(str(err)) from err


def read_scored_rows(s3, test_uri: str, output_uri: str, *, algorithm: Algorithm,
                     predictor_type: str = "regressor") -> tuple[np.ndarray, list[dict]]:
    """(labels, predictions) of every test row, paired through the transform's ``.out`` files.

    ``algorithm`` is the one of the model that wrote the output: it parses each line into the
    normalised prediction record (``algorithms.base``).
    """
    bucket, input_prefix = _split(test_uri)
    out_bucket, out_prefix = _split(output_uri.rstrip("/") + "/")
    labels, predictions = [], []
    for key in _list_keys(s3, test_uri):
        rows = np.loadtxt(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), delimiter=",",
                          ndmin=2)
        relative = key[len(input_prefix):].lstrip("/")
        out_key = f"{out_prefix}{relative}.out"
        try:
            body = s3.get_object(Bucket=out_bucket, Key=out_key)["Body"].read()
        except Exception as err:  # noqa: BLE001 - any read error means the output is missing
            raise ScoringError(f"No transform output s3://{out_bucket}/{out_key} for test part {key}: {err}") from err
        try:
            scored = algorithm.parse_transform_output(body, predictor_type, f"s3://{out_bucket}/{out_key}")
        except AnswerError as err:
            raise ScoringError(f"{algorithm.title} output: {err}") from err
        if len(scored) != len(rows):
            raise ScoringError(f"s3://{out_bucket}/{out_key} has {len(scored)} predictions for {len(rows)} rows")
        labels.append(rows[:, 0])
        predictions += scored
    if not labels:
        raise ScoringError(f"No test rows under {test_uri}")
    return np.concatenate(labels), predictions


def score_model(s3, predictor_type: str, gate_metric: str, test_uri: str, output_uri: str, *,
                algorithm: Algorithm) -> dict:
    """Metrics of one model (of ``algorithm``) on the test rows; raises SmokeTestError on a non-finite prediction."""
    y, predictions = read_scored_rows(s3, test_uri, output_uri, algorithm=algorithm, predictor_type=predictor_type)
    check_predictions(predictions, len(y))
    metrics, yhat = compute_metrics(predictor_type, y, predictions)
    value = metrics.get(ROW_METRIC[gate_metric])
    return {
        "rows": len(y),
        "metrics": metrics,
        "gate_value": value if value is not None and math.isfinite(value) else None,
        "y": y,
        "yhat": yhat,
    }


__all__ = ["ROW_METRIC", "ScoringError", "SmokeTestError", "read_scored_rows", "score_model"]
