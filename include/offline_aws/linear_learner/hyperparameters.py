"""Linear Learner hyperparameters: AWS's names, defaults and validation rules.

CreateTrainingJob passes every hyperparameter as a string; the real container validates them
against a schema before reading any data and fails the job with a ``ClientError`` reason.
We do the same, so a typo fails the job here exactly as it would on AWS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PREDICTOR_TYPES = ("binary_classifier", "multiclass_classifier", "regressor")
REGRESSION_LOSSES = (
    "squared_loss",
    "absolute_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
)
ALLOWED_LOSSES = {
    "regressor": ("auto", *REGRESSION_LOSSES),
    "binary_classifier": ("auto", "logistic", "hinge_loss"),
    "multiclass_classifier": ("auto", "softmax_loss"),
}
AUTO_LOSS = {"regressor": "squared_loss", "binary_classifier": "logistic", "multiclass_classifier": "softmax_loss"}
SELECTION_CRITERIA = ("accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision", "loss_function")
# Internal names the platform itself may add (automatic model tuning, distributed settings).
PLATFORM_HYPERPARAMETERS = ("_tuning_objective_metric", "_kvstore", "_num_gpus", "_num_kv_servers", "_log_level")


class HyperparameterError(ValueError):
    """An invalid hyperparameter map; ``str(err)`` is the training job's FailureReason."""


def _fail(name: str, value: str, expected: str) -> HyperparameterError:
    return HyperparameterError(
        f"ClientError: Hyperparameter validation failed for '{name}': {value!r} is not valid, "
        f"expected {expected} (caused by ValidationError)"
    )


def _num(kind: type, lo: float | None = None, hi: float | None = None, lo_open=False, hi_open=False, auto=False):
    """Parser for an int/float in a range, optionally accepting 'auto' (returned as None)."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    expected = ("'auto' or " if auto else "") + ("an integer" if kind is int else "a number")
    expected += (" " + " and ".join(parts)) if parts else ""

    def parse(name: str, raw: str):
        text = raw.strip()
        if auto and text.lower() == "auto":
            return None
        try:
            value = kind(text)
        except ValueError:
            raise _fail(name, raw, expected) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(name, raw, expected)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise _fail(name, raw, expected)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise _fail(name, raw, expected)
        return value

    return parse


def _choice(*options: str):
    def parse(name: str, raw: str):
        text = raw.strip()
        if text not in options:
            raise _fail(name, raw, "one of " + ", ".join(repr(o) for o in options))
        return text

    return parse


def _bool(auto=False):
    def parse(name: str, raw: str):
        text = raw.strip().lower()
        if auto and text == "auto":
            return None
        if text in ("true", "false"):
            return text == "true"
        raise _fail(name, raw, ("'auto', " if auto else "") + "'true' or 'false'")

    return parse


def _pos_weight(name: str, raw: str):
    text = raw.strip()
    if text in ("auto", "balanced"):
        return text
    return _num(float, 0, lo_open=True)(name, raw)


def _any_string(name: str, raw: str):
    return raw


# name -> (parser, default raw string). Defaults are AWS's documented ones.
SPEC: dict[str, tuple[Callable[[str, str], Any], str | None]] = {
    "predictor_type": (_choice(*PREDICTOR_TYPES), None),
    "num_classes": (_num(int, 3, 1_000_000), None),
    "accuracy_top_k": (_num(int, 1), "3"),
    "balance_multiclass_weights": (_bool(), "false"),
    "beta_1": (_num(float, 0, 1, hi_open=True, auto=True), "auto"),
    "beta_2": (_num(float, 0, 1, hi_open=True, auto=True), "auto"),
    "bias_lr_mult": (_num(float, 0, lo_open=True, auto=True), "auto"),
    "bias_wd_mult": (_num(float, 0, auto=True), "auto"),
    "binary_classifier_model_selection_criteria": (_choice(*SELECTION_CRITERIA), "accuracy"),
    "early_stopping_patience": (_num(int, 1), "3"),
    "early_stopping_tolerance": (_num(float, 0, lo_open=True), "0.001"),
    "epochs": (_num(int, 1), "15"),
    "f_beta": (_num(float, 0, lo_open=True), "1.0"),
    "feature_dim": (_num(int, 1, auto=True), "auto"),
    "huber_delta": (_num(float, 0, lo_open=True), "1.0"),
    "init_bias": (_num(float), "0"),
    "init_method": (_choice("uniform", "normal"), "uniform"),
    "init_scale": (_num(float, 0, lo_open=True), "0.07"),
    "init_sigma": (_num(float, 0, lo_open=True), "0.01"),
    "l1": (_num(float, 0, auto=True), "auto"),
    "learning_rate": (_num(float, 0, lo_open=True, auto=True), "auto"),
    "loss": (_choice(*ALLOWED_LOSSES["regressor"], "logistic", "hinge_loss", "softmax_loss"), "auto"),
    "loss_insensitivity": (_num(float, 0, lo_open=True), "0.01"),
    "lr_scheduler_factor": (_num(float, 0, 1, lo_open=True, auto=True), "auto"),
    "lr_scheduler_minimum_lr": (_num(float, 0, lo_open=True, auto=True), "auto"),
    "lr_scheduler_step": (_num(int, 1, auto=True), "auto"),
    "margin": (_num(float, 0), "1.0"),
    "mini_batch_size": (_num(int, 1), "1000"),
    "momentum": (_num(float, 0, 1, hi_open=True, auto=True), "auto"),
    "normalize_data": (_bool(), "true"),
    "normalize_label": (_bool(auto=True), "auto"),
    "num_calibration_samples": (_num(int, 1), "10000000"),
    "num_models": (_num(int, 1, 1000, auto=True), "auto"),
    "num_point_for_scaler": (_num(int, 1), "10000"),
    "optimizer": (_choice("auto", "sgd", "adam", "rmsprop"), "auto"),
    "positive_example_weight_mult": (_pos_weight, "1.0"),
    "quantile": (_num(float, 0, 1, lo_open=True, hi_open=True), "0.5"),
    "target_precision": (_num(float, 0, 1, lo_open=True), "0.8"),
    "target_recall": (_num(float, 0, 1, lo_open=True), "0.8"),
    "unbias_data": (_bool(auto=True), "auto"),
    "unbias_label": (_bool(auto=True), "auto"),
    "use_bias": (_bool(), "true"),
    "use_lr_scheduler": (_bool(), "true"),
    "wd": (_num(float, 0, auto=True), "auto"),
    **{name: (_any_string, None) for name in PLATFORM_HYPERPARAMETERS},
}
AUTO_NUM_MODELS = 32


@dataclass(frozen=True)
class Hyperparameters:
    """Validated hyperparameters; ``None`` in a numeric field means 'auto' (resolved in train)."""

    predictor_type: str
    loss: str
    num_classes: int | None
    feature_dim: int | None
    mini_batch_size: int
    epochs: int
    learning_rate: float | None
    wd: float | None
    l1: float | None
    use_bias: bool
    num_models: int
    optimizer: str
    normalize_data: bool
    normalize_label: bool
    values: dict[str, Any] = field(repr=False)  # every hyperparameter, parsed, defaults applied
    given: frozenset[str] = field(repr=False, default=frozenset())  # names the caller set

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def parse_hyperparameters(raw: dict[str, str]) -> Hyperparameters:
    """Validate ``raw`` (strings, as CreateTrainingJob sends them) and apply AWS's defaults."""
    unknown = sorted(set(raw) - set(SPEC))
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise HyperparameterError(
            f"ClientError: Additional hyperparameters are not allowed ({names} "
            f"{'was' if len(unknown) == 1 else 'were'} unexpected) (caused by ValidationError)"
        )
    for name, value in raw.items():
        if not isinstance(value, str):
            raise HyperparameterError(
                f"ClientError: Hyperparameter '{name}' must be a string, got {type(value).__name__}"
            )
    if "predictor_type" not in raw:
        raise HyperparameterError(
            "ClientError: No value(s) were specified for 'predictor_type' which are required "
            "hyperparameter(s) (caused by ValidationError)"
        )
    values: dict[str, Any] = {}
    for name, (parser, default) in SPEC.items():
        text = raw.get(name, default)
        values[name] = None if text is None else parser(name, text)

    ptype = values["predictor_type"]
    if ptype == "multiclass_classifier" and values["num_classes"] is None:
        raise HyperparameterError(
            "ClientError: No value(s) were specified for 'num_classes' which are required "
            "hyperparameter(s) when predictor_type is 'multiclass_classifier' (caused by ValidationError)"
        )
    if ptype != "multiclass_classifier":
        values["num_classes"] = None  # documented: ignored unless multiclass
    if values["loss"] not in ALLOWED_LOSSES[ptype]:
        raise HyperparameterError(
            f"ClientError: Hyperparameter validation failed for 'loss': {values['loss']!r} is not a valid "
            f"loss for predictor_type {ptype!r}; valid values are "
            + ", ".join(repr(v) for v in ALLOWED_LOSSES[ptype])
            + " (caused by ValidationError)"
        )
    loss = AUTO_LOSS[ptype] if values["loss"] == "auto" else values["loss"]
    values["loss"] = loss
    if values["normalize_label"] is None:
        values["normalize_label"] = ptype == "regressor"
    if ptype != "regressor" and values["normalize_label"]:
        values["normalize_label"] = False  # AWS only normalises regression labels
    values["optimizer"] = "adam" if values["optimizer"] == "auto" else values["optimizer"]
    values["num_models"] = values["num_models"] or AUTO_NUM_MODELS
    return Hyperparameters(
        predictor_type=ptype,
        loss=loss,
        num_classes=values["num_classes"],
        feature_dim=values["feature_dim"],
        mini_batch_size=values["mini_batch_size"],
        epochs=values["epochs"],
        learning_rate=values["learning_rate"],
        wd=values["wd"],
        l1=values["l1"],
        use_bias=values["use_bias"],
        num_models=values["num_models"],
        optimizer=values["optimizer"],
        normalize_data=values["normalize_data"],
        normalize_label=values["normalize_label"],
        values=values,
        given=frozenset(raw),
    )
