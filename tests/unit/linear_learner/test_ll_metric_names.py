"""FinalMetricDataList names exactly as AWS: the metrics table of AWS's Linear Learner docs per
predictor type and channel, read from the log through the algorithm's MetricDefinitions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from offline_aws.linear_learner.hyperparameters import parse_hyperparameters
from offline_aws.linear_learner.metric_definitions import METRIC_DEFINITIONS, final_metrics
from offline_aws.linear_learner.train import train

# "Tune a linear learner model" -> "Metrics computed by the linear learner algorithm" (test:/validation:).
DOCUMENTED = {
    "regressor": {"absolute_loss", "mse", "objective_loss"},
    "binary_classifier": {"binary_classification_accuracy", "binary_f_beta", "precision", "recall",
                          "roc_auc_score", "objective_loss"},
    "multiclass_classifier": {"dcg", "macro_f_beta", "macro_precision", "macro_recall", "multiclass_accuracy",
                              "multiclass_top_k_accuracy", "objective_loss"},
}
# Reported by a real regressor job beyond the table (../shared/data/README.md's provenance).
REGRESSOR_VALIDATION_EXTRAS = {"rmse", "r2", "mae", "objective_loss:final"}
TRAIN = {"train:progress", "train:throughput", "train:objective_loss"}

# The final lines of the reference AWS job's log (housing, regressor, no test channel), verbatim.
AWS_LOG = """\
[06/16/2022 09:08:43 INFO 139637139089216] #progress_metric: host=algo-1, completed 100 % epochs
[06/16/2022 09:08:43 INFO 139637139089216] #throughput_metric: host=algo-1, train throughput=853.2635130392172 records/second
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, epoch=13, train mse_objective <loss>=0.2821601152420044
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, epoch=13, validation mse_objective <loss>=13.984094357958027
[06/16/2022 09:08:43 INFO 139637139089216] #validation_score (algo-1) : ('mse_objective', 12.65540687710631)
[06/16/2022 09:08:43 INFO 139637139089216] #validation_score (algo-1) : ('mse', 12.65540687710631)
[06/16/2022 09:08:43 INFO 139637139089216] #validation_score (algo-1) : ('absolute_loss', 2.5288796518363204)
[06/16/2022 09:08:43 INFO 139637139089216] #validation_score (algo-1) : ('rmse', 3.557443868440697)
[06/16/2022 09:08:43 INFO 139637139089216] #validation_score (algo-1) : ('r2', 0.7973001536506935)
[06/16/2022 09:08:43 INFO 139637139089216] #validation_score (algo-1) : ('mae', 2.5288796144373276)
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, validation mse_objective <loss>=12.65540687710631
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, validation mse <loss>=12.65540687710631
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, validation absolute_loss <loss>=2.5288796518363204
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, validation rmse <loss>=3.557443868440697
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, validation r2 <loss>=0.7973001536506935
[06/16/2022 09:08:43 INFO 139637139089216] #quality_metric: host=algo-1, validation mae <loss>=2.5288796144373276
"""
AWS_FINAL_METRIC_NAMES = ["train:progress", "validation:mae", "train:objective_loss", "validation:objective_loss",
                          "validation:objective_loss:final", "validation:rmse", "validation:mse", "validation:r2",
                          "train:throughput", "validation:absolute_loss"]


def test_definitions_read_the_aws_log_as_aws_did():
    metrics = final_metrics(AWS_LOG.splitlines())
    assert list(metrics) == AWS_FINAL_METRIC_NAMES  # the same names, in DescribeTrainingJob's order
    assert metrics["validation:rmse"] == pytest.approx(3.557443868440697)
    assert metrics["validation:objective_loss"] == pytest.approx(13.984094357958027)  # the last epoch's
    assert metrics["validation:objective_loss:final"] == pytest.approx(12.65540687710631)


def test_no_definition_names_a_metric_aws_does_not_document():
    documented = {f"{c}:{m}" for names in DOCUMENTED.values() for m in names for c in ("test", "validation")}
    observed = {f"validation:{m}" for m in REGRESSOR_VALIDATION_EXTRAS} | TRAIN
    seen_in_aws_definitions = {"train:mse", "train:absolute_loss", "train:objective_loss:final"}
    names = {d["Name"] for d in METRIC_DEFINITIONS}
    assert names <= documented | observed | seen_in_aws_definitions
    assert "test:r2" not in names and "test:rmse" not in names
    for definition in METRIC_DEFINITIONS:
        assert re.compile(definition["Regex"]).groups == 1


def _channels(predictor_type: str):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(900, 4))
    if predictor_type == "regressor":
        y = X @ [1.0, -2.0, 0.5, 3.0] + rng.normal(size=900) * 0.1
    elif predictor_type == "binary_classifier":
        y = (X @ [1.0, -2.0, 0.5, 3.0] > 0).astype(float)
    else:
        y = np.digitize(X @ [1.0, -2.0, 0.5, 3.0], [-1.0, 1.0]).astype(float)
    return (y[:600], X[:600]), (y[600:750], X[600:750]), (y[750:], X[750:])


HYPERPARAMETERS = {
    "regressor": {"predictor_type": "regressor"},
    "binary_classifier": {"predictor_type": "binary_classifier"},
    "multiclass_classifier": {"predictor_type": "multiclass_classifier", "num_classes": "3"},
}


@pytest.mark.parametrize("predictor_type", list(DOCUMENTED))
@pytest.mark.parametrize("with_validation", [True, False])
def test_reported_names_per_predictor_type_and_channel(predictor_type, with_validation):
    train_ch, val_ch, test_ch = _channels(predictor_type)
    lines: list[str] = []
    hp = parse_hyperparameters({**HYPERPARAMETERS[predictor_type], "mini_batch_size": "100", "epochs": "3"})
    train(hp, train_ch, val_ch if with_validation else None, test_ch, log=lines.append)
    metrics = final_metrics(lines)
    by_channel = {c: {n.partition(":")[2] for n in metrics if n.startswith(c + ":")} for c in ("train", "validation", "test")}
    assert by_channel["test"] == DOCUMENTED[predictor_type]  # exactly the documented table
    assert {f"train:{n}" for n in by_channel["train"]} == TRAIN
    if not with_validation:
        assert by_channel["validation"] == set()
    elif predictor_type == "regressor":
        assert by_channel["validation"] == DOCUMENTED["regressor"] | REGRESSOR_VALIDATION_EXTRAS
    else:
        assert by_channel["validation"] == DOCUMENTED[predictor_type] | {"objective_loss:final"}
    assert all(np.isfinite(v) for v in metrics.values())


def test_a_users_own_metric_definitions_read_the_same_lines():
    train_ch, val_ch, _ = _channels("regressor")
    lines: list[str] = []
    train(parse_hyperparameters({"predictor_type": "regressor", "mini_batch_size": "100", "epochs": "3"}),
          train_ch, val_ch, log=lines.append)
    mine = [{"Name": "my-rmse", "Regex": r"#validation_score \(algo-1\) : \('rmse', (\S+)\)"}]
    assert final_metrics(lines, mine)["my-rmse"] == pytest.approx(final_metrics(lines)["validation:rmse"])
