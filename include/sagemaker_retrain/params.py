"""The Trigger form: every per-run setting as a Param with a title, description, type and bounds.

Imported while the DAG file is parsed, so it only builds ``Param`` objects (no I/O). A wrong
value is refused by the form (and by ``airflow dags trigger``) before any task runs.
"""

from __future__ import annotations

from airflow.sdk import Param

from sagemaker_retrain.limits import DEFAULT_INSTANCE_TYPES, MAX_URI_LENGTH

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,40}$"
INSTANCE_TYPE_PATTERN = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
PREDICTOR_TYPES = ["regressor", "binary_classifier", "multiclass_classifier"]
# Metrics the gate can compare (Linear Learner's own test-metric names), and whether lower is better.
GATE_METRICS: dict[str, bool] = {
    "test:rmse": True,
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
    "regressor": ("test:rmse", "test:mse", "test:absolute_loss"),
    "binary_classifier": ("test:binary_classification_accuracy", "test:binary_f_beta", "test:roc_auc_score"),
    "multiclass_classifier": ("test:multiclass_accuracy", "test:macro_f_beta"),
}


def _optional_number(default, title, description, minimum=None, maximum=None, exclusive_minimum=None):
    schema: dict = {"type": ["null", "number"], "title": title, "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if exclusive_minimum is not None:
        schema["exclusiveMinimum"] = exclusive_minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return Param(default, **schema)


def build_params(default_endpoint_name: str = "linear-learner-housing") -> dict[str, Param]:
    """Return the DAG's params; defaults train the walkthrough's model on the bundled housing table."""
    return {
        "dataset_uri": Param(
            "include/data/housing.csv",
            type="string",
            minLength=1,
            maxLength=MAX_URI_LENGTH,
            pattern=r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+|[^:]+)$",
            title="Data set",
            description="CSV with a header row: an s3:// URI under a prefix the admins allow, or a file under "
            "include/data/ (relative to the project).",
        ),
        "target_column": Param(
            "medv", type="string", minLength=1, maxLength=128, title="Target column",
            description="The column to predict; every other column is a feature.",
        ),
        "predictor_type": Param(
            "regressor", type="string", enum=PREDICTOR_TYPES, title="Predictor type",
            description="Linear Learner's predictor_type.",
        ),
        "num_classes": Param(
            None, type=["null", "integer"], minimum=3, maximum=1_000_000, title="Number of classes",
            description="Required for multiclass_classifier; leave empty otherwise.",
        ),
        "mini_batch_size": Param(
            30, type="integer", minimum=1, maximum=1_000_000, title="Mini-batch size",
            description="Observations per mini-batch (the walkthrough uses 30).",
        ),
        "epochs": Param(15, type="integer", minimum=1, maximum=1000, title="Epochs",
                        description="Maximum passes over the training data."),
        "learning_rate": _optional_number(None, "Learning rate", "Empty for 'auto'.", exclusive_minimum=0, maximum=1),
        "wd": _optional_number(None, "L2 weight decay (wd)", "Empty for 'auto'.", minimum=0, maximum=1000),
        "l1": _optional_number(None, "L1 regularisation", "Empty for 'auto'.", minimum=0, maximum=1000),
        "num_models": Param(None, type=["null", "integer"], minimum=1, maximum=64, title="Parallel models",
                            description="Models trained in parallel (best one kept); empty for 'auto'."),
        "normalize_data": Param(True, type="boolean", title="Normalise features",
                                description="Standardise features before training."),
        "use_bias": Param(True, type="boolean", title="Use bias", description="Fit an intercept."),
        "early_stopping_patience": Param(3, type="integer", minimum=1, maximum=100,
                                         title="Early-stopping patience",
                                         description="Epochs without improvement before stopping."),
        "validation_fraction": Param(0.1, type="number", minimum=0.01, maximum=0.5, title="Validation share",
                                     description="Share of rows held out for the validation channel."),
        "test_fraction": Param(0.1, type="number", minimum=0.01, maximum=0.5, title="Test share",
                               description="Share of rows held out for test metrics and evaluation."),
        "split_seed": Param(42, type="integer", minimum=0, maximum=2**31 - 1, title="Split seed",
                            description="Seed of the deterministic train/validation/test split."),
        "training_content_type": Param(
            "text/csv", type="string", enum=["text/csv", "application/x-recordio-protobuf"],
            title="Training data format",
            description="RecordIO-protobuf is Linear Learner's fastest input for large data sets.",
        ),
        "training_instance_type": Param("ml.m5.large", type="string", pattern=INSTANCE_TYPE_PATTERN,
                                        enum=list(DEFAULT_INSTANCE_TYPES),
                                        title="Training instance type",
                                        description="One the admins allow (Variable sagemaker_retrain_allowed_instance_types)."),
        "training_instance_count": Param(1, type="integer", minimum=1, maximum=20,
                                         title="Training instances",
                                         description="More than one shards the training data by S3 key."),
        "max_runtime_seconds": Param(3600, type="integer", minimum=60, maximum=432000,
                                     title="Training time limit (s)",
                                     description="SageMaker stops the job after this many seconds."),
        "endpoint_instance_type": Param("ml.m5.large", type="string", pattern=INSTANCE_TYPE_PATTERN,
                                        enum=list(DEFAULT_INSTANCE_TYPES),
                                        title="Endpoint instance type",
                                        description="One the admins allow (Variable sagemaker_retrain_allowed_instance_types)."),
        "endpoint_instance_count": Param(1, type="integer", minimum=1, maximum=10, title="Endpoint instances",
                                         description="Initial instance count of the production variant."),
        "gate_metric": Param("test:rmse", type="string", enum=list(GATE_METRICS), title="Gate metric",
                             description="Computed on this run's test rows for the new model and the serving one "
                             "alike; regressor: rmse/mse/absolute_loss, binary: accuracy/f_beta/roc_auc, "
                             "multiclass: accuracy/macro_f_beta."),
        "gate_threshold": Param(10.0, type="number", title="Gate threshold",
                                description="The new model must be at least this good (<= for losses, >= for scores)."),
        "mode": Param("persistent", type="string", enum=["persistent", "ephemeral"], title="Mode",
                      description="persistent: keep the endpoint serving (retraining). "
                      "ephemeral: deploy, evaluate, then delete everything (the walkthrough's clean-up)."),
        "endpoint_name": Param(default_endpoint_name, type="string", pattern=NAME_PATTERN, title="Endpoint name",
                               description="Serving endpoint (ephemeral runs add a run suffix)."),
        "smoke_rows": Param(5, type="integer", minimum=1, maximum=100, title="Smoke-test rows",
                            description="Held-out rows sent to the endpoint once it serves the new model."),
        "transform_instance_type": Param("ml.m5.large", type="string", pattern=INSTANCE_TYPE_PATTERN,
                                         title="Scoring instance type",
                                         description="Batch transform instance that scores champion and "
                                         "challenger on the test rows (production is never asked)."),
        "deployment_strategy": Param(
            "canary", type="string", enum=["canary", "linear", "all_at_once"], title="Traffic shifting",
            description="Blue/green update of a serving endpoint: canary (a share first, then the rest), "
            "linear (equal steps) or all at once; every step bakes while the rollback alarms are watched.",
        ),
        "canary_percent": Param(10, type="integer", minimum=1, maximum=50, title="Canary share (%)",
                                description="Share of capacity the new model takes first (canary only)."),
        "linear_step_percent": Param(25, type="integer", minimum=5, maximum=50, title="Linear step (%)",
                                     description="Capacity shifted per step (linear only)."),
        "bake_seconds": Param(300, type="integer", minimum=0, maximum=3600, title="Bake time (s)",
                              description="Seconds each traffic step is watched before the next one."),
        "termination_wait_seconds": Param(120, type="integer", minimum=0, maximum=3600,
                                          title="Old fleet kept (s)",
                                          description="Seconds the old fleet stays after the shift, for a fast "
                                          "rollback."),
        "deployment_timeout_seconds": Param(3600, type="integer", minimum=600, maximum=28800,
                                            title="Deployment time limit (s)",
                                            description="SageMaker rolls back a deployment that takes longer; "
                                            "also the total time the pipeline waits for it."),
        "latency_alarm_ms": Param(500, type="integer", minimum=1, maximum=60000, title="Latency alarm (ms)",
                                  description="Average model latency that rolls a deployment back."),
        # Model registry approval (resolved at run time: a Param default cannot read a Variable at parse time).
        "require_approval": Param(
            "policy", type="string", enum=["policy", "yes", "no"], title="Require approval",
            description="yes: a person approves the promotion in Required actions before deploy; no: promote "
            "when the gate says so; policy: Variable sagemaker_retrain_require_approval (true/false) decides.",
        ),
        "approval_timeout_hours": Param(24, type="integer", minimum=1, maximum=168, title="Approval timeout (h)",
                                        description="No answer within this many hours counts as a rejection."),
    }
