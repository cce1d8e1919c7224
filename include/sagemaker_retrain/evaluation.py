"""Score the test split through the endpoint and compute the model's metrics.

Requests are batched so each payload stays under SageMaker's 6 MB InvokeEndpoint limit, with a
few in flight at once; the metrics are computed here from the endpoint's own answers.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MAX_PAYLOAD_BYTES = 5 * 1024 * 1024  # under the 6 MB limit, with room for headers


def encode_batches(features: np.ndarray, batch_rows: int, max_bytes: int = MAX_PAYLOAD_BYTES) -> list[bytes]:
    """Split rows into text/csv payloads of at most ``batch_rows`` rows and ``max_bytes`` bytes."""
    lines = [",".join(f"{v:.10g}" for v in row) for row in features]
    batches, current, size = [], [], 0
    for line in lines:
        length = len(line) + 1
        if length > max_bytes:
            raise ValueError(f"One row alone is {length} bytes, over the {max_bytes}-byte payload limit")
        if current and (len(current) >= batch_rows or size + length > max_bytes):
            batches.append("\n".join(current).encode())
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        batches.append("\n".join(current).encode())
    return batches


def score(runtime_client, endpoint_name: str, features: np.ndarray, batch_rows: int = 2000,
          in_flight: int = 4) -> list[dict]:
    """Predictions for every row, in order, as Linear Learner's JSON ``predictions`` entries."""
    batches = encode_batches(features, batch_rows)

    def invoke(body: bytes) -> list[dict]:
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType="text/csv", Accept="application/json", Body=body
        )
        return json.loads(response["Body"].read())["predictions"]

    with ThreadPoolExecutor(max_workers=max(1, in_flight)) as pool:
        results = list(pool.map(invoke, batches))
    predictions = [p for batch in results for p in batch]
    if len(predictions) != len(features):
        raise RuntimeError(f"Scored {len(features)} rows but got {len(predictions)} predictions")
    return predictions


def regression_metrics(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    err = yhat - y
    mse = float(np.mean(err**2))
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": mse**0.5,
        "mse": mse,
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / total if total > 0 else float("nan"),
    }


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
    positives, negatives = int(np.sum(y == 1)), int(np.sum(y == 0))
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def classification_metrics(y: np.ndarray, labels: np.ndarray, scores: np.ndarray | None,
                           binary: bool) -> dict[str, float]:
    accuracy = float(np.mean(labels == y))
    classes = [1] if binary else sorted(set(y.tolist()) | set(labels.tolist()))
    precisions, recalls, f1s = [], [], []
    for c in classes:
        tp = float(np.sum((labels == c) & (y == c)))
        precision = tp / max(float(np.sum(labels == c)), 1.0)
        recall = tp / max(float(np.sum(y == c)), 1.0)
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    metrics = {"accuracy": accuracy, "precision": float(np.mean(precisions)), "recall": float(np.mean(recalls)),
               "f1": float(np.mean(f1s))}
    if binary and scores is not None:
        metrics["auc"] = _auc(y, scores)
    return metrics


def compute_metrics(predictor_type: str, y: np.ndarray, predictions: list[dict]) -> tuple[dict, np.ndarray]:
    """Metrics for the predictor type, and the point predictions (score or label) per row."""
    if predictor_type == "regressor":
        yhat = np.array([p["score"] for p in predictions], dtype=float)
        return regression_metrics(y, yhat), yhat
    labels = np.array([p["predicted_label"] for p in predictions], dtype=float)
    binary = predictor_type == "binary_classifier"
    scores = np.array([p["score"] for p in predictions], dtype=float) if binary else None
    return classification_metrics(y, labels, scores, binary), labels


def predictions_csv(y: np.ndarray, yhat: np.ndarray) -> bytes:
    buffer = io.StringIO()
    buffer.write("actual,predicted\n")
    np.savetxt(buffer, np.column_stack([y, yhat]), delimiter=",", fmt="%.10g")
    return buffer.getvalue().encode()


def plot_png(y: np.ndarray, yhat: np.ndarray, title: str) -> bytes:
    """Predicted-vs-actual scatter with the identity line.

    Matplotlib's object API with its Agg canvas: no pyplot, so no global backend switch and no
    figure registry in the worker process (and less to import).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.scatter(y, yhat, s=12, alpha=0.7)
    low, high = float(min(y.min(), yhat.min())), float(max(y.max(), yhat.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def read_csv_channel(s3_client, channel_uri: str) -> np.ndarray:
    """All part files of a label-first CSV channel as one matrix (the test split is small)."""
    bucket, _, prefix = channel_uri[5:].partition("/")
    parts = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in sorted(page.get("Contents", []), key=lambda o: o["Key"]):
            body = s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if body.strip():
                parts.append(np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2))
    return np.vstack(parts)
