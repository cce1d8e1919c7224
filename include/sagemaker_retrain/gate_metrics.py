"""The metrics the gate may compare, which way is better, and which suit which predictor type.

Its own module because the Params (the form's enum), the admins' limits (the threshold floors) and
the gate all need it, and none of them should import another for it.
"""

from __future__ import annotations

# Metrics the gate can compare, and whether lower is better. The gate computes them itself from both
# models' answers on the same test rows (``scoring``), whatever algorithm made either model, so these
# are the gate's own names; they are spelled as SageMaker's built-in algorithms name their test-channel
# metrics (the first algorithm's documented table), and test:rmse and test:r2 are not among them.
GATE_METRICS: dict[str, bool] = {
    "test:mse": True,
    "test:absolute_loss": True,
    "test:binary_classification_accuracy": False,
    "test:binary_f_beta": False,
    "test:roc_auc_score": False,
    "test:multiclass_accuracy": False,
    "test:macro_f_beta": False,
}


# Which gate metrics suit which predictor type (the others do not exist for it).
METRICS_FOR_PREDICTOR: dict[str, tuple[str, ...]] = {
    "regressor": ("test:mse", "test:absolute_loss"),
    "binary_classifier": ("test:binary_classification_accuracy", "test:binary_f_beta", "test:roc_auc_score"),
    "multiclass_classifier": ("test:multiclass_accuracy", "test:macro_f_beta"),
}
