"""Invoke an endpoint with a few held-out rows and check the answer is usable.

The answer is read by the algorithm of the model that serves (``algorithms``): pass it when it is
known; without it, each algorithm's reader is tried on the answer in turn, and the first that reads
one prediction per row is taken (its name is logged).
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


class SmokeTestError(RuntimeError):
    """The endpoint answered, but not with one finite prediction per row."""


def rows_to_csv(rows: list[list[float]]) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


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


def parse_answer(body: bytes, expected_rows: int, algorithm=None, predictor_type: str | None = None) -> list[dict]:
    """The normalised predictions of an endpoint answer, read by ``algorithm`` (or by the first that can)."""
    from sagemaker_retrain import algorithms

    if algorithm is not None:
        try:
            return algorithm.parse_endpoint_answer(body, predictor_type or "regressor")
        except algorithms.AnswerError as err:
            raise SmokeTestError(str(err)) from err
    errors = []
    for candidate in algorithms.ALGORITHMS.values():
        try:
            predictions = candidate.parse_endpoint_answer(body, predictor_type or "regressor")
            check_predictions(predictions, expected_rows)
        except (algorithms.AnswerError, SmokeTestError) as err:
            errors.append(f"{candidate.title}: {err}")
            continue
        log.info("Endpoint answer read as %s's.", candidate.title)
        return predictions
    raise SmokeTestError("Endpoint answer is not one prediction per row in any known algorithm's format: "
                         + "; ".join(errors))


def smoke_test(runtime_client, endpoint_name: str, rows: list[list[float]], algorithm=None,
               predictor_type: str | None = None) -> list[float]:
    """Send ``rows`` in the algorithm's request type, return the scores after checking them."""
    content_type = algorithm.inference_content_type if algorithm is not None else "text/csv"
    accept = algorithm.endpoint_accept if algorithm is not None else "application/json"
    response = runtime_client.invoke_endpoint(
        EndpointName=endpoint_name, ContentType=content_type, Accept=accept, Body=rows_to_csv(rows)
    )
    return check_predictions(parse_answer(response["Body"].read(), len(rows), algorithm, predictor_type), len(rows))
