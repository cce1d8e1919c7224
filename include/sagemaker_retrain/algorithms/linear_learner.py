"""Built-in Linear Learner (``linear-learner:1``): the pipeline's first algorithm, exactly as before.

Hyperparameters: ``feature_dim`` (from the data), ``predictor_type``, ``num_classes`` (multiclass
only) and the Params of its form section, unset ones left to AWS's ``auto``. Channels train,
validation and test; CSV label-first or dense RecordIO-protobuf for train/validation. Answers:
``{"predictions": [{"score": …, "predicted_label": …}]}`` (JSON) and one ``{"score": …}`` per line
(JSON Lines, batch transform).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagemaker_retrain.algorithms.base import (
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    Algorithm,
    ExtraParam,
    Hyperparameter,
    hp_value,
    json_lines,
    json_predictions,
)
from sagemaker_retrain.images import LINEAR_LEARNER_ACCOUNTS

_HP = Hyperparameter
HYPERPARAMETERS = (
    _HP("mini_batch_size", "mini_batch_size", "int", "Mini-batch size",
        "Observations per mini-batch, 1–1,000,000 (the walkthrough uses 30).", 30, minimum=1, maximum=1_000_000),
    _HP("epochs", "epochs", "int", "Epochs", "Maximum passes over the training data, 1–1000.", 15,
        minimum=1, maximum=1000),
    _HP("learning_rate", "learning_rate", "float", "Learning rate",
        "Step size, above 0 and at most 1; empty for `auto`.", None, exclusive_minimum=0, maximum=1),
    _HP("wd", "wd", "float", "L2 weight decay (wd)", "0–1000; empty for `auto`.", None, minimum=0, maximum=1000),
    _HP("l1", "l1", "float", "L1 regularisation", "0–1000; empty for `auto`.", None, minimum=0, maximum=1000),
    _HP("num_models", "num_models", "int", "Parallel models",
        "Models trained in parallel (the best one is kept), 1–64; empty for `auto`.", None, minimum=1, maximum=64),
    _HP("normalize_data", "normalize_data", "bool", "Normalise features", "Standardise features before training.",
        True),
    _HP("use_bias", "use_bias", "bool", "Use bias", "Fit an intercept.", True),
    _HP("early_stopping_patience", "early_stopping_patience", "int", "Early-stopping patience",
        "Epochs without improvement on the validation rows before stopping, 1–100.", 3, minimum=1, maximum=100),
)
# The order the request lists them in (as it always has): predictor_type and num_classes first.
_ORDER = ("predictor_type", "num_classes", "mini_batch_size", "epochs", "learning_rate", "wd", "l1",
          "num_models", "normalize_data", "use_bias", "early_stopping_patience")


class LinearLearner(Algorithm):
    name = "linear-learner"
    title = "Linear Learner"
    repository = "linear-learner"
    tag = "1"
    accounts = LINEAR_LEARNER_ACCOUNTS
    hyperparameters = HYPERPARAMETERS
    extra_params = (
        ExtraParam("training_content_type", "Training data format",
                   "`text/csv`, or `application/x-recordio-protobuf` (Linear Learner's fastest input for large "
                   "data sets; k-NN reads it too, XGBoost and scikit-learn scripts train on CSV).", CSV, {"type": "string", "enum": [CSV, RECORDIO]}),
    )
    training_formats = (CSV, RECORDIO)
    endpoint_accept = JSON
    transform_accept = JSONLINES
    supported_content_types = (CSV, JSON, RECORDIO)
    supported_response_types = (JSON, JSONLINES)

    def image_tags(self) -> tuple[str, ...]:
        return ("1", "latest")

    def build_hyperparameters(self, params: Mapping, feature_dim: int, **context: Any) -> dict[str, str]:
        """Linear Learner hyperparameters (strings, as the API wants them); unset params stay 'auto'."""
        hps = {"feature_dim": str(feature_dim)}
        for name in _ORDER:
            value = params.get(name)
            if value is None:
                continue
            if name == "num_classes" and params.get("predictor_type") != "multiclass_classifier":
                continue
            hps[name] = hp_value(value)
        return hps

    def validate(self, params: Mapping, project_dir: Path | None = None) -> None:
        super().validate(params, project_dir)
        if params.get("predictor_type") == "multiclass_classifier" and not params.get("num_classes"):
            raise ValueError("Param num_classes (Number of classes) is required when Param predictor_type is "
                             "multiclass_classifier: set it to the number of labels (3 or more)")

    def parse_transform_output(self, body: bytes, predictor_type: str, where: str = "transform output") -> list[dict]:
        """JSON Lines: ``{"score": …}`` (and ``predicted_label`` for classifiers) per row, as they come.

        Already the normalised records; ``smoke.check_predictions`` checks each has a finite score.
        """
        return json_lines(body, where)

    def parse_endpoint_answer(self, body: bytes, predictor_type: str) -> list[dict]:
        return json_predictions(body, "Linear Learner")


ALGORITHM = LinearLearner()
