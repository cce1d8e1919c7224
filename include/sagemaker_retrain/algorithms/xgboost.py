"""Built-in XGBoost (``sagemaker-xgboost:1.7-1``), the framework image as the SageMaker SDK resolves it.

``objective`` follows Param predictor_type: ``reg:squarederror``, ``binary:logistic`` or
``multi:softprob`` (with ``num_class`` from Param num_classes). ``num_round`` is required (the
container refuses a job without it). Channels train and validation, CSV label-first without a
header (``text/csv``). Answers: ``text/csv`` / batch transform one prediction per line (a number, or
``[p0, p1, …]`` for ``multi:softprob``), ``application/json`` ``{"predictions": [{"score": …}]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagemaker_retrain.algorithms.accounts import FRAMEWORK
from sagemaker_retrain.algorithms.base import (
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    Algorithm,
    Hyperparameter,
    from_values,
    hp_value,
    json_predictions,
    number_lines,
)

OBJECTIVES = {"regressor": "reg:squarederror", "binary_classifier": "binary:logistic",
              "multiclass_classifier": "multi:softprob"}
INF = float("inf")

_HP = Hyperparameter
HYPERPARAMETERS = (
    _HP("num_round", "xgboost_num_round", "int", "Boosting rounds (num_round)",
        "Required for XGBoost: the number of rounds to run the training, 1–10,000.", None, required=True,
        minimum=1, maximum=10_000),
    _HP("eta", "xgboost_eta", "float", "Learning rate (eta)",
        "Step size shrinkage, 0–1; empty for XGBoost's default (0.3).", None, minimum=0, maximum=1),
    _HP("max_depth", "xgboost_max_depth", "int", "Maximum tree depth",
        "0–64 (0: no limit, with `grow_policy` lossguide); empty for the default (6).", None, minimum=0, maximum=64),
    _HP("min_child_weight", "xgboost_min_child_weight", "float", "Minimum child weight",
        "Minimum sum of instance weight in a child, 0 or more; empty for the default (1).", None, minimum=0),
    _HP("subsample", "xgboost_subsample", "float", "Row subsample",
        "Share of rows sampled per tree, above 0 and at most 1; empty for the default (1).", None,
        exclusive_minimum=0, maximum=1),
    _HP("colsample_bytree", "xgboost_colsample_bytree", "float", "Column subsample per tree",
        "Above 0 and at most 1; empty for the default (1).", None, exclusive_minimum=0, maximum=1),
    _HP("gamma", "xgboost_gamma", "float", "Minimum split loss (gamma)",
        "0 or more; empty for the default (0).", None, minimum=0),
    _HP("alpha", "xgboost_alpha", "float", "L1 regularisation (alpha)", "0 or more; empty for the default (0).",
        None, minimum=0),
    _HP("lambda", "xgboost_lambda", "float", "L2 regularisation (lambda)", "0 or more; empty for the default (1).",
        None, minimum=0),
    _HP("max_delta_step", "xgboost_max_delta_step", "float", "Maximum delta step",
        "0 or more (helps very unbalanced binary classes); empty for the default (0).", None, minimum=0),
    _HP("scale_pos_weight", "xgboost_scale_pos_weight", "float", "Positive class weight",
        "Balance of positive and negative weights (binary), above 0; empty for the default (1).", None,
        exclusive_minimum=0),
    _HP("tree_method", "xgboost_tree_method", "str", "Tree method",
        "`auto`, `exact`, `approx` or `hist`; empty for the default (auto).", None,
        choices=("auto", "exact", "approx", "hist")),
    _HP("early_stopping_rounds", "xgboost_early_stopping_rounds", "int", "Early-stopping rounds",
        "Stop when the validation metric has not improved for this many rounds, 1–10,000; empty: no early "
        "stopping.", None, minimum=1, maximum=10_000),
    _HP("eval_metric", "xgboost_eval_metric", "str", "Evaluation metric",
        "The validation metric XGBoost reports (e.g. `rmse`, `mae`, `logloss`, `auc`, `error`, `mlogloss`); "
        "empty for the objective's default.", None,
        choices=("rmse", "rmsle", "mae", "mape", "logloss", "error", "auc", "aucpr", "merror", "mlogloss")),
    _HP("seed", "xgboost_seed", "int", "Random seed", "0–2147483647; empty for the default (0).", None,
        minimum=0, maximum=2**31 - 1),
)


class XGBoost(Algorithm):
    name = "xgboost"
    title = "XGBoost"
    repository = "sagemaker-xgboost"
    tag = "1.7-1"
    accounts = FRAMEWORK
    hyperparameters = HYPERPARAMETERS
    channels = ("train", "validation")
    training_formats = (CSV,)
    endpoint_accept = JSON
    transform_accept = CSV
    supported_content_types = (CSV, "text/libsvm", RECORDIO)
    supported_response_types = (CSV, JSON, JSONLINES)

    def image_tags(self) -> tuple[str, ...]:
        return ("1.7-1", "1.7-1-cpu-py3")

    def validate(self, params: Mapping, project_dir: Path | None = None) -> None:
        super().validate(params, project_dir)
        if params.get("predictor_type") == "multiclass_classifier" and not params.get("num_classes"):
            raise ValueError("Param num_classes (Number of classes) is required when Param predictor_type is "
                             "multiclass_classifier (XGBoost's num_class for multi:softprob)")
        metric = params.get("xgboost_eval_metric")
        if metric in ("auc", "aucpr", "logloss", "error") and params.get("predictor_type") != "binary_classifier":
            raise ValueError(f"Param xgboost_eval_metric {metric!r} is a binary metric: Param predictor_type is "
                             f"{params.get('predictor_type')!r}")
        if metric in ("merror", "mlogloss") and params.get("predictor_type") != "multiclass_classifier":
            raise ValueError(f"Param xgboost_eval_metric {metric!r} is a multiclass metric: Param predictor_type is "
                             f"{params.get('predictor_type')!r}")

    def build_hyperparameters(self, params: Mapping, feature_dim: int, **context: Any) -> dict[str, str]:
        predictor = params["predictor_type"]
        hps = {"objective": OBJECTIVES[predictor]}
        if predictor == "multiclass_classifier":
            hps["num_class"] = hp_value(params["num_classes"])
        hps.update(super().build_hyperparameters(params, feature_dim))
        return hps

    def parse_transform_output(self, body: bytes, predictor_type: str, where: str = "transform output") -> list[dict]:
        """One prediction per line: ``str()`` of the booster's output (a number, or a list for softprob)."""
        return from_values(number_lines(body, where), predictor_type, probability=True)

    def parse_endpoint_answer(self, body: bytes, predictor_type: str) -> list[dict]:
        return from_values(json_predictions(body, "XGBoost", "score"), predictor_type, probability=True)


ALGORITHM = XGBoost()
