"""Linear Learner training: many linear models in parallel, the best one kept.

AWS trains ``num_models`` models at once over the same mini-batches, each with its own learning
rate and regularisation, and keeps the one that does best on the validation channel. We do the
same with numpy, vectorised over models (weights are a (models, features, outputs) tensor), so
the housing example trains in well under a second.

Each model is scored (for early stopping and selection) on the running average of its iterates
(polynomial-decay averaging), not on its last mini-batch step: the average settles where the raw
iterate keeps jittering with the mini-batch noise, so which model and epoch win on a small
validation channel depends far less on the seed or on the order of the training rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from . import metrics as M
from .data import DataError
from .hyperparameters import Hyperparameters
from .losses import LOG_NAMES, LossParams, loss_and_grad
from .model import LinearLearnerModel, _sigmoid, softmax

Channel = tuple[np.ndarray, np.ndarray]
_EVAL_ROWS = 20_000  # rows scored at once when evaluating, to bound memory
# Centre and spread of the learning rates drawn for the parallel models when learning_rate=auto
# (chosen so housing lands near least squares for any seed and row order, see the tests).
_BASE_LR = {"adam": 0.005, "rmsprop": 0.005, "sgd": 0.1}
_LR_SPREAD = 3.0
# Polynomial-decay iterate averaging (Shamir & Zhang 2013): avg += (eta + 1) / (t + eta) * (w - avg),
# a weighted average of the whole trajectory that leans on recent steps and forgets the start.
_AVERAGING_ETA = 0.5


@dataclass
class TrainResult:
    model: LinearLearnerModel
    metrics: dict[str, float]
    epochs_run: int


class _Log:
    """Log lines in the container's style: ``[MM/DD/YYYY HH:MM:SS INFO <tid>] message``."""

    def __init__(self, sink: Callable[[str], None]):
        self.sink = sink
        self.tid = os.getpid()

    def __call__(self, message: str, level: str = "INFO") -> None:
        stamp = datetime.now().strftime("%m/%d/%Y %H:%M:%S")
        self.sink(f"[{stamp} {level} {self.tid}] {message}")


def _check(name: str, channel: Channel, hp: Hyperparameters, dim: int) -> tuple[np.ndarray, np.ndarray]:
    y, X = (np.asarray(a, dtype=np.float64) for a in channel)
    if X.ndim != 2 or y.ndim != 1 or len(y) != len(X):
        raise DataError(f"ClientError: Channel '{name}' must be a label vector and a feature matrix")
    if len(y) == 0:
        raise DataError(f"ClientError: Channel '{name}' has no records")
    if X.shape[1] != dim:
        raise DataError(
            f"ClientError: The number of features in channel '{name}' ({X.shape[1]}) does not match "
            f"feature_dim ({dim})" + (" set in the hyperparameters" if hp.feature_dim else " of the train channel")
        )
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise DataError(f"ClientError: Channel '{name}' contains NaN or infinite values")
    if hp.predictor_type == "binary_classifier" and not np.isin(y, (0.0, 1.0)).all():
        bad = y[~np.isin(y, (0.0, 1.0))][0]
        raise DataError(f"ClientError: Label {bad:g} in channel '{name}' is invalid: binary_classifier labels must be 0 or 1")
    if hp.predictor_type == "multiclass_classifier":
        ok = (y == np.round(y)) & (y >= 0) & (y < hp.num_classes)
        if not ok.all():
            raise DataError(
                f"ClientError: Label {y[~ok][0]:g} in channel '{name}' is invalid: multiclass_classifier labels "
                f"must be integers in [0, {hp.num_classes - 1}] (num_classes={hp.num_classes})"
            )
    return y, X


def _finite_min(values: np.ndarray) -> float:
    """Best loss over models, ignoring diverged ones (nan/inf)."""
    return float(np.min(np.where(np.isfinite(values), values, np.inf)))


def _spread(given: float | None, center: float, lo: float, hi: float, n: int, rng, zero_share=0.0) -> np.ndarray:
    """Per-model values: the given one everywhere, else ``center`` for model 0 and a log-uniform spread."""
    if given is not None:
        return np.full(n, float(given))
    values = 10.0 ** rng.uniform(np.log10(lo), np.log10(hi), size=n)
    if zero_share:
        values[rng.uniform(size=n) < zero_share] = 0.0
    values[0] = center
    return values


class _Trainer:
    def __init__(self, hp: Hyperparameters, y: np.ndarray, X: np.ndarray, rng: np.random.Generator, log: _Log):
        self.hp, self.rng, self.log = hp, rng, log
        v = hp.values
        n, d = X.shape
        self.k = hp.num_classes if hp.predictor_type == "multiclass_classifier" else 1
        # --- normalisation statistics from a sample, as AWS does (num_point_for_scaler)
        sample = X[: v["num_point_for_scaler"]]
        self.mu = sample.mean(axis=0) if hp.normalize_data and hp.use_bias else np.zeros(d)
        sd = sample.std(axis=0) if hp.normalize_data else np.ones(d)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        ys = y[: v["num_point_for_scaler"]]
        self.my = float(ys.mean()) if hp.normalize_label and hp.use_bias else 0.0
        sy = float(ys.std()) if hp.normalize_label else 1.0
        self.sy = sy if sy > 1e-12 else 1.0
        # loss_insensitivity / huber_delta apply to the label the optimiser sees (normalised, if
        # normalize_label); metrics are reported in label units with the equivalent parameters.
        self.train_params = LossParams(v["loss_insensitivity"], v["quantile"], v["huber_delta"], v["margin"])
        self.params = self.train_params.scaled(1.0 / self.sy)
        # --- per-model hyperparameters (AWS: one model on the given values, the rest close to them)
        m = hp.num_models
        base_lr = _BASE_LR[hp.optimizer]
        self.lr = _spread(hp.learning_rate, base_lr, base_lr / _LR_SPREAD, base_lr * _LR_SPREAD, m, rng)
        self.wd = _spread(hp.wd, 0.0, 1e-6, 1e-2, m, rng, zero_share=0.4)
        self.l1 = _spread(hp.l1, 0.0, 1e-7, 1e-3, m, rng, zero_share=0.6)
        self.bias_lr_mult = 1.0 if v["bias_lr_mult"] is None else v["bias_lr_mult"]
        self.bias_wd_mult = 0.0 if v["bias_wd_mult"] is None else v["bias_wd_mult"]
        self.beta1 = 0.9 if v["beta_1"] is None else v["beta_1"]
        self.beta2 = 0.999 if v["beta_2"] is None else v["beta_2"]
        self.momentum = 0.0 if v["momentum"] is None else v["momentum"]
        self.sched_step = v["lr_scheduler_step"] or 100
        self.sched_factor = v["lr_scheduler_factor"] or 0.99
        self.sched_min = v["lr_scheduler_minimum_lr"] or 1e-5
        # --- parameters
        if v["init_method"] == "uniform":
            self.W = rng.uniform(-v["init_scale"], v["init_scale"], size=(m, d, self.k))
        else:
            self.W = rng.normal(0.0, v["init_sigma"], size=(m, d, self.k))
        self.b = np.full((m, 1, self.k), float(v["init_bias"]) if hp.use_bias else 0.0)
        self.state = [np.zeros_like(self.W), np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(self.b)]
        self.t = 0
        self.avg_W, self.avg_b = self.W.copy(), self.b.copy()  # averaged iterates (what is scored)
        self.class_weight = self._class_weights(y)

    def _class_weights(self, y: np.ndarray) -> np.ndarray | None:
        v = self.hp.values
        if self.hp.predictor_type == "binary_classifier":
            mult = v["positive_example_weight_mult"]
            if mult == "balanced":
                n_pos = max(1.0, float((y == 1).sum()))
                mult = float((y == 0).sum()) / n_pos
            elif mult == "auto":
                mult = 1.0
            return np.array([1.0, float(mult)])
        if self.hp.predictor_type == "multiclass_classifier" and v["balance_multiclass_weights"]:
            counts = np.bincount(y.astype(np.int64), minlength=self.k).astype(np.float64)
            return np.where(counts > 0, len(y) / (self.k * np.maximum(counts, 1)), 0.0)
        return None

    # ------------------------------------------------------------------ maths
    def norm(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mu) / self.sd

    def norm_y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.my) / self.sy if self.hp.predictor_type == "regressor" else y

    def scores(self, Xn: np.ndarray, W=None, b=None) -> np.ndarray:
        W = self.W if W is None else W
        b = self.b if b is None else b
        return np.matmul(Xn[None], W) + b

    def weights_for(self, y: np.ndarray) -> np.ndarray | None:
        if self.class_weight is None:
            return None
        return self.class_weight[y.astype(np.int64)]

    def step(self, Xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        """One optimiser step for every model on one mini-batch; returns the batch loss per model."""
        loss, g = loss_and_grad(self.hp.loss, self.scores(Xb), yb, self.train_params)
        w = self.weights_for(yb)
        if w is not None:
            loss, g = loss * w, g * w[None, :, None]
        g /= len(yb)
        gW = np.matmul(Xb.T[None], g)
        gW += self.wd[:, None, None] * self.W + self.l1[:, None, None] * np.sign(self.W)
        gb = g.sum(axis=1, keepdims=True) + (self.wd * self.bias_wd_mult)[:, None, None] * self.b
        self.t += 1
        lr = self.lr
        if self.hp.values["use_lr_scheduler"]:
            decay = self.sched_factor ** (self.t // self.sched_step)
            lr = np.maximum(lr * decay, np.minimum(lr, self.sched_min))
        lr = lr[:, None, None]
        self.W -= lr * self._direction(gW, 0)
        if self.hp.use_bias:
            self.b -= lr * self.bias_lr_mult * self._direction(gb, 2)
        a = (_AVERAGING_ETA + 1.0) / (self.t + _AVERAGING_ETA)
        self.avg_W += a * (self.W - self.avg_W)
        self.avg_b += a * (self.b - self.avg_b)
        return loss.mean(axis=1)

    def _direction(self, g: np.ndarray, slot: int) -> np.ndarray:
        opt, s1, s2 = self.hp.optimizer, self.state[slot], self.state[slot + 1]
        if opt == "sgd":
            s1 *= self.momentum
            s1 += g
            return s1
        if opt == "rmsprop":
            s2 *= self.beta2
            s2 += (1 - self.beta2) * g * g
            return g / (np.sqrt(s2) + 1e-8)
        s1 *= self.beta1
        s1 += (1 - self.beta1) * g
        s2 *= self.beta2
        s2 += (1 - self.beta2) * g * g
        m_hat = s1 / (1 - self.beta1**self.t)
        v_hat = s2 / (1 - self.beta2**self.t)
        return m_hat / (np.sqrt(v_hat) + 1e-8)

    def mean_loss(self, Xn: np.ndarray, yn: np.ndarray, W=None, b=None) -> np.ndarray:
        """Objective loss of every model over a (normalised) data set, in normalised units."""
        total = np.zeros(self.W.shape[0] if W is None else W.shape[0])
        for start in range(0, len(yn), _EVAL_ROWS):
            xs, ys = Xn[start:start + _EVAL_ROWS], yn[start:start + _EVAL_ROWS]
            loss, _ = loss_and_grad(self.hp.loss, self.scores(xs, W, b), ys, self.train_params)
            w = self.weights_for(ys)
            total += (loss * w).sum(axis=1) if w is not None else loss.sum(axis=1)
        return total / len(yn)

    def export(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold normalisation into the weights so the model works on raw features and labels."""
        Wo = W / self.sd[:, None] * self.sy
        bo = (b.reshape(-1) - (self.mu / self.sd) @ W) * self.sy
        if self.hp.predictor_type == "regressor":
            bo = bo + self.my
        return Wo, bo


def train(hp: Hyperparameters, train: Channel, validation: Channel | None = None, test: Channel | None = None,
          log: Callable[[str], None] = print, seed: int = 0) -> TrainResult:
    """Train Linear Learner on the channels; raise DataError on unusable data."""
    # A model whose learning rate is too high may diverge; it is simply never selected.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train(hp, train, validation, test, log, seed)


def _train(hp, train, validation, test, log, seed) -> TrainResult:
    out = _Log(log)
    dim = hp.feature_dim or np.asarray(train[1]).shape[-1]
    y, X = _check("train", train, hp, dim)
    val = _check("validation", validation, hp, dim) if validation is not None else None
    tst = _check("test", test, hp, dim) if test is not None else None
    rng = np.random.default_rng(seed)
    out(f"Reading default configuration and user hyperparameters: {dict(sorted((k, hp.values[k]) for k in hp.given))}")
    out(f"Training {hp.num_models} models in parallel on CPU: {len(y)} records, feature_dim={dim}, mini_batch_size={hp.mini_batch_size}")
    tr = _Trainer(hp, y, X, rng, out)
    out(f"Scaler algorithm parameters computed from {min(len(y), hp.values['num_point_for_scaler'])} records")
    Xn, yn = tr.norm(X), tr.norm_y(y)
    sel = (tr.norm(val[1]), tr.norm_y(val[0])) if val is not None else (Xn, yn)
    sel_name = "validation" if val is not None else "train"
    obj_name = LOG_NAMES[hp.loss]

    best_loss = tr.mean_loss(*sel)
    best_W, best_b = tr.avg_W.copy(), tr.avg_b.copy()
    stop_best, bad_epochs, epochs_run = np.inf, 0, 0
    batch = hp.mini_batch_size
    for epoch in range(hp.epochs):
        epoch_start = time.perf_counter()
        perm = rng.permutation(len(y))
        batch_losses = []
        for i, start in enumerate(range(0, len(y), batch)):
            idx = perm[start:start + batch]
            batch_losses.append(tr.step(Xn[idx], yn[idx]))
            if i == 0 and epoch == 0:
                out(f"#quality_metric: host=algo-1, epoch={epoch}, batch={i} train {obj_name} <loss>={_finite_min(batch_losses[-1]):.6g}")
        epochs_run = epoch + 1
        out(f"#throughput_metric: host=algo-1, train throughput={len(y) / max(time.perf_counter() - epoch_start, 1e-9)!r} "
            "records/second")
        train_loss = np.mean(batch_losses, axis=0)
        sel_loss = tr.mean_loss(*sel, tr.avg_W, tr.avg_b)  # each model's averaged iterate
        improved = sel_loss < best_loss
        best_loss = np.where(improved, sel_loss, best_loss)  # each model keeps its best epoch
        best_W[improved], best_b[improved] = tr.avg_W[improved], tr.avg_b[improved]
        out(f"#quality_metric: host=algo-1, epoch={epoch}, train {obj_name} <loss>={_finite_min(train_loss):.6g}")
        if val is not None:
            value = _label_units_loss(hp, tr, sel_loss, val[0], sel[0])
            out(f"#quality_metric: host=algo-1, epoch={epoch}, validation {obj_name} <loss>={value!r}")
        current = _finite_min(sel_loss)
        out(f"#early_stopping_criteria_metric: host=algo-1, epoch={epoch}, criteria={obj_name}, value={current:.6g}")
        if not np.isfinite(stop_best) or (stop_best - current) / max(abs(stop_best), 1e-12) >= hp.values["early_stopping_tolerance"]:
            out(f"Epoch {epoch}: Loss improved. Updating best model")
            stop_best, bad_epochs = min(stop_best, current), 0
        else:
            bad_epochs += 1
            out(f"Epoch {epoch}: Loss has not improved for {bad_epochs} epochs.")
        out(f"#progress_metric: host=algo-1, completed {100.0 * epochs_run / hp.epochs!r} % of epochs")
        if bad_epochs >= hp.values["early_stopping_patience"]:
            out(f"Early stop condition met. Stopping training after epoch {epoch}.")
            break

    out("#progress_metric: host=algo-1, completed 100 % epochs")
    model, chosen = _select(hp, tr, best_W, best_b, sel, best_loss, out, sel_name)
    result = {}
    for name, channel in (("train", (y, X)), ("validation", val), ("test", tst)):
        if channel is None:
            continue
        scores = _evaluate(hp, tr, model, channel)
        if name == "train":  # computed, not logged: AWS writes no final train scores
            result["train:objective_loss"] = scores["objective_loss"]
            continue
        for key, value in scores.items():
            result[f"{name}:{key}"] = value
        # AWS's final lines: every score as a tuple, then as a quality metric (see metric_definitions)
        lines = _score_lines(hp, obj_name, scores)
        for log_name, value, _kind in lines:
            out(f"#{name}_score (algo-1) : ('{log_name}', {value!r})")
        for log_name, value, kind in lines:
            out(f"#quality_metric: host=algo-1, {name} {log_name} <{kind}>={value!r}")
    out(f"Best model found for hyperparameters: {{'learning_rate': {tr.lr[chosen]:.6g}, 'wd': {tr.wd[chosen]:.6g}, "
        f"'l1': {tr.l1[chosen]:.6g}, 'optimizer': '{hp.optimizer}', 'loss': '{hp.loss}'}} (model #{chosen})")
    out(f"Finished training after {epochs_run} epochs; saving model to /opt/ml/model/model_algo-1")
    return TrainResult(model=model, metrics=result, epochs_run=epochs_run)


def _select(hp, tr: _Trainer, W, b, sel, sel_loss, out: _Log, sel_name: str):
    """Pick the best model on the selection channel; for binary, calibrate its threshold."""
    v = hp.values
    threshold = 0.5
    criterion = v["binary_classifier_model_selection_criteria"]
    if hp.predictor_type == "binary_classifier" and criterion != "loss_function":
        Xs, ys = sel
        n = min(len(ys), v["num_calibration_samples"])
        P = _sigmoid(tr.scores(Xs[:n], W, b)[..., 0])
        thresholds, values = M.calibrate(ys[:n], P, criterion, v["f_beta"], v["target_precision"], v["target_recall"])
        ties = np.flatnonzero(values >= values.max() - 1e-12)
        chosen = int(ties[np.argmin(sel_loss[ties])])  # equal criterion: lower loss wins
        threshold = float(thresholds[chosen])
        out(f"Selection criteria: {criterion} on the {sel_name} channel; best value {values[chosen]:.6g} "
            f"with threshold {threshold:.6g} (model #{chosen})")
    else:
        chosen = int(np.nanargmin(sel_loss))
        out(f"Selection criteria: {'loss_function' if hp.predictor_type == 'binary_classifier' else 'objective_loss'} "
            f"on the {sel_name} channel; best {LOG_NAMES[hp.loss]} {sel_loss[chosen]:.6g} (model #{chosen})")
    Wo, bo = tr.export(W[chosen], b[chosen])
    hps = {k: hp.values[k] for k in sorted(hp.given)}
    model = LinearLearnerModel(hp.predictor_type, Wo, bo, loss=hp.loss, num_classes=hp.num_classes,
                               threshold=threshold, hyperparameters=hps)
    return model, chosen


def _label_units_loss(hp, tr: _Trainer, sel_loss: np.ndarray, y_raw: np.ndarray, Xn: np.ndarray) -> float:
    """The epoch's best validation objective in label units, as AWS logs it (train lines stay normalised)."""
    if hp.predictor_type != "regressor" or not np.isfinite(sel_loss).any():
        return _finite_min(sel_loss)
    i = int(np.nanargmin(np.where(np.isfinite(sel_loss), sel_loss, np.inf)))
    scores = tr.scores(Xn, tr.avg_W[i:i + 1], tr.avg_b[i:i + 1]) * tr.sy + tr.my
    loss, _ = loss_and_grad(hp.loss, scores, y_raw, tr.params)
    return float(loss[0].mean())


def _score_lines(hp, obj_name: str, scores: dict[str, float]) -> list[tuple[str, float, str]]:
    """(log name, value, loss|score) of a channel's final scores, in the order AWS logs them."""
    objective = (obj_name, scores["objective_loss"], "loss")
    if hp.predictor_type == "regressor":
        return [objective, *((k, scores[k], "loss") for k in ("mse", "absolute_loss", "rmse", "r2", "mae"))]
    beta = f"{hp.values['f_beta']:.3f}"
    if hp.predictor_type == "binary_classifier":
        named = [("binary_classification_accuracy", "binary_classification_accuracy"),
                 (f"binary_f_{beta}", "binary_f_beta"), ("precision", "precision"), ("recall", "recall"),
                 ("roc_auc_score", "roc_auc_score")]
    else:
        named = [("multiclass_accuracy", "multiclass_accuracy"),
                 (f"multiclass_top_k_accuracy_{hp.values['accuracy_top_k']}", "multiclass_top_k_accuracy"),
                 ("dcg", "dcg"), ("macro_recall", "macro_recall"), ("macro_precision", "macro_precision"),
                 (f"macro_f_{beta}", "macro_f_beta")]
    return [objective, *((log_name, scores[key], "score") for log_name, key in named)]


def _evaluate(hp, tr: _Trainer, model: LinearLearnerModel, channel) -> dict[str, float]:
    """Metrics of the final model on one channel, in original label units."""
    y, X = channel
    s = model.raw_scores(X)
    loss, _ = loss_and_grad(hp.loss, s[None], y, tr.params)
    w = tr.weights_for(y)
    objective = float((loss[0] * w).mean() if w is not None else loss[0].mean())
    if hp.predictor_type == "regressor":
        return M.regression(y, s[:, 0], objective)
    if hp.predictor_type == "binary_classifier":
        return M.binary(y, _sigmoid(s[:, 0]), model.threshold, hp.values["f_beta"], objective)
    return M.multiclass(y, softmax(s), hp.values["accuracy_top_k"], hp.values["f_beta"], objective)
