"""Built-in XGBoost (``sagemaker-xgboost:1.7-1``), trained and served with the ``xgboost`` library.

Follows aws/sagemaker-xgboost-container's algorithm mode (our code, its rules):

- hyperparameters: the container's table (``algorithm_mode/hyperparameter_validation.py``): ``num_round``
  required, unknown names refused (``Extraneous hyperparameter found: X``), ranges and categories
  checked, the aliases ``learning_rate``/``min_split_loss``/``reg_lambda``/``reg_alpha``; everything but
  ``num_round``, ``early_stopping_rounds``, ``csv_weights``, ``save_model_on_termination`` and the
  ``_``-prefixed ones goes to ``xgboost.train`` as a parameter, as the container passes it;
- channels ``train`` (required) and ``validation``; ContentType as ``data_utils.get_content_type``
  reads it: ``csv``/``text/csv`` (label first, no header; ``label_size`` must be 1), ``libsvm``/``text/libsvm``/
  ``text/x-libsvm`` (the default when a channel has none), ``recordio-protobuf``/``application/x-recordio-protobuf``;
  parquet is refused offline; anything else fails with the container's message;
- ``eval_metric``: xgboost's own metrics, plus the container's custom ones (``accuracy``, ``f1``, ``mse``,
  ``r2``, ...) computed with scikit-learn; one log line per round ``[N]#011train-rmse:...#011validation-rmse:...``
  (CloudWatch shows the tab as ``#011``), read back by the container's MetricDefinitions
  (``.*\\[[0-9]+\\].*#011validation-rmse:(\\S+)``, and ``train:`` likewise) into FinalMetricDataList;
- ``model.tar.gz`` holds ``xgboost-model`` (``Booster.save_model``), loadable by ``xgboost.Booster``;
- serving (``algorithm_mode/serve.py``): ``text/csv`` (no label), ``text/libsvm``, ``application/x-recordio-protobuf``
  requests; ``text/csv`` answers one prediction per line (a probability vector for ``multi:softprob``),
  ``application/json`` ``{"predictions": [{"score": ...}]}``; batch transform answers ``str(prediction)`` per line.
"""

from __future__ import annotations

import io
import math
import os
import re

import numpy as np

from ..answers import choose_accept, json_answer
from ..limits import LimitExceeded, read_tar_member
from ..linear_learner.data import DataError, read_csv_records, read_recordio_protobuf
from .base import AlgorithmFailed, ModelError, TrainingContext, TrainingResult, tar_gz

MODEL_NAME = "xgboost-model"

MAXIMIZE = ["accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
            "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro"]
MINIMIZE = ["aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
            "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse",
            "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik"]
# AWS's MetricDefinitions for the algorithm: train:<m> and validation:<m> over the round lines.
METRIC_DEFINITIONS = [
    {"Name": f"{channel}:{m}", "Regex": f".*\\[[0-9]+\\].*#011{channel}-{re.escape(m)}:(\\S+)"}
    for channel in ("train", "validation") for m in MAXIMIZE + MINIMIZE
]
CUSTOM_METRICS = {"accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "rmse", "mae", "precision",
                  "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro"}
# Computed by xgboost itself when asked for (the container's custom rmse/mae are the same numbers).
NATIVE = {"rmse", "mae"}

CUSTOMER_ERRORS = (  # xgboost errors the container reports as the user's (xgb_constants.CUSTOMER_ERRORS)
    "label must be in [0,1] for logistic regression", "label must be in [0, num_class)",
    "feature_names mismatch", "Check failed: preds.size() == info.labels_.size()", "base_score must be in (0,1)",
    "label must be nonnegative", "Parameter reg_lambda should be greater equal to 0",
)

OBJECTIVES = ["binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax",
              "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear", "reg:squarederror",
              "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror",
              "reg:tweedie", "survival:aft", "survival:cox"]

INF = math.inf
# name -> (kind, range): int/float with (low, low_open, high, high_open); cat with the allowed values.
HYPERPARAMETERS: dict[str, tuple] = {
    "num_round": ("int", (1, False, INF, False)),
    "csv_weights": ("int", (0, False, 1, False)),
    "early_stopping_rounds": ("int", (1, False, INF, False)),
    "booster": ("cat", ["gbtree", "gblinear", "dart"]),
    "verbosity": ("int", (0, False, 3, False)),
    "nthread": ("int", (1, False, INF, False)),
    "eta": ("float", (0, False, 1, False)),
    "gamma": ("float", (0, False, INF, False)),
    "max_depth": ("int", (0, False, INF, False)),
    "min_child_weight": ("float", (0, False, INF, False)),
    "max_delta_step": ("float", (0, False, INF, False)),
    "subsample": ("float", (0, True, 1, False)),
    "colsample_bytree": ("float", (0, True, 1, False)),
    "colsample_bylevel": ("float", (0, True, 1, False)),
    "colsample_bynode": ("float", (0, True, 1, False)),
    "lambda": ("float", (0, False, INF, False)),
    "alpha": ("float", (0, False, INF, False)),
    "tree_method": ("cat", ["auto", "exact", "approx", "hist", "gpu_hist"]),
    "sketch_eps": ("float", (0, True, 1, True)),
    "scale_pos_weight": ("float", (0, True, INF, False)),
    "updater": ("list", None),
    "dsplit": ("cat", ["row", "col"]),
    "refresh_leaf": ("int", (0, False, 1, False)),
    "process_type": ("cat", ["default", "update"]),
    "grow_policy": ("cat", ["depthwise", "lossguide"]),
    "max_leaves": ("int", (0, False, INF, False)),
    "max_bin": ("int", (0, False, INF, False)),
    "predictor": ("cat", ["auto", "cpu_predictor", "gpu_predictor"]),
    "monotone_constraints": ("str", None),
    "interaction_constraints": ("str", None),
    "sample_type": ("cat", ["uniform", "weighted"]),
    "normalize_type": ("cat", ["tree", "forest"]),
    "rate_drop": ("float", (0, False, 1, False)),
    "one_drop": ("int", (0, False, 1, False)),
    "skip_drop": ("float", (0, False, 1, False)),
    "lambda_bias": ("float", (0, False, 1, False)),
    "tweedie_variance_power": ("float", (1, True, 2, True)),
    "objective": ("cat", OBJECTIVES),
    "num_class": ("int", (2, False, INF, False)),
    "base_score": ("float", (0, False, INF, False)),
    "_kfold": ("int", (2, False, INF, False)),
    "_num_cv_round": ("int", (1, False, INF, False)),
    "_tuning_objective_metric": ("str", None),
    "eval_metric": ("list", None),
    "seed": ("int", (-(2**31), True, 2**31 - 1, True)),
    "num_parallel_tree": ("int", (1, False, INF, False)),
    "save_model_on_termination": ("cat", ["true", "false"]),
    "aft_loss_distribution": ("cat", ["normal", "logistic", "extreme"]),
    "aft_loss_distribution_scale": ("float", (0, False, INF, False)),
    "deterministic_histogram": ("cat", ["true", "false"]),
    "sampling_method": ("cat", ["uniform", "gradient_based"]),
    "prob_buffer_row": ("int", (1, True, INF, False)),
    "use_dask_gpu_training": ("cat", ["true", "false"]),
}
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
NOT_TRAIN_PARAMS = ("num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination",
                    "use_dask_gpu_training", "_kfold", "_num_cv_round", "_tuning_objective_metric")


def _interval(rng) -> str:
    low, low_open, high, high_open = rng
    return f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == INF else ']'}"


def validate_hyperparameters(raw: dict[str, str]) -> dict:
    """The container's validation; raises AlgorithmFailed with its ``UserError`` text as a ClientError."""
    def fail(text: str):
        raise AlgorithmFailed(f"ClientError: {text}")

    values = {}
    for name, value in raw.items():
        key = ALIASES.get(name, name)
        if key not in HYPERPARAMETERS:
            fail(f"Extraneous hyperparameter found: {name}")
        values[key] = str(value)
    if "num_round" not in values:
        fail("Missing required hyperparameter: num_round")
    out: dict = {}
    for name, text in values.items():
        kind, rng = HYPERPARAMETERS[name]
        if kind in ("int", "float"):
            try:
                number = int(text) if kind == "int" else float(text)
            except ValueError:
                fail(f"Hyperparameter {name}: could not parse value")
            low, low_open, high, high_open = rng
            if number < low or (low_open and number == low) or number > high or (high_open and number == high):
                fail(f"Hyperparameter {name}: value {number} not in range {_interval(rng)}")
            out[name] = number
        elif kind == "cat":
            if text not in rng:
                fail(f"Hyperparameter {name}: {text} is not in {rng}")
            out[name] = text
        elif kind == "list":
            out[name] = [part.strip() for part in text.split(",") if part.strip()]
        else:
            out[name] = text
    objective = out.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in out:
        fail("Require input for parameter 'num_class' for multi-classification")
    if objective is None and "num_class" in out:
        fail("Do not need to setup parameter 'num_class' for learning task other than multi-classification.")
    for metric in out.get("eval_metric", []):
        base = metric.split("@")[0].strip()
        if "@" in metric and base not in ("error", "ndcg", "map"):
            fail(f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized threshold should be "
                 "one of these options: 'error', 'ndcg', 'map'.")
        if "@" not in metric and metric not in MAXIMIZE + MINIMIZE:
            fail(f"Hyperparameter eval_metric: {metric} is not in {MAXIMIZE + MINIMIZE}")
        if "auc" in metric and not (objective or "reg:squarederror").startswith(("binary:", "rank:")):
            fail("Metric 'auc' can only be applied for classification and ranking problems.")
    return out


# ------------------------------------------------------------------------------------------- data
CSV, LIBSVM, RECORDIO, PARQUET = "csv", "libsvm", "recordio-protobuf", "parquet"
VALID_CONTENT_TYPES = ["csv", "libsvm", "parquet", "recordio-protobuf", "text/csv", "text/libsvm", "text/x-libsvm",
                       "application/x-parquet", "application/x-recordio-protobuf"]


def content_type_of(value: str | None) -> str:
    """``data_utils.get_content_type``: None is libsvm; ``csv`` and ``text/csv`` (label_size=1) are csv."""
    if value is None:
        return LIBSVM
    media, *params = [p.strip() for p in value.lower().split(";")]
    options = dict(p.split("=", 1) for p in params if "=" in p)
    if media in ("csv", "text/csv"):
        if options.get("label_size", "1") != "1":
            raise AlgorithmFailed(f"ClientError: {value} is not an accepted csv ContentType. Optional parameter "
                                  "label_size must be equal to 1")
        return CSV
    if media in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if media in ("parquet", "application/x-parquet"):
        return PARQUET
    if media in ("recordio-protobuf", "application/x-recordio-protobuf"):
        return RECORDIO
    raise AlgorithmFailed(f"ClientError: {value} is not an accepted ContentType: {', '.join(VALID_CONTENT_TYPES)}.")


def _libsvm(blob: bytes, n_features: int | None = None):
    from sklearn.datasets import load_svmlight_file

    kwargs = {"n_features": n_features} if n_features else {}
    X, y = load_svmlight_file(io.BytesIO(blob), zero_based=True, **kwargs)
    return y, X


def _fast_csv(blobs: list[bytes]):
    """(y, X) by pandas' C parser for a clean numeric CSV, else None (the slow path names the bad line)."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(b"\n".join(b.rstrip(b"\n") for b in blobs)), header=None, dtype=np.float64,
                            engine="c")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    data = frame.to_numpy()
    if data.ndim != 2 or data.shape[1] < 2 or not np.isfinite(data).all():
        return None
    return data[:, 0].copy(), data[:, 1:]


def read_channel(kind: str, blobs: list[bytes], name: str):
    """(y, X) of a channel, or AlgorithmFailed with a ClientError."""
    try:
        if kind == CSV:
            return _fast_csv(blobs) or read_csv_records(b if b.endswith(b"\n") else b + b"\n" for b in blobs)
        if kind == RECORDIO:
            return read_recordio_protobuf(blobs)
        if kind == LIBSVM:
            try:
                return _libsvm(b"\n".join(b.rstrip(b"\n") for b in blobs) + b"\n")
            except ValueError as exc:
                raise DataError(f"ClientError: Failed to load libsvm data with exception:\n{exc}") from None
        raise DataError("ClientError: Parquet input is not supported by the offline emulator (use csv or libsvm).")
    except DataError as exc:
        raise AlgorithmFailed(str(exc) if str(exc).startswith("ClientError") else f"ClientError: {exc}") from None


def _dmatrix(xgb, y, X, csv_weights: int = 0):
    if csv_weights == 1 and not hasattr(X, "tocsr"):
        return xgb.DMatrix(X[:, 1:], label=y, weight=X[:, 0])
    return xgb.DMatrix(X, label=y)


# ------------------------------------------------------------------------------------------- metrics
def _custom_metric(names: list[str], objective: str):
    from sklearn import metrics as skm

    def labels_of(preds):
        if preds.ndim == 2:
            return preds.argmax(axis=1)
        threshold = 0.0 if objective == "binary:logitraw" else 0.5
        return (preds > threshold).astype(int)

    funcs = {
        "accuracy": lambda y, p: skm.accuracy_score(y, labels_of(p)),
        "balanced_accuracy": lambda y, p: skm.balanced_accuracy_score(y, labels_of(p)),
        "f1": lambda y, p: skm.f1_score(y, labels_of(p), average="macro"),
        "f1_binary": lambda y, p: skm.f1_score(y, labels_of(p), average="binary"),
        "f1_macro": lambda y, p: skm.f1_score(y, labels_of(p), average="macro"),
        "mse": lambda y, p: skm.mean_squared_error(y, p),
        "r2": lambda y, p: skm.r2_score(y, p),
        "precision": lambda y, p: skm.precision_score(y, labels_of(p)),
        "precision_macro": lambda y, p: skm.precision_score(y, labels_of(p), average="macro"),
        "precision_micro": lambda y, p: skm.precision_score(y, labels_of(p), average="micro"),
        "recall": lambda y, p: skm.recall_score(y, labels_of(p)),
        "recall_macro": lambda y, p: skm.recall_score(y, labels_of(p), average="macro"),
        "recall_micro": lambda y, p: skm.recall_score(y, labels_of(p), average="micro"),
    }

    def feval(preds, dmatrix):
        y = dmatrix.get_label()
        return [(name, float(funcs[name](y, preds))) for name in names]

    return feval


_NUMBER = re.compile(r"^[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)", re.IGNORECASE)
_COMPILED = [(d["Name"], re.compile(d["Regex"])) for d in METRIC_DEFINITIONS]


def final_metrics(lines: list[str]) -> dict[str, float]:
    """Each definition's last value over the log, in definition order.

    ``(\\S+)`` also spans the ``#011`` after a value that is not last on its line; the number it
    starts with is the metric's value (on AWS the regex runs over the tab-separated line).
    """
    found: dict[str, float] = {}
    for line in lines:
        for name, regex in _COMPILED:
            match = regex.search(line)
            number = match and _NUMBER.match(match.group(1))
            if number:
                found[name] = float(number.group(0))
    order = {name: i for i, (name, _) in enumerate(_COMPILED)}
    return dict(sorted(found.items(), key=lambda item: order[item[0]]))


# ------------------------------------------------------------------------------------------- training
class XGBoost:
    name = "xgboost"
    title = "XGBoost"
    channels = ("train", "validation")

    def train(self, ctx: TrainingContext) -> TrainingResult:
        import xgboost as xgb

        hp = validate_hyperparameters(ctx.hyperparameters)
        kinds = {name: content_type_of(ct) for name, (ct, _) in ctx.channels.items()}
        if len(set(kinds.values())) > 1:
            raise AlgorithmFailed("ClientError: The train and validation channels must have the same ContentType.")
        if "_kfold" in hp:
            raise AlgorithmFailed("ClientError: _kfold (cross-validation) is not supported by the offline emulator.")
        csv_weights = hp.get("csv_weights", 0)
        data = {name: read_channel(kinds[name], blobs, name) for name, (_, blobs) in ctx.channels.items()}
        ctx.log(f"[{_now()}:INFO] Single node training.")
        ytr, Xtr = data["train"]
        dtrain = _dmatrix(xgb, ytr, Xtr, csv_weights)
        ctx.log(f"[{_now()}:INFO] Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns")
        evals = [(dtrain, "train")]
        if "validation" in data:
            yva, Xva = data["validation"]
            if kinds["validation"] == LIBSVM and hasattr(Xva, "shape") and Xva.shape[1] < Xtr.shape[1]:
                Xva = _libsvm_pad(Xva, Xtr.shape[1])
            dval = _dmatrix(xgb, yva, Xva, csv_weights)
            ctx.log(f"[{_now()}:INFO] Validation matrix has {dval.num_row()} rows")
            evals.append((dval, "validation"))

        params = {k: (",".join(v) if isinstance(v, list) else v) for k, v in hp.items() if k not in NOT_TRAIN_PARAMS}
        params.pop("eval_metric", None)
        params.setdefault("nthread", max(1, min(2, os.cpu_count() or 1)))
        params.setdefault("verbosity", 1)
        objective = hp.get("objective", "reg:squarederror")
        asked = hp.get("eval_metric", [])
        custom = [m for m in asked if m in CUSTOM_METRICS and m not in NATIVE]
        native = [m for m in asked if m not in custom]
        if native:
            params["eval_metric"] = native
        elif custom:
            params["disable_default_eval_metric"] = 1
        callbacks = [_log_rounds(xgb, ctx.log)]
        if "early_stopping_rounds" in hp and len(evals) > 1:
            callbacks.append(xgb.callback.EarlyStopping(rounds=hp["early_stopping_rounds"], data_name="validation",
                                                        save_best=False))
        try:
            booster = xgb.train(params, dtrain, num_boost_round=hp["num_round"], evals=evals,
                                custom_metric=_custom_metric(custom, objective) if custom else None,
                                callbacks=callbacks, verbose_eval=False)
        except xgb.core.XGBoostError as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            kind = "ClientError" if any(e in str(exc) for e in CUSTOMER_ERRORS) else "AlgorithmError"
            raise AlgorithmFailed(f"{kind}: {text}") from None
        # UBJSON, xgboost's own format (the name has no extension, as the container's): Booster.load_model reads it.
        artifact = tar_gz({MODEL_NAME: bytes(booster.save_raw("ubj"))})
        return TrainingResult(artifact, final_metrics(callbacks[0].lines))

    def load(self, artifact: bytes, container: dict, fetch) -> XGBoostPredictor:
        import xgboost as xgb

        if artifact[:2] != b"\x1f\x8b":
            raise ValueError("model.tar.gz is not a valid gzipped tar archive: not gzip")
        try:
            payload = read_tar_member(artifact, MODEL_NAME)
        except (LimitExceeded, OSError, EOFError) as exc:
            raise ValueError(f"model.tar.gz refused: {exc}") from None
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(payload))
        except xgb.core.XGBoostError as exc:
            raise ValueError(f"Unable to load the XGBoost model: {exc}") from None
        return XGBoostPredictor(booster)


def _libsvm_pad(X, width: int):
    X = X.tocsr()
    X.resize((X.shape[0], width))
    return X


def _now() -> str:
    from datetime import datetime

    return f"{datetime.now():%Y-%m-%d %H:%M:%S}"


def _log_rounds(xgb, log):
    """An xgboost callback writing each round's evaluation as the container's log shows it in CloudWatch."""

    class LogRounds(xgb.callback.TrainingCallback):
        def __init__(self):
            super().__init__()
            self.lines: list[str] = []

        def after_iteration(self, model, epoch: int, evals_log) -> bool:
            parts = [f"[{epoch}]"]
            for data, metrics in evals_log.items():
                for metric, values in metrics.items():
                    value = values[-1][0] if isinstance(values[-1], tuple) else values[-1]
                    parts.append(f"{data}-{metric}:{value:.5f}")
            line = "#011".join(parts)
            self.lines.append(line)
            log(line)
            return False

    return LogRounds()


# ------------------------------------------------------------------------------------------- serving
ACCEPTS = ("text/csv", "application/json", "application/jsonlines")


class XGBoostPredictor:
    def __init__(self, booster):
        self.booster = booster

    def predict_matrix(self, X) -> np.ndarray:
        import xgboost as xgb

        return self.booster.predict(xgb.DMatrix(X), validate_features=False)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, *, batch: bool = False):
        import xgboost as xgb

        if not body:
            raise ModelError("The request body is empty.", 400)
        try:
            kind = content_type_of(content_type or "")
        except AlgorithmFailed:
            kind = None
        if kind not in (CSV, LIBSVM, RECORDIO):
            raise ModelError(f"Content-type {content_type} is not supported.", 415)
        media, _ = choose_accept(accept, ACCEPTS, default="text/csv", wildcards=("*/*",), quote=False)
        try:
            X = self._decode(kind, body)
        except Exception as exc:  # noqa: BLE001 - the container answers 415 whatever the parse error
            raise ModelError(f"Loading {kind} data failed with Exception, please ensure data is in {kind} format:\n"
                             f" {type(exc)}\n {exc}", 415) from None
        expected = self.booster.num_features()
        if X.shape[1] != expected:
            raise ModelError(f"Unable to evaluate payload provided: Feature shape mismatch, expected: {expected}, "
                             f"got {X.shape[1]}", 400)
        try:
            preds = self.booster.predict(xgb.DMatrix(X))
        except xgb.core.XGBoostError as exc:
            raise ModelError(f"Unable to evaluate payload provided: {exc}", 400) from None
        values = preds.tolist()
        if batch:  # SAGEMAKER_BATCH: str() of each prediction, one per line
            return ("\n".join(map(str, values)) + "\n").encode(), media
        answer = json_answer([{"score": v} for v in values], media)
        if answer is not None:
            return answer, media
        rows = [",".join(map(repr, v)) if isinstance(v, list) else repr(v) for v in values]
        return ("\n".join(rows) + "\n").encode(), media

    @staticmethod
    def _decode(kind: str, body: bytes):
        if kind == CSV:
            text = body.decode("utf-8").strip()
            rows = [line.split(",") for line in text.split("\n") if line.strip()]
            return np.array(rows, dtype=float)
        if kind == LIBSVM:
            lines = body.decode("utf-8").strip().split("\n")
            if lines and ":" in lines[0].split(" ", 1)[0]:  # no label column: give one
                body = "\n".join(f"0 {line}" for line in lines).encode()
            return _libsvm(body)[1]
        return read_recordio_protobuf([body])[1]
