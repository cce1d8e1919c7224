"""The Trigger form: every per-run setting as a Param with a section, title, description, type and bounds.

Imported while the DAG file is parsed, so it only builds ``Param`` objects (no I/O).

What Airflow 3.3's Trigger form does with these schemas (read from its UI and API source):

* in the browser, as you type: ``enum`` becomes a drop-down (nothing else can be chosen),
  ``minimum``/``maximum`` clamp a number field when it loses focus, ``maxLength`` stops typing,
  and a field whose ``type`` does not allow ``null`` is *required* (empty: "This field is
  required", Trigger disabled). ``pattern``, ``minLength``, ``exclusiveMinimum`` are not checked
  there;
* on Trigger, the API server validates every Param against its whole JSON schema and refuses
  the run (400, no run created) with ``Invalid input for param <name>: <rule broken>`` followed by
  the field's schema, which the form shows above the fields. The schema carries ``title`` and
  ``description_md``, so the refusal names the field and states its rule in words;
* ``section`` groups fields into collapsible sections in the order of their first field; only
  the section named ``Run Parameters`` (the form's default) starts open, one open at a time;
* ``description_md`` (markdown) is the help line under a field (used here instead of
  ``description``, which the form shows too but which is not part of the schema, hence not of the
  API's refusal).

Rules between fields (num_classes for multiclass, the gate metric for the predictor type, the
admins' limits) cannot be stated in one Param's schema: ``pipeline._check_params`` and
``limits.check_params`` refuse them at the start of the run, and each field's description says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from sagemaker_retrain import algorithms
from sagemaker_retrain.gate_metrics import GATE_METRICS
from sagemaker_retrain.limits import DEFAULT_INSTANCE_TYPES, MAX_URI_LENGTH

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,40}$"
INSTANCE_TYPE_PATTERN = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
PREDICTOR_TYPES = ["regressor", "binary_classifier", "multiclass_classifier"]
# The form's sections, in the order they appear. Airflow 3.3 opens only its default section,
# "Run Parameters", so the essentials (data, gate and promotion) are there; the rest start collapsed.
ESSENTIALS = "Run Parameters"
PROMOTION = "Promotion: traffic shifting and rollback"
# One training section per algorithm (its hyperparameters), the default algorithm's first.
TRAINING_SECTIONS = tuple(a.section for a in algorithms.ALGORITHMS.values())
TRAINING = algorithms.get(algorithms.DEFAULT).section
INFRASTRUCTURE = "Infrastructure: instances and time limits"
EVALUATION = "Evaluation: data split and checks"
SECTIONS = (ESSENTIALS, PROMOTION, *TRAINING_SECTIONS, INFRASTRUCTURE, EVALUATION)
COLLAPSED_SECTIONS = SECTIONS[1:]

ALLOWED_TYPES = ", ".join(DEFAULT_INSTANCE_TYPES)
INSTANCE_RULE = ("Allowed by the admins: Variable `sagemaker_retrain_allowed_instance_types` (default: the "
                 "types listed); limits in Variable `sagemaker_retrain_limits` are checked when the run starts.")


# Every Param's schema names its dialect: Airflow validates each Param of a scheduled DAG while the file is
# parsed (and again on Trigger), and jsonschema checks the schema itself against its dialect's meta-schema
# each time; Draft 7's costs a third of 2020-12's (the default's), which is most of a DAG's parse time with
# this many Params (bench/bench_parse.py). The keywords used here mean the same in both dialects.
DIALECT = "http://json-schema.org/draft-07/schema#"


def _param(default, section: str, title: str, description: str, **schema) -> Param:
    return Param(default, schema={"$schema": DIALECT, "section": section, "title": title,
                                  "description_md": description, **schema})


def _optional_number(default, section, title, description, minimum=None, maximum=None, exclusive_minimum=None):
    schema: dict = {"type": ["null", "number"]}
    if minimum is not None:
        schema["minimum"] = minimum
    if exclusive_minimum is not None:
        schema["exclusiveMinimum"] = exclusive_minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return _param(default, section, title, description, **schema)


def build_params(default_endpoint_name: str = "linear-learner-housing",
                 defaults: Mapping[str, Any] | None = None, algorithm: str | None = None) -> dict[str, Param]:
    """Return the DAG's params, grouped by section; the defaults train on the bundled housing table.

    ``defaults``: a model's own defaults (Param name -> value, from its catalog entry): each replaces
    that Param's default and keeps its schema, so a person may still change it within the same rules.
    ``algorithm``: a model's algorithm; its DAG's form then has that algorithm's *Training* section only.
    Airflow copies every DAG Param into each operator at each level of its class hierarchy while the
    file is parsed (about 60 copies of the DAG's Params per DAG here), so Params no run of the model uses
    are most of a model's parse time. A run may still choose another algorithm and give its
    hyperparameters in the conf; the ones left out take that algorithm's defaults
    (``algorithms.run_params``) and its strategy checks them all before anything is spent.
    None: every algorithm's section (the catalog's schema, the docs).
    """
    params = {
        # --- Run Parameters (open): data, gate and promotion ------------------------------------
        "dataset_uri": _param(
            "include/data/housing.csv", ESSENTIALS, "Data set",
            "CSV with a header row: `s3://bucket/key` under a prefix the admins allow "
            "(Variable `sagemaker_retrain_allowed_data_prefixes`), or a file under `include/data/`. "
            f"1–{MAX_URI_LENGTH} characters. Default: the bundled Boston housing table.",
            type="string", minLength=1, maxLength=MAX_URI_LENGTH,
            pattern=r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+|[^:]+)$",
        ),
        "target_column": _param(
            "medv", ESSENTIALS, "Target column",
            "The column to predict (1–128 characters, a header of the data set); every other column is a "
            "feature. Default `medv` (median house value) for the housing table.",
            type="string", minLength=1, maxLength=128,
        ),
        "algorithm": _param(
            algorithms.DEFAULT, ESSENTIALS, "Algorithm",
            "What trains the model: " + ", ".join(f"`{a.name}`" for a in algorithms.ALGORITHMS.values())
            + ". The form shows the model's own algorithm's *Training* section; for another, give its "
            "hyperparameters in the configuration JSON (the others take its defaults). The gate compares the "
            "new model with the serving one whatever algorithm made either.",
            type="string", enum=list(algorithms.ALGORITHMS),
        ),
        "predictor_type": _param(
            "regressor", ESSENTIALS, "Predictor type",
            "`regressor` (numeric target), `binary_classifier` (0/1 target) or `multiclass_classifier` "
            "(labels 0…num_classes−1; needs *Number of classes*).",
            type="string", enum=PREDICTOR_TYPES,
        ),
        "num_classes": _param(
            None, ESSENTIALS, "Number of classes",
            "multiclass_classifier only, and then required: 3–1,000,000 labels. Leave empty for the other "
            "predictor types (a multiclass run without it is refused when it starts).",
            type=["null", "integer"], minimum=3, maximum=1_000_000,
        ),
        "gate_metric": _param(
            "test:mse", ESSENTIALS, "Gate metric",
            "Must suit the predictor type — regressor: `test:mse`, `test:absolute_loss`; "
            "binary: `test:binary_classification_accuracy`, `test:binary_f_beta`, `test:roc_auc_score`; "
            "multiclass: `test:multiclass_accuracy`, `test:macro_f_beta`. Scored for new and serving model "
            "on the same test rows.",
            type="string", enum=list(GATE_METRICS),
        ),
        "gate_threshold": _param(
            100.0, ESSENTIALS, "Gate threshold",
            "The new model must reach it: at most this for losses (mse, absolute_loss), at least this "
            "for scores (accuracy, f_beta, roc_auc, 0–1), and beat the serving model. Admins may set a floor "
            "(Variable `sagemaker_retrain_gate_floors`). Default 100.0 (mse, in the target's units squared: "
            "an rmse of 10).",
            type="number",
        ),
        "mode": _param(
            "persistent", ESSENTIALS, "Mode",
            "`persistent`: the endpoint keeps serving the promoted model (retraining). `ephemeral`: deploy "
            "to a run-own endpoint, check it, record it, then delete everything.",
            type="string", enum=["persistent", "ephemeral"],
        ),
        "endpoint_name": _param(
            default_endpoint_name, ESSENTIALS, "Endpoint name",
            "Letters, digits and hyphens (no spaces), starting and ending with a letter or digit, at most 41 "
            "letters or digits: the SageMaker endpoint that serves the model. Ephemeral runs add a run suffix.",
            type="string", pattern=NAME_PATTERN, minLength=1, maxLength=63,
        ),
        # --- Promotion: how a persistent endpoint is switched to the new model -----------------
        "deployment_strategy": _param(
            "canary", PROMOTION, "Traffic shifting",
            "Blue/green update of a serving endpoint: `canary` (a share first, then the rest), `linear` "
            "(equal steps) or `all_at_once`; each step bakes while the rollback alarms are watched. "
            "Persistent mode only.",
            type="string", enum=["canary", "linear", "all_at_once"],
        ),
        "canary_percent": _param(
            10, PROMOTION, "Canary share (%)",
            "Percent of capacity the new model takes first, 1–50. `canary` only.",
            type="integer", minimum=1, maximum=50,
        ),
        "linear_step_percent": _param(
            25, PROMOTION, "Linear step (%)",
            "Percent of capacity shifted per step, 5–50. `linear` only.",
            type="integer", minimum=5, maximum=50,
        ),
        "bake_seconds": _param(
            300, PROMOTION, "Bake time (s)",
            "Seconds each traffic step is watched before the next one, 0–3600.",
            type="integer", minimum=0, maximum=3600,
        ),
        "termination_wait_seconds": _param(
            120, PROMOTION, "Old fleet kept (s)",
            "Seconds the old fleet stays after the shift, for a fast rollback, 0–3600.",
            type="integer", minimum=0, maximum=3600,
        ),
        "latency_alarm_ms": _param(
            500, PROMOTION, "Latency alarm (ms)",
            "Average model latency in milliseconds that rolls a deployment back, 1–60000. Persistent mode only.",
            type="integer", minimum=1, maximum=60000,
        ),
        "deployment_timeout_seconds": _param(
            3600, PROMOTION, "Deployment time limit (s)",
            "Seconds, 600–28800: SageMaker rolls back a deployment that takes longer; also how long the "
            "pipeline waits for it.",
            type="integer", minimum=600, maximum=28800,
        ),
        # --- Infrastructure --------------------------------------------------------------------
        "training_instance_type": _param(
            "ml.m5.large", INFRASTRUCTURE, "Training instance type", f"One of {ALLOWED_TYPES}. {INSTANCE_RULE}",
            type="string", pattern=INSTANCE_TYPE_PATTERN, enum=list(DEFAULT_INSTANCE_TYPES),
        ),
        "training_instance_count": _param(
            1, INFRASTRUCTURE, "Training instances",
            "1–20 (admin limit `max_training_instance_count`, default 2); more than one shards the data by "
            "S3 key.",
            type="integer", minimum=1, maximum=20,
        ),
        "max_runtime_seconds": _param(
            3600, INFRASTRUCTURE, "Training time limit (s)",
            "Seconds, 60–432000; SageMaker stops the job after it (admin limit `max_runtime_seconds`, "
            "default 14400).",
            type="integer", minimum=60, maximum=432000,
        ),
        "endpoint_instance_type": _param(
            "ml.m5.large", INFRASTRUCTURE, "Endpoint instance type", f"One of {ALLOWED_TYPES}. {INSTANCE_RULE}",
            type="string", pattern=INSTANCE_TYPE_PATTERN, enum=list(DEFAULT_INSTANCE_TYPES),
        ),
        "endpoint_instance_count": _param(
            1, INFRASTRUCTURE, "Endpoint instances",
            "Instances of the production variant, 1–10 (admin limit `max_endpoint_instance_count`, default 2).",
            type="integer", minimum=1, maximum=10,
        ),
        "transform_instance_type": _param(
            "ml.m5.large", INFRASTRUCTURE, "Scoring instance type",
            "Batch transform instance that scores both models on the test rows; production is never asked. "
            f"One of {ALLOWED_TYPES}. {INSTANCE_RULE}",
            type="string", pattern=INSTANCE_TYPE_PATTERN, enum=list(DEFAULT_INSTANCE_TYPES),
        ),
        # --- Evaluation ------------------------------------------------------------------------
        "test_fraction": _param(
            0.1, EVALUATION, "Test share",
            "Share of rows held out to score both models for the gate, 0.01–0.5; with the validation "
            "share it must leave at least 10% for training.",
            type="number", minimum=0.01, maximum=0.5,
        ),
        "validation_fraction": _param(
            0.1, EVALUATION, "Validation share",
            "Share of rows for the validation channel (early stopping), 0.01–0.5.",
            type="number", minimum=0.01, maximum=0.5,
        ),
        "split_seed": _param(
            42, EVALUATION, "Split seed",
            "Seed of the deterministic train/validation/test split, 0–2147483647.",
            type="integer", minimum=0, maximum=2**31 - 1,
        ),
        "smoke_rows": _param(
            5, EVALUATION, "Smoke-test rows",
            "Held-out rows sent to the endpoint once it serves the new model, 1–100.",
            type="integer", minimum=1, maximum=100,
        ),
        "on_unchanged_data": _param(
            "auto", EVALUATION, "Unchanged data",
            "When the data has the same sha256 as the data the serving model was trained on: `skip` ends the "
            "run successfully without training, `retrain` trains anyway, `auto` skips runs started by new data "
            "or the schedule and retrains runs a person triggered.",
            type="string", enum=["auto", "skip", "retrain"],
        ),
        # Model registry approval (resolved at run time: a Param default cannot read a Variable at parse time).
        "require_approval": _param(
            "policy", ESSENTIALS, "Require approval",
            "`yes`: a person approves the promotion in the run's Required actions before deploy; `no` or "
            "`policy`: as the admins' Variable `sagemaker_retrain_require_approval` says. The Variable wins: "
            "when it requires approval, `no` cannot skip it. The approvers are Variable "
            "`sagemaker_retrain_approvers`; the person who triggered the run cannot approve it.",
            type="string", enum=["policy", "yes", "no"],
        ),
        "approval_timeout_hours": _param(
            24, PROMOTION, "Approval timeout (h)",
            "Hours to wait for a person's answer, 1–168; no answer counts as a rejection.",
            type="integer", minimum=1, maximum=168,
        ),
    }
    shown = algorithms.ALGORITHMS.values() if algorithm is None else [algorithms.get(algorithm)]
    for strategy in shown:  # each algorithm's own section
        for name, default, title, description, schema in strategy.form_params():
            params[name] = _param(default, strategy.section, title, description, **schema)
    for name, value in (defaults or {}).items():  # the model catalog entry's values
        if name not in params:
            raise ValueError(f"no Param {name!r} to set a default for (known: {', '.join(sorted(params))})")
        params[name] = Param(value, schema=params[name].schema)
    # The form lists a section's fields together, in SECTIONS order (a stable sort keeps each one's order).
    return dict(sorted(params.items(), key=lambda item: SECTIONS.index(item[1].schema["section"])))
