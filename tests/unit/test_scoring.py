"""Champion and challenger scored on the same rows: transform output paired with the labels part by part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sagemaker_retrain import scoring
from sagemaker_retrain.algorithms import get as _algorithm
from sagemaker_retrain.gate_metrics import GATE_METRICS, METRICS_FOR_PREDICTOR
from sagemaker_retrain.smoke import SmokeTestError

BUCKET = "scoring-bucket"

LL = _algorithm("linear-learner")


def _put_split(s3, parts: list[np.ndarray]) -> str:
    for i, rows in enumerate(parts):
        body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n"
        s3.put_object(Bucket=BUCKET, Key=f"run/input/test/part-{i:05d}.csv", Body=body.encode())
    return f"s3://{BUCKET}/run/input/test/"


def _put_out(s3, role: str, parts: list[list[float]]) -> str:
    for i, scores in enumerate(parts):
        body = "\n".join(json.dumps({"score": s}) for s in scores) + "\n"
        s3.put_object(Bucket=BUCKET, Key=f"run/scoring/{role}/part-{i:05d}.csv.out", Body=body.encode())
    return f"s3://{BUCKET}/run/scoring/{role}/"


def test_both_models_are_scored_on_the_same_rows_in_order(s3):
    rows = [np.array([[1.0, 0.1], [2.0, 0.2]]), np.array([[3.0, 0.3]])]
    test_uri = _put_split(s3, rows)
    good = _put_out(s3, "challenger", [[1.0, 2.0], [3.5]])
    bad = _put_out(s3, "champion", [[0.0, 0.0], [0.0]])
    challenger = scoring.score_model(s3, "regressor", "test:mse", test_uri, good, algorithm=LL)
    champion = scoring.score_model(s3, "regressor", "test:mse", test_uri, bad, algorithm=LL)
    assert challenger["rows"] == champion["rows"] == 3
    assert challenger["gate_value"] == pytest.approx(0.25 / 3)
    assert champion["gate_value"] == pytest.approx((1 + 4 + 9) / 3)
    assert list(challenger["y"]) == [1.0, 2.0, 3.0]


def test_a_missing_or_short_output_is_refused(s3):
    test_uri = _put_split(s3, [np.array([[1.0, 0.1], [2.0, 0.2]])])
    with pytest.raises(scoring.ScoringError, match="No transform output"):
        scoring.score_model(s3, "regressor", "test:mse", test_uri, f"s3://{BUCKET}/run/scoring/none/", algorithm=LL)
    short = _put_out(s3, "challenger", [[1.0]])
    with pytest.raises(scoring.ScoringError, match="1 predictions for 2 rows"):
        scoring.score_model(s3, "regressor", "test:mse", test_uri, short, algorithm=LL)


def test_non_finite_predictions_fail_the_checks(s3):
    test_uri = _put_split(s3, [np.array([[1.0, 0.1], [2.0, 0.2]])])
    body = '{"score": NaN}\n{"score": 1.0}\n'
    s3.put_object(Bucket=BUCKET, Key="run/scoring/challenger/part-00000.csv.out", Body=body.encode())
    with pytest.raises(SmokeTestError, match="no finite score"):
        scoring.score_model(s3, "regressor", "test:mse", test_uri, f"s3://{BUCKET}/run/scoring/challenger/", algorithm=LL)


def test_every_gate_metric_is_computable_on_rows_and_suits_one_predictor_type():
    assert set(scoring.ROW_METRIC) == set(GATE_METRICS)
    suited = [m for metrics in METRICS_FOR_PREDICTOR.values() for m in metrics]
    assert sorted(suited) == sorted(GATE_METRICS)


def test_bulk_paths_agree_with_the_line_by_line_checks():
    """The one-call JSON parse and score check fall back to naming the bad line or prediction."""
    from sagemaker_retrain.scoring import _parse_lines
    from sagemaker_retrain.smoke import check_predictions

    assert _parse_lines(b'{"score": 1}\n\n{"score": 2.5}\n', "out") == [{"score": 1}, {"score": 2.5}]
    with pytest.raises(scoring.ScoringError, match="out line 2 is not JSON"):
        _parse_lines(b'{"score": 1}\n{"score": 2}, {"score": 3}\n', "out")
    assert check_predictions([{"score": 1.5}, {"score": 2.0}], 2) == [1.5, 2.0]
    assert check_predictions([{"score": [0.1, 0.7]}, {"score": 2}], 2) == [0.7, 2]
    for bad, index in (([{"score": 1.0}, {"score": float("nan")}], 1), ([{"score": "1"}], 0), ([{}], 0),
                       ([{"score": 1e308}, {"score": float("inf")}], 1)):
        with pytest.raises(SmokeTestError, match=f"Prediction {index} has no finite score"):
            check_predictions(bad, len(bad))
