"""Linear Learner's loss functions, vectorised over parallel models.

Every function takes scores ``S`` of shape (models, n, k) and labels ``y`` of shape (n,), and
returns the per-example loss (models, n) and its gradient with respect to ``S``. Parameters
(epsilon, huber delta) are in the units of ``y``; ``LossParams.scaled`` converts between units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import _sigmoid

# How each loss is named in the container's log lines ("train <name> <loss>=...").
LOG_NAMES = {
    "squared_loss": "mse_objective",
    "absolute_loss": "absolute_loss_objective",
    "eps_insensitive_squared_loss": "eps_insensitive_squared_loss_objective",
    "eps_insensitive_absolute_loss": "eps_insensitive_absolute_loss_objective",
    "quantile_loss": "quantile_loss_objective",
    "huber_loss": "huber_loss_objective",
    "logistic": "binary_classification_cross_entropy_objective",
    "hinge_loss": "hinge_loss_objective",
    "softmax_loss": "softmax_cross_entropy_objective",
}


@dataclass(frozen=True)
class LossParams:
    eps: float = 0.01  # loss_insensitivity
    quantile: float = 0.5
    delta: float = 1.0  # huber_delta
    margin: float = 1.0

    def scaled(self, label_scale: float) -> LossParams:
        """The same loss for labels divided by ``label_scale``."""
        return LossParams(self.eps / label_scale, self.quantile, self.delta / label_scale, self.margin)


def loss_and_grad(name: str, S: np.ndarray, y: np.ndarray, p: LossParams) -> tuple[np.ndarray, np.ndarray]:
    if name == "softmax_loss":
        z = S - S.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        idx = y.astype(np.int64)
        rows = np.arange(len(idx))
        loss = -logp[:, rows, idx]
        grad = np.exp(logp)
        grad[:, rows, idx] -= 1.0
        return loss, grad
    s = S[..., 0]
    if name == "logistic":
        loss = np.logaddexp(0.0, s) - y * s
        g = _sigmoid(s) - y
    elif name == "hinge_loss":
        t = 2.0 * y - 1.0
        m = p.margin - t * s
        loss = np.maximum(m, 0.0)
        g = -t * (m > 0)
    else:
        r = s - y
        if name == "squared_loss":
            loss, g = r * r, 2.0 * r
        elif name == "absolute_loss":
            loss, g = np.abs(r), np.sign(r)
        elif name == "eps_insensitive_squared_loss":
            a = np.maximum(np.abs(r) - p.eps, 0.0)
            loss, g = a * a, 2.0 * a * np.sign(r)
        elif name == "eps_insensitive_absolute_loss":
            a = np.maximum(np.abs(r) - p.eps, 0.0)
            loss, g = a, np.sign(r) * (a > 0)
        elif name == "quantile_loss":
            u = -r
            loss = np.maximum(p.quantile * u, (p.quantile - 1.0) * u)
            g = np.where(u > 0, -p.quantile, 1.0 - p.quantile)
        elif name == "huber_loss":
            a = np.abs(r)
            loss = np.where(a <= p.delta, 0.5 * r * r, p.delta * (a - 0.5 * p.delta))
            g = np.clip(r, -p.delta, p.delta)
        else:  # pragma: no cover - parse_hyperparameters rejects unknown losses
            raise ValueError(f"unknown loss {name!r}")
    return loss, g[..., None]
