"""Admin limits on what a run may spend or read, checked at the very start of a run (in prepare).

The Trigger form's Params state what a value may look like; the admins state, in Variables read
at run time, what a run is *allowed* to do:

* ``sagemaker_retrain_allowed_instance_types``: JSON list of instance types for training and the
  endpoint (default: :data:`DEFAULT_INSTANCE_TYPES`, small CPU types). A type outside this list
  is refused even when the form's enum offered it.
* ``sagemaker_retrain_limits``: JSON object; any of :data:`DEFAULT_LIMITS`' keys (the defaults
  apply to keys not given).
* ``sagemaker_retrain_gate_floors``: JSON object ``{metric: floor}`` (``"test:mse"`` or ``"mse"``);
  the gate_threshold Param may only be stricter than the floor (lower for a loss such as mse,
  higher for a score such as accuracy or roc_auc). Default: :data:`DEFAULT_GATE_FLOORS` (a metric the
  Variable names takes the Variable's floor), so no run passes the gate with ``gate_threshold=1e308``.
* ``sagemaker_retrain_allowed_data_prefixes``: JSON list of ``s3://bucket/prefix/`` prefixes the
  dataset_uri may be under (default: ``s3://<bucket>/<prefix>/`` of the pipeline's own settings).
  An entry that is an absolute local directory also allows files under it; files under the
  project's ``include/data/`` are always allowed.

:func:`check_params` raises ValueError naming the Param and the limit; nothing in a message
comes from the contents of a file.

The same limits are checked again on the very request a task sends to AWS, right before it sends
it (:func:`check_training_config` in ``train``, :func:`check_deploy_config` in ``deploy``,
:func:`check_transform_config` for the scoring jobs): the configs reach those tasks through XComs
and templates, which a User role can edit between ``prepare`` and the call, so a check of the
Params alone would trust them. These raise :class:`LimitExceeded` (a ValueError) naming the
request's field and the limit; a field the limits cannot judge (heterogeneous training instance
groups, a serverless or shadow variant) is refused rather than let through.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from sagemaker_retrain.gate_metrics import GATE_METRICS

ALLOWED_INSTANCE_TYPES_VARIABLE = "sagemaker_retrain_allowed_instance_types"
LIMITS_VARIABLE = "sagemaker_retrain_limits"
GATE_FLOORS_VARIABLE = "sagemaker_retrain_gate_floors"
ALLOWED_DATA_PREFIXES_VARIABLE = "sagemaker_retrain_allowed_data_prefixes"

# Small CPU types that both SageMaker training and hosting offer (Linear Learner runs on CPU).
DEFAULT_INSTANCE_TYPES: tuple[str, ...] = (
    "ml.m5.large",
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
)
DEFAULT_LIMITS: dict[str, int] = {
    "max_training_instance_count": 2,
    "max_runtime_seconds": 4 * 3600,
    "max_endpoint_instance_count": 2,
    "max_transform_instance_count": 2,
    "max_dataset_bytes": 5 * 1024**3,
}
# The floor a run's gate_threshold may not loosen when the admins set none for its metric: a score
# (0-1) must beat a coin's 0.5 (lower it by Variable for a many-class problem); a loss, in the target's
# units, is bounded by ten times the form's default (mse 100) and, for absolute loss, its square root.
DEFAULT_GATE_FLOORS: dict[str, float] = {
    "test:mse": 1000.0,
    "test:absolute_loss": 100.0,
    "test:binary_classification_accuracy": 0.5,
    "test:binary_f_beta": 0.5,
    "test:roc_auc_score": 0.5,
    "test:multiclass_accuracy": 0.5,
    "test:macro_f_beta": 0.5,
}
# limit key -> the Param it caps
CAPPED_PARAMS: dict[str, str] = {
    "max_training_instance_count": "training_instance_count",
    "max_runtime_seconds": "max_runtime_seconds",
    "max_endpoint_instance_count": "endpoint_instance_count",
}
INSTANCE_TYPE_PARAMS = ("training_instance_type", "endpoint_instance_type", "transform_instance_type")
MAX_URI_LENGTH = 1024
LOCAL_DATA_DIR = Path("include") / "data"

Variables = Callable[[str], str | None]


def airflow_variables(name: str) -> str | None:
    """A Variable's raw value at run time (UI, CLI, secrets backend or AIRFLOW_VAR_<NAME>)."""
    from airflow.sdk import Variable

    return Variable.get(name, default=None)


def _json_variable(variables: Variables, name: str, kind: type):
    raw = variables(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as err:
        raise ValueError(f"Variable {name} is not valid JSON ({err.msg}); ask an admin to fix it") from None
    if not isinstance(value, kind):
        raise ValueError(f"Variable {name} must be a JSON {'list' if kind is list else 'object'}")
    return value


def allowed_instance_types(variables: Variables) -> list[str]:
    value = _json_variable(variables, ALLOWED_INSTANCE_TYPES_VARIABLE, list)
    if value is None:
        return list(DEFAULT_INSTANCE_TYPES)
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"Variable {ALLOWED_INSTANCE_TYPES_VARIABLE} must be a JSON list of strings")
    return value


def limits(variables: Variables) -> dict[str, int]:
    value = _json_variable(variables, LIMITS_VARIABLE, dict) or {}
    unknown = sorted(set(value) - set(DEFAULT_LIMITS))
    if unknown:
        raise ValueError(f"Variable {LIMITS_VARIABLE} has unknown key(s) {unknown}; known: {sorted(DEFAULT_LIMITS)}")
    merged = dict(DEFAULT_LIMITS)
    for key, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"Variable {LIMITS_VARIABLE}: {key} must be a positive integer, got {limit!r}")
        merged[key] = limit
    return merged


def gate_floors(variables: Variables) -> dict[str, float]:
    """Each gate metric's floor: the Variable's where it names the metric, else the default."""
    value = _json_variable(variables, GATE_FLOORS_VARIABLE, dict) or {}
    floors = dict(DEFAULT_GATE_FLOORS)
    for key, floor in value.items():
        metric = key if key in GATE_METRICS else f"test:{key}"
        if metric not in GATE_METRICS:
            raise ValueError(f"Variable {GATE_FLOORS_VARIABLE}: unknown metric {key!r}; known: {sorted(GATE_METRICS)}")
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not math.isfinite(floor):
            raise ValueError(f"Variable {GATE_FLOORS_VARIABLE}: {key} must be a number, got {floor!r}")
        floors[metric] = float(floor)
    return floors


def _names_metric(variables: Variables, metric: str) -> bool:
    value = _json_variable(variables, GATE_FLOORS_VARIABLE, dict) or {}
    return metric in value or metric.split(":", 1)[1] in value


def allowed_data_prefixes(variables: Variables) -> list[str]:
    value = _json_variable(variables, ALLOWED_DATA_PREFIXES_VARIABLE, list)
    if value is None:
        bucket = variables("sagemaker_retrain_bucket")
        prefix = (variables("sagemaker_retrain_prefix") or "sagemaker-retrain").strip("/")
        return [f"s3://{bucket}/{prefix}/"] if bucket else []
    if not all(isinstance(v, str) and (v.startswith("s3://") or v.startswith("/")) for v in value):
        raise ValueError(f"Variable {ALLOWED_DATA_PREFIXES_VARIABLE} must be a JSON list of s3://bucket/prefix/ "
                         "URIs or absolute local directories")
    return value


def _s3_prefix(prefix: str) -> str:
    bucket, _, key = prefix[5:].partition("/")
    key = key.strip("/")
    return f"s3://{bucket}/{key}/" if key else f"s3://{bucket}/"


def check_dataset_uri(uri: str, project_dir: Path, variables: Variables, max_bytes: int) -> None:
    """dataset_uri is under an allowed S3 prefix, or a file under include/data/ (or an allowed local dir)."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_LENGTH:
        raise ValueError(f"Param dataset_uri must be 1 to {MAX_URI_LENGTH} characters")
    if any(ord(c) < 32 for c in uri):
        raise ValueError("Param dataset_uri must not contain control characters")
    prefixes = allowed_data_prefixes(variables)
    s3_prefixes = [_s3_prefix(p) for p in prefixes if p.startswith("s3://")]
    if uri.startswith("s3://"):
        key = uri[5:].partition("/")[2]
        if not key or any(part in ("..", ".") for part in key.split("/")):
            raise ValueError(f"Param dataset_uri {uri!r} must name an object (no '.' or '..' segments)")
        if not any(uri.startswith(p) for p in s3_prefixes):
            raise ValueError(f"Param dataset_uri {uri!r} is not under an allowed prefix "
                             f"(Variable {ALLOWED_DATA_PREFIXES_VARIABLE}: {s3_prefixes})")
        return
    if "://" in uri:
        raise ValueError(f"Param dataset_uri {uri!r}: only s3:// URIs or files under {LOCAL_DATA_DIR}/ are allowed")
    if ".." in PurePosixPath(uri).parts or ".." in Path(uri).parts:
        raise ValueError(f"Param dataset_uri {uri!r} must not contain '..'")
    project_dir = Path(project_dir).resolve()
    roots = [project_dir / LOCAL_DATA_DIR] + [Path(p) for p in prefixes if p.startswith("/")]
    roots = [r.resolve() for r in roots]
    candidate = Path(uri) if Path(uri).is_absolute() else project_dir / uri
    resolved = candidate.resolve()  # follows symlinks: a link out of the allowed directories is refused
    if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
        allowed = [f"{LOCAL_DATA_DIR}/"] + [p for p in prefixes if p.startswith("/")] + s3_prefixes
        raise ValueError(f"Param dataset_uri {uri!r} is not a file under an allowed location {allowed} "
                         f"(Variable {ALLOWED_DATA_PREFIXES_VARIABLE} for more)")
    if resolved.is_file() and resolved.stat().st_size > max_bytes:
        raise ValueError(f"Param dataset_uri: the file has {resolved.stat().st_size} bytes, more than the limit "
                         f"max_dataset_bytes={max_bytes} (Variable {LIMITS_VARIABLE})")


def check_s3_dataset_size(s3_client, sources: list[dict], max_bytes: int) -> None:
    """The S3 objects a run will read, together, within ``max_dataset_bytes``: asked of S3 (HeadObject,
    at the version the run reads) before any byte is read or uploaded, so an oversized data set
    costs nothing. An object S3 cannot describe is left to the read, which reports it by name."""
    total, largest = 0, ("", -1)
    for source in sources:
        uri = source["uri"]
        if not uri.startswith("s3://"):
            continue
        bucket, _, key = uri[5:].partition("/")
        version = {"VersionId": source["version_id"]} if source.get("version_id") else {}
        try:
            size = int(s3_client.head_object(Bucket=bucket, Key=key, **version)["ContentLength"])
        except Exception:  # noqa: BLE001 - missing or unreadable: the read says which and why
            continue
        total += size
        largest = max(largest, (uri, size), key=lambda item: item[1])
        if total > max_bytes:
            what = (f"data set {uri} has {size} bytes" if len(sources) == 1 else
                    f"data set of {len(sources)} parts has {total} bytes or more (largest so far: "
                    f"{largest[0]}, {largest[1]} bytes)")
            raise ValueError(f"The {what}, more than the limit max_dataset_bytes={max_bytes} "
                             f"(Variable {LIMITS_VARIABLE}); nothing was read")


def check_params(params: Mapping, project_dir: Path, variables: Variables | None = None) -> None:
    """Refuse a run whose Params go beyond the admins' limits; ValueError names the Param and the limit."""
    variables = variables or airflow_variables
    types = allowed_instance_types(variables)
    for name in INSTANCE_TYPE_PARAMS:
        if params.get(name) not in types:
            raise ValueError(f"Param {name}={params.get(name)!r} is not an allowed instance type "
                             f"(Variable {ALLOWED_INSTANCE_TYPES_VARIABLE}: {types})")
    caps = limits(variables)
    for key, name in CAPPED_PARAMS.items():
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value > caps[key]:
            raise ValueError(f"Param {name}={value!r} is over the limit {key}={caps[key]} (Variable {LIMITS_VARIABLE})")

    metric = params.get("gate_metric")
    floor = gate_floors(variables).get(metric)
    if floor is not None:
        threshold = params.get("gate_threshold")
        lower_is_better = GATE_METRICS[metric]
        ok = isinstance(threshold, int | float) and (threshold <= floor if lower_is_better else threshold >= floor)
        if not ok:
            word = "at most" if lower_is_better else "at least"
            where = (f"Variable {GATE_FLOORS_VARIABLE}" if _names_metric(variables, metric) else
                     f"the default floor; an admin may set another in Variable {GATE_FLOORS_VARIABLE}")
            raise ValueError(f"Param gate_threshold={threshold!r} for {metric} must be {word} the floor {floor} "
                             f"({where}); a run may only tighten it")
    check_dataset_uri(params.get("dataset_uri"), project_dir, variables, caps["max_dataset_bytes"])


# --- the requests sent to AWS, checked again by the task that sends them ---------------------------
class LimitExceeded(ValueError):
    """A request to AWS goes beyond the admins' limits (or has a field they cannot judge)."""


def _check_type(request: str, field: str, value, types: list[str]) -> None:
    if value not in types:
        raise LimitExceeded(f"{request} refused: {field}={value!r} is not an allowed instance type "
                            f"(Variable {ALLOWED_INSTANCE_TYPES_VARIABLE}: {types})")


def _check_count(request: str, field: str, value, key: str, caps: Mapping[str, int]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= caps[key]:
        raise LimitExceeded(f"{request} refused: {field}={value!r} is over the limit {key}={caps[key]} "
                            f"(Variable {LIMITS_VARIABLE})")


def _section(config: Mapping, request: str, key: str) -> Mapping:
    value = config.get(key) if isinstance(config, Mapping) else None
    if not isinstance(value, Mapping):
        raise LimitExceeded(f"{request} refused: no {key} to check against the admins' limits")
    return value


def check_training_config(config: Mapping, variables: Variables | None = None) -> None:
    """A CreateTrainingJob request within the limits: instance type and count, MaxRuntimeInSeconds.

    A missing ``MaxRuntimeInSeconds`` is refused (AWS would default it to one day); so are
    ``InstanceGroups`` (heterogeneous clusters), which the limits do not describe, and a
    ``MaxWaitTimeInSeconds`` (managed spot) over the run-time limit.
    """
    variables = variables or airflow_variables
    request = "CreateTrainingJob"
    resources = _section(config, request, "ResourceConfig")
    if resources.get("InstanceGroups"):
        raise LimitExceeded(f"{request} refused: ResourceConfig.InstanceGroups (heterogeneous clusters) is not "
                            "covered by the admins' limits")
    _check_type(request, "ResourceConfig.InstanceType", resources.get("InstanceType"),
                allowed_instance_types(variables))
    caps = limits(variables)
    _check_count(request, "ResourceConfig.InstanceCount", resources.get("InstanceCount"),
                 "max_training_instance_count", caps)
    stopping = _section(config, request, "StoppingCondition")
    _check_count(request, "StoppingCondition.MaxRuntimeInSeconds", stopping.get("MaxRuntimeInSeconds"),
                 "max_runtime_seconds", caps)
    if stopping.get("MaxWaitTimeInSeconds") is not None:
        _check_count(request, "StoppingCondition.MaxWaitTimeInSeconds", stopping.get("MaxWaitTimeInSeconds"),
                     "max_runtime_seconds", caps)


def check_deploy_config(config: Mapping, variables: Variables | None = None) -> None:
    """A CreateEndpointConfig request within the limits: each production variant's instance type and count.

    A variant without an instance type (serverless), shadow variants and instance pools are refused:
    the limits speak of instance types and counts only.
    """
    variables = variables or airflow_variables
    request = "CreateEndpointConfig"
    variants = config.get("ProductionVariants") if isinstance(config, Mapping) else None
    if not isinstance(variants, list) or not variants:
        raise LimitExceeded(f"{request} refused: no ProductionVariants to check against the admins' limits")
    if config.get("ShadowProductionVariants"):
        raise LimitExceeded(f"{request} refused: ShadowProductionVariants are not covered by the admins' limits")
    types, caps = allowed_instance_types(variables), limits(variables)
    for index, variant in enumerate(variants):
        field = f"ProductionVariants[{index}]"
        if not isinstance(variant, Mapping):
            raise LimitExceeded(f"{request} refused: {field} is not an object")
        if variant.get("ServerlessConfig") is not None:
            raise LimitExceeded(f"{request} refused: {field}.ServerlessConfig is not covered by the admins' limits")
        _check_type(request, f"{field}.InstanceType", variant.get("InstanceType"), types)
        _check_count(request, f"{field}.InitialInstanceCount", variant.get("InitialInstanceCount"),
                     "max_endpoint_instance_count", caps)
        scaling = variant.get("ManagedInstanceScaling") or {}
        for key in ("MinInstanceCount", "MaxInstanceCount"):
            if key in scaling:
                _check_count(request, f"{field}.ManagedInstanceScaling.{key}", scaling[key],
                             "max_endpoint_instance_count", caps)


def check_transform_config(config: Mapping, variables: Variables | None = None) -> None:
    """A CreateTransformJob request within the limits: TransformResources' instance type and count."""
    variables = variables or airflow_variables
    request = "CreateTransformJob"
    resources = _section(config, request, "TransformResources")
    _check_type(request, "TransformResources.InstanceType", resources.get("InstanceType"),
                allowed_instance_types(variables))
    _check_count(request, "TransformResources.InstanceCount", resources.get("InstanceCount"),
                 "max_transform_instance_count", limits(variables))
