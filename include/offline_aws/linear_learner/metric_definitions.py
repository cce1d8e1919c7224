"""Linear Learner's ``MetricDefinitions``: the regexes SageMaker runs over the training log.

SageMaker fills ``FinalMetricDataList`` by matching the algorithm's metric definitions against
the container's log and keeping each metric's last value; a metric whose regex never matches is
not reported. The emulator does the same over the lines its Linear Learner writes, so the names
come out exactly as AWS's (and a user's own ``MetricDefinitions`` work on the same lines).

Names: AWS's documented Linear Learner metrics ("Tune a linear learner model", the metrics
table: test/validation ``absolute_loss``, ``mse``, ``objective_loss`` for regression,
``binary_classification_accuracy``, ``binary_f_beta``, ``precision``, ``recall``,
``roc_auc_score`` for binary classification, ``dcg``, ``macro_f_beta``, ``macro_precision``,
``macro_recall``, ``multiclass_accuracy``, ``multiclass_top_k_accuracy`` for multiclass), plus
what a real regressor job reported besides (``train:progress``, ``train:throughput``,
``train:objective_loss``, ``validation:objective_loss:final``, ``validation:rmse``,
``validation:r2``, ``validation:mae``). The regressor regexes match the lines of the reference
AWS log (``#quality_metric: host=algo-1, validation rmse <loss>=...``); AWS does not publish the
regex text itself, so these are ours, written to match those lines.
"""

from __future__ import annotations

import re

_Q = r"#quality_metric: host=\S+, "


def _final(channel: str, log_name: str, kind: str = "loss") -> str:
    return _Q + rf"{channel} {log_name} <{kind}>=(\S+)"


METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:progress", "Regex": r"#progress_metric: host=\S+, completed (\S+) %"},
    {"Name": "validation:mae", "Regex": _final("validation", "mae")},
    {"Name": "train:objective_loss", "Regex": _Q + r"epoch=\S+, train \S+_objective <loss>=(\S+)"},
    {"Name": "test:objective_loss", "Regex": _final("test", r"\S+_objective")},
    {"Name": "test:mse", "Regex": _final("test", "mse")},
    {"Name": "validation:objective_loss", "Regex": _Q + r"epoch=\S+, validation \S+_objective <loss>=(\S+)"},
    {"Name": "validation:objective_loss:final", "Regex": _final("validation", r"\S+_objective")},
    {"Name": "validation:rmse", "Regex": _final("validation", "rmse")},
    {"Name": "test:absolute_loss", "Regex": _final("test", "absolute_loss")},
    {"Name": "validation:mse", "Regex": _final("validation", "mse")},
    {"Name": "train:mse", "Regex": _final("train", "mse")},
    {"Name": "train:absolute_loss", "Regex": _final("train", "absolute_loss")},
    {"Name": "train:objective_loss:final", "Regex": _final("train", r"\S+_objective")},
    {"Name": "validation:r2", "Regex": _final("validation", "r2")},
    {"Name": "train:throughput", "Regex": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second"},
    {"Name": "validation:absolute_loss", "Regex": _final("validation", "absolute_loss")},
]
for _channel in ("validation", "test"):
    METRIC_DEFINITIONS += [
        {"Name": f"{_channel}:binary_classification_accuracy",
         "Regex": _final(_channel, "binary_classification_accuracy", "score")},
        {"Name": f"{_channel}:binary_f_beta", "Regex": _final(_channel, r"binary_f_\S+", "score")},
        {"Name": f"{_channel}:precision", "Regex": _final(_channel, "precision", "score")},
        {"Name": f"{_channel}:recall", "Regex": _final(_channel, "recall", "score")},
        {"Name": f"{_channel}:roc_auc_score", "Regex": _final(_channel, "roc_auc_score", "score")},
        {"Name": f"{_channel}:multiclass_accuracy", "Regex": _final(_channel, "multiclass_accuracy", "score")},
        {"Name": f"{_channel}:multiclass_top_k_accuracy",
         "Regex": _final(_channel, r"multiclass_top_k_accuracy_\S+", "score")},
        {"Name": f"{_channel}:dcg", "Regex": _final(_channel, "dcg", "score")},
        {"Name": f"{_channel}:macro_precision", "Regex": _final(_channel, "macro_precision", "score")},
        {"Name": f"{_channel}:macro_recall", "Regex": _final(_channel, "macro_recall", "score")},
        {"Name": f"{_channel}:macro_f_beta", "Regex": _final(_channel, r"macro_f_\S+", "score")},
    ]

_COMPILED = [(d["Name"], re.compile(d["Regex"])) for d in METRIC_DEFINITIONS]


def final_metrics(lines, definitions: list[dict[str, str]] | None = None) -> dict[str, float]:
    """Each defined metric's last value in the log lines, in definition order (unmatched ones left out)."""
    compiled = _COMPILED if definitions is None else [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    found: dict[str, float] = {}
    for line in lines:
        if "#" not in line:
            continue
        for name, regex in compiled:
            match = regex.search(line)
            if match:
                try:
                    found[name] = float(match.group(1))
                except (ValueError, IndexError):
                    continue
    order = {name: i for i, (name, _) in enumerate(compiled)}
    return dict(sorted(found.items(), key=lambda item: order[item[0]]))
