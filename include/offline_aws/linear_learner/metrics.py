"""Evaluation metrics under Linear Learner's names, and binary threshold calibration.

AWS reports these per channel (``validation:rmse``, ``test:binary_f_beta`` ...); the tuner and
the project's quality gate read them from ``FinalMetricDataList``, so the names must match.
"""

from __future__ import annotations

import numpy as np


def regression(y: np.ndarray, pred: np.ndarray, objective: float) -> dict[str, float]:
    r = pred - y
    mse = float(np.mean(r * r))
    var = float(np.var(y))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "r2": 1.0 - mse / var if var > 0 else 0.0,
        "absolute_loss": float(np.mean(np.abs(r))),
        "mae": float(np.mean(np.abs(r))),  # AWS logs both names (its two values differ in float rounding)
        "objective_loss": float(objective),
    }


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    ranks = np.empty(len(p))
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _f_beta(precision, recall, beta):
    b2 = beta * beta
    denom = b2 * precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (1 + b2) * precision * recall / np.where(denom > 0, denom, 1), 0.0)


def binary(y: np.ndarray, p: np.ndarray, threshold: float, beta: float, objective: float) -> dict[str, float]:
    pred = p >= threshold
    pos = y == 1
    tp = float(np.sum(pred & pos))
    fp = float(np.sum(pred & ~pos))
    fn = float(np.sum(~pred & pos))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "binary_classification_accuracy": float(np.mean(pred == pos)),
        "precision": precision,
        "recall": recall,
        "binary_f_beta": float(_f_beta(np.float64(precision), np.float64(recall), beta)),
        "roc_auc_score": roc_auc(y, p),
        "objective_loss": float(objective),
    }


def multiclass(y: np.ndarray, P: np.ndarray, top_k: int, beta: float, objective: float) -> dict[str, float]:
    n, k = P.shape
    yi = y.astype(np.int64)
    pred = P.argmax(axis=1)
    true_p = P[np.arange(n), yi]
    rank = 1 + (P > true_p[:, None]).sum(axis=1)  # 1-based rank of the true class
    precisions, recalls = [], []
    for c in range(k):
        tp = np.sum((pred == c) & (yi == c))
        npred, nact = np.sum(pred == c), np.sum(yi == c)
        precisions.append(tp / npred if npred else 0.0)
        recalls.append(tp / nact if nact else 0.0)
    mp, mr = float(np.mean(precisions)), float(np.mean(recalls))
    return {
        "multiclass_accuracy": float(np.mean(pred == yi)),
        "multiclass_top_k_accuracy": float(np.mean(rank <= top_k)),
        "dcg": float(np.mean(1.0 / np.log2(1.0 + rank))),
        "macro_precision": mp,
        "macro_recall": mr,
        "macro_f_beta": float(_f_beta(np.float64(mp), np.float64(mr), beta)),
        "objective_loss": float(objective),
    }


def calibrate(y: np.ndarray, P: np.ndarray, criterion: str, beta: float, target_precision: float,
              target_recall: float) -> tuple[np.ndarray, np.ndarray]:
    """Best threshold per model for a selection criterion, and the criterion's value there.

    ``P`` is (models, n) probabilities. Thresholds are midpoints between consecutive distinct
    scores, so ties are never split. Returns (thresholds, values) with larger values better.
    """
    m, n = P.shape
    order = np.argsort(-P, axis=1, kind="stable")
    ps = np.take_along_axis(P, order, axis=1)
    ys = (y[order] == 1).astype(np.float64)
    tp = np.cumsum(ys, axis=1)
    fp = np.cumsum(1.0 - ys, axis=1)
    n_pos = ys[0].sum()
    n_neg = n - n_pos
    # cut i: the top i+1 scores are positive; also the "nothing positive" cut at the front
    tp = np.concatenate([np.zeros((m, 1)), tp], axis=1)
    fp = np.concatenate([np.zeros((m, 1)), fp], axis=1)
    upper = np.concatenate([np.nextafter(ps[:, :1], np.inf), ps], axis=1)  # lowest score predicted positive
    lower = np.concatenate([ps, np.zeros((m, 1))], axis=1)  # highest score predicted negative
    valid = np.ones_like(tp, dtype=bool)
    valid[:, 1:-1] = ps[:, :-1] > ps[:, 1:]  # never cut inside a group of tied scores
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        recall = tp / n_pos if n_pos else np.zeros_like(tp)
    if criterion == "accuracy":
        value = (tp + (n_neg - fp)) / n
    elif criterion == "f_beta":
        value = _f_beta(precision, recall, beta)
    elif criterion == "precision_at_target_recall":
        value = np.where(recall >= target_recall, precision, -1.0 + recall)
    elif criterion == "recall_at_target_precision":
        value = np.where(precision >= target_precision, recall, -1.0 + precision)
    else:
        raise ValueError(f"no threshold calibration for {criterion!r}")
    value = np.where(valid, value, -np.inf)
    best = np.argmax(value, axis=1)
    rows = np.arange(m)
    up, lo = upper[rows, best], lower[rows, best]
    thresholds = np.where((best == 0) | (best == n), up, 0.5 * (up + lo))
    return thresholds, value[rows, best]
