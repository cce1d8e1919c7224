"""The gate's decision: threshold first, then the champion, in the metric's own direction."""

from __future__ import annotations

from sagemaker_retrain.gate import decide, final_metric


def test_loss_metric_must_meet_threshold_and_beat_champion():
    assert decide("test:mse", 3.5, 10.0, None, None).deploy
    assert not decide("test:mse", 12.0, 10.0, None, None).deploy
    assert decide("test:mse", 3.5, 10.0, 3.6, "old").deploy
    lost = decide("test:mse", 3.7, 10.0, 3.6, "old")
    assert not lost.deploy and "does not beat the serving model old" in lost.reason
    assert not decide("test:mse", 3.6, 10.0, 3.6, "old").deploy  # a tie keeps the champion


def test_score_metric_direction_is_reversed():
    assert decide("test:binary_classification_accuracy", 0.97, 0.9, 0.95, "old").deploy
    assert not decide("test:binary_classification_accuracy", 0.85, 0.9, None, None).deploy
    assert not decide("test:roc_auc_score", 0.7, 0.5, 0.8, "old").deploy


def test_missing_metric_is_not_deployed():
    decision = decide("test:mse", None, 10.0, None, None)
    assert not decision.deploy and "has no test:mse" in decision.reason


def test_final_metric_reads_final_metric_data_list():
    description = {"FinalMetricDataList": [{"MetricName": "test:mse", "Value": 3.25}]}
    assert final_metric(description, "test:mse") == 3.25
    assert final_metric(description, "test:absolute_loss") is None
