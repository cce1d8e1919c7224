"""The gate offers only metrics AWS's Linear Learner reports for the test channel.

AWS's documented metrics table ("Tune a linear learner model") lists, for the test channel, per
predictor type, the names below; a gate on any other name (``test:r2``, ``test:rmse``...) would
pass offline and find nothing on AWS. The Param schema itself refuses them (the Trigger form and
``airflow dags trigger`` both validate against it).
"""

from __future__ import annotations

import pytest
from airflow.sdk.definitions.param import ParamsDict

from sagemaker_retrain import scoring
from sagemaker_retrain.gate_metrics import GATE_METRICS, METRICS_FOR_PREDICTOR
from sagemaker_retrain.params import build_params

AWS_TEST_METRICS = {
    "regressor": {"test:absolute_loss", "test:mse", "test:objective_loss"},
    "binary_classifier": {"test:binary_classification_accuracy", "test:binary_f_beta", "test:precision",
                          "test:recall", "test:roc_auc_score", "test:objective_loss"},
    "multiclass_classifier": {"test:dcg", "test:macro_f_beta", "test:macro_precision", "test:macro_recall",
                              "test:multiclass_accuracy", "test:multiclass_top_k_accuracy", "test:objective_loss"},
}
# Minimise per AWS's table: the losses.
LOWER_IS_BETTER = {"test:absolute_loss", "test:mse", "test:objective_loss"}


@pytest.mark.parametrize("predictor_type", list(AWS_TEST_METRICS))
def test_each_predictor_type_is_offered_only_metrics_aws_reports_for_it(predictor_type):
    offered = set(METRICS_FOR_PREDICTOR[predictor_type])
    assert offered and offered <= AWS_TEST_METRICS[predictor_type]


def test_direction_matches_aws_optimisation_direction():
    for metric, lower_is_better in GATE_METRICS.items():
        assert lower_is_better == (metric in LOWER_IS_BETTER), metric


def test_the_gate_scores_rows_with_the_metric_it_names():
    assert set(scoring.ROW_METRIC) == set(GATE_METRICS)
    for metric, row_metric in scoring.ROW_METRIC.items():
        name = metric.removeprefix("test:")
        assert {"mse": "mse", "absolute_loss": "mae", "binary_classification_accuracy": "accuracy",
                "multiclass_accuracy": "accuracy", "binary_f_beta": "f1", "macro_f_beta": "f1",
                "roc_auc_score": "auc"}[name] == row_metric


def _resolve(**overrides):
    params = ParamsDict(build_params())
    for key, value in overrides.items():
        params[key] = value
    return params.validate()


@pytest.mark.parametrize("metric", ["test:r2", "test:rmse", "validation:rmse", "rmse", "test:mae"])
def test_the_param_schema_refuses_a_metric_aws_would_not_report(metric):
    with pytest.raises(Exception, match="gate_metric"):
        _resolve(gate_metric=metric)


def test_the_default_gate_is_a_reported_regressor_metric():
    resolved = _resolve()
    assert resolved["gate_metric"] in AWS_TEST_METRICS[resolved["predictor_type"]]
    for metric in GATE_METRICS:
        assert _resolve(gate_metric=metric)["gate_metric"] == metric
