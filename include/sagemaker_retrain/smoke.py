"""Invoke an endpoint with a few held-out rows and check the answer is usable."""

from __future__ import annotations

import json
import math


class SmokeTestError(RuntimeError):
    """The endpoint answered, but not with one finite prediction per row."""


def rows_to_csv(rows: list[list[float]]) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def parse_predictions(body: bytes) -> list[dict]:
    try:
        return json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError) as err:
        raise SmokeTestError(f"Endpoint answer is not Linear Learner JSON: {body[:200]!r}") from err


def check_predictions(predictions: list[dict], expected_rows: int) -> list[float]:
    """Return the scores; raise SmokeTestError unless there is one finite score per row."""
    if len(predictions) != expected_rows:
        raise SmokeTestError(f"Sent {expected_rows} rows, got {len(predictions)} predictions")
    scores = _plain_scores(predictions)
    if scores is not None:
        return scores
    scores = []
    for i, prediction in enumerate(predictions):
        score = prediction.get("score") if isinstance(prediction, dict) else None
        values = score if isinstance(score, list) else [score]
        if not values or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise SmokeTestError(f"Prediction {i} has no finite score: {prediction!r}")
        scores.append(values[0] if len(values) == 1 else max(values))
    return scores


def _plain_scores(predictions: list[dict]) -> list[float] | None:
    """The scores when every prediction is a dict whose score is one finite float (the usual answer), else None."""
    if set(map(type, predictions)) != {dict}:
        return None
    scores = [prediction.get("score") for prediction in predictions]
    if set(map(type, scores)) != {float} or not all(map(math.isfinite, scores)):
        return None
    return scores


def smoke_test(runtime_client, endpoint_name: str, rows: list[list[float]]) -> list[float]:
    """Send ``rows`` as text/csv, return the scores after checking them."""
    response = runtime_client.invoke_endpoint(
        EndpointName=endpoint_name, ContentType="text/csv", Accept="application/json", Body=rows_to_csv(rows)
    )
    return check_predictions(parse_predictions(response["Body"].read()), len(rows))
