"""The model catalog: one YAML file per model, checked by a JSON schema into an immutable ``ModelSpec``.

``include/models/<name>.yaml`` says which data, which target, which algorithm and hyperparameters,
which gate, which endpoint and how it is switched, which instances, which schedule and watched
prefix, who owns it, who approves it. The DAG factory (``dags/sagemaker_retrain.py``) turns each spec into one DAG
whose Trigger form starts from the spec's values (``ModelSpec.param_defaults``).

Read while the DAG file is parsed, so it reads local files only: no network, no Variables, no AWS.
The schema's per-field rules are the Params' own (``params.build_params``): a catalog value is
accepted exactly when the Trigger form would accept it, and the admins' limits still apply when a
run starts. An error names the file, the field and the rule::

    include/models/x.yaml: gate.threshold: -1 is less than the minimum of 0

A bad file never hides a good one: ``load_catalog`` returns the valid specs and, apart, one
``CatalogError`` per file it refused.

    python -m sagemaker_retrain.catalog [DIR] --pools   # the pools the catalog needs, as `airflow pools import` JSON
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sagemaker_retrain.gate_metrics import METRICS_FOR_PREDICTOR

# Where the factory looks (env wins over the project's include/models/): the benchmark and the tests
# point it at a temporary catalog.
CATALOG_DIR_ENV = "SAGEMAKER_RETRAIN_CATALOG_DIR"
# Airflow pool of the tasks that change one endpoint (deploy, restore): one slot, shared by every DAG
# that deploys to the endpoint, so two runs never switch it at the same time.
POOL_PREFIX = "sagemaker_endpoint_"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
DAG_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,200}$"
# An approver: a user id as the auth manager knows it, optionally `ID:NAME` (as Variable sagemaker_retrain_approvers).
APPROVER_PATTERN = r"^[^,:\s][^,:]{0,199}(:[^,:]{1,200})?$"
# Linear Learner is the algorithm of the DAG's Params today; once the DAG has an `algorithm` Param, its
# choices are the catalog's (catalog._algorithms).
DEFAULT_ALGORITHMS = ("linear-learner",)
PROBLEM_TYPES = {
    "regression": "regressor",
    "binary_classification": "binary_classifier",
    "multiclass_classification": "multiclass_classifier",
}
# Per-model settings (`settings:`), each with a deployment-wide default (model_settings.py).
VARIABLES_PREFIX_PATTERN = r"^[a-z][a-z0-9_]{0,60}_$"
HISTORY_PATH_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}(/[a-z0-9][a-z0-9_.-]{0,62}){0,4}$"
EMAIL_PATTERN = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"  # no template, no list
DEFAULT_HISTORY_ROOT = "model-history"
# What a run writes under the S3 prefix besides history: a history path must stay out of it.
RUN_PATHS = ("runs", "models")
# Catalog field (under `promotion:` / `instances:`) -> the Param it sets the default of.
PROMOTION_PARAMS = ("mode", "endpoint_name", "deployment_strategy", "canary_percent", "linear_step_percent",
                    "bake_seconds", "termination_wait_seconds", "latency_alarm_ms", "deployment_timeout_seconds",
                    "require_approval", "approval_timeout_hours")
INSTANCE_PARAMS = {
    "training": "training_instance_type", "training_count": "training_instance_count",
    "max_runtime_seconds": "max_runtime_seconds", "endpoint": "endpoint_instance_type",
    "endpoint_count": "endpoint_instance_count", "transform": "transform_instance_type",
}
# The Params whose section is one of these are the algorithm's hyperparameters.
HYPERPARAMETER_SECTION_WORDS = ("Training", "hyperparameters")


class CatalogError(ValueError):
    """A catalog file the loader refused: its path and each (field, rule) it broke."""

    def __init__(self, file: str, problems: list[tuple[str, str]]):
        self.file = file
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{file}: {where}: {rule}" if where else f"{file}: {rule}"
                                   for where, rule in self.problems))


@dataclass(frozen=True)
class ModelSpec:
    """One model of the catalog, validated; immutable (its mappings are read-only views)."""

    name: str
    dag_id: str
    file: str
    owners: tuple[str, ...]
    description: str
    dataset_uri: str
    target_column: str
    problem_type: str
    num_classes: int | None
    algorithm: str
    hyperparameters: Mapping[str, Any]
    gate_metric: str
    gate_threshold: float
    promotion: Mapping[str, Any]
    instances: Mapping[str, Any]
    schedule: str | None
    watch_prefix: str | None
    tags: tuple[str, ...]
    shares_endpoint_with: tuple[str, ...] = field(default=())
    # `settings:` of the file: variables_prefix, history_path, alert_emails (each optional).
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # `approval:`: this model's own requirement (only ever stricter than the admins' Variable) and approvers
    # (empty: Variable sagemaker_retrain_approvers). Not Params: a person triggering a run cannot change them.
    approval_required: bool = False
    approvers: tuple[str, ...] = field(default=())

    @property
    def variables_prefix(self) -> str | None:
        """This model's Variables are ``<prefix><name>``, read before the deployment-wide ``sagemaker_retrain_<name>``."""
        return self.settings.get("variables_prefix")

    @property
    def history_path(self) -> str:
        """Where this model's history records go, under its S3 prefix: ``settings.history_path``, else
        ``model-history/<name>`` (a place of its own: the history page shows a user only the models they may read)."""
        return self.settings.get("history_path") or f"{DEFAULT_HISTORY_ROOT}/{self.name}"

    @property
    def alert_emails(self) -> tuple[str, ...]:
        """Who is mailed when a task fails (empty: the Variables decide, ``model_settings.alert_recipients``)."""
        return tuple(self.settings.get("alert_emails") or ())

    def run_settings(self) -> dict[str, str | None]:
        """What a run needs to read its deployment settings (``settings.load_settings``): plain, for an XCom-free call."""
        return {"variables_prefix": self.variables_prefix, "history_path": self.history_path}

    @property
    def endpoint_name(self) -> str:
        return self.promotion["endpoint_name"]

    @property
    def pool(self) -> str:
        """The Airflow pool of the tasks that change this model's endpoint (created by the deployment)."""
        return endpoint_pool(self.endpoint_name)

    @property
    def served_model_asset(self) -> str:
        return f"{self.dag_id}_served_model"

    @property
    def new_data_asset(self) -> str:
        return f"{self.dag_id}_new_data"

    def param_defaults(self, param_names: set[str] | None = None) -> dict[str, Any]:
        """The Trigger form's defaults this model sets (Param name -> value); the rest keep build_params'."""
        defaults: dict[str, Any] = {
            "dataset_uri": self.dataset_uri, "target_column": self.target_column,
            "predictor_type": PROBLEM_TYPES[self.problem_type], "num_classes": self.num_classes,
            "gate_metric": self.gate_metric, "gate_threshold": self.gate_threshold,
            **self.promotion,
            **{INSTANCE_PARAMS[key]: value for key, value in self.instances.items()},
            **self.hyperparameters,
        }
        if param_names is not None and "algorithm" in param_names:
            defaults["algorithm"] = self.algorithm
        return defaults


def endpoint_pool(endpoint_name: str) -> str:
    return f"{POOL_PREFIX}{endpoint_name}"


@dataclass(frozen=True)
class Catalog:
    """What the loader found: the valid specs (by file name) and the refused files' errors."""

    specs: tuple[ModelSpec, ...]
    errors: tuple[CatalogError, ...]

    def pools(self) -> dict[str, dict]:
        """``airflow pools import`` JSON: one single-slot pool per endpoint, deferred tasks counted."""
        return {spec.pool: {"slots": 1, "include_deferred": True,
                            "description": f"Runs that change SageMaker endpoint {spec.endpoint_name}"}
                for spec in self.specs}


# --- the schema ---------------------------------------------------------------------------------
def _field_schema(param) -> dict:
    """A Param's JSON schema without the form's presentation keys and its dialect (a subschema has none)."""
    return {k: v for k, v in param.schema.items() if k not in ("$schema", "section", "title", "description_md")}


def _algorithms(params: Mapping) -> list[str]:
    algorithm = params.get("algorithm")
    if algorithm is not None and algorithm.schema.get("enum"):
        return list(algorithm.schema["enum"])
    return list(DEFAULT_ALGORITHMS)


def hyperparameter_names(params: Mapping) -> list[str]:
    return [name for name, p in params.items()
            if any(word in str(p.schema.get("section", "")) for word in HYPERPARAMETER_SECTION_WORDS)]


def build_schema(params: Mapping) -> dict:
    """The JSON schema of one catalog file, its field rules taken from the DAG's Params."""
    def section(fields: dict[str, str]) -> dict:
        return {"type": "object", "additionalProperties": False,
                "properties": {key: _field_schema(params[name]) for key, name in fields.items()}}

    gate_threshold = {"type": "number", "minimum": 0}
    promotion = section({name: name for name in PROMOTION_PARAMS})
    # YAML 1.1 reads `yes`/`no` as booleans: accept those as the Param's "yes"/"no".
    promotion["properties"]["require_approval"] = {"enum": [True, False, "policy", "yes", "no"]}
    promotion["required"] = ["endpoint_name"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["owners", "data", "problem_type", "algorithm", "gate", "promotion"],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "dag_id": {"type": "string", "pattern": DAG_ID_PATTERN},
            "owners": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"type": "string", "minLength": 1, "maxLength": 100}},
            "description": {"type": "string", "maxLength": 2000},
            "data": {"type": "object", "additionalProperties": False, "required": ["uri", "target"],
                     "properties": {"uri": _field_schema(params["dataset_uri"]),
                                    "target": _field_schema(params["target_column"])}},
            "problem_type": {"enum": list(PROBLEM_TYPES)},
            "num_classes": _field_schema(params["num_classes"]),
            "algorithm": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {
                    "name": {"enum": _algorithms(params)},
                    "hyperparameters": section({n: n for n in hyperparameter_names(params)}),
                },
            },
            "gate": {"type": "object", "additionalProperties": False, "required": ["metric", "threshold"],
                     "properties": {"metric": _field_schema(params["gate_metric"]), "threshold": gate_threshold}},
            "promotion": promotion,
            "instances": section(INSTANCE_PARAMS),
            "schedule": {"type": ["string", "null"], "minLength": 1, "maxLength": 100},
            "watch_prefix": {"type": ["string", "null"], "pattern": r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/(.+/)?$"},
            "tags": {"type": "array", "uniqueItems": True,
                     "items": {"type": "string", "minLength": 1, "maxLength": 100}},
            "shares_endpoint_with": {"type": "array", "uniqueItems": True,
                                     "items": {"type": "string", "pattern": NAME_PATTERN}},
            "settings": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "variables_prefix": {"type": "string", "pattern": VARIABLES_PREFIX_PATTERN},
                    "history_path": {"type": "string", "pattern": HISTORY_PATH_PATTERN},
                    "alert_emails": {"type": "array", "minItems": 1, "maxItems": 20, "uniqueItems": True,
                                     "items": {"type": "string", "pattern": EMAIL_PATTERN}},
                },
            },
            "approval": {"type": "object", "additionalProperties": False,
                         "properties": {"required": {"type": "boolean"},
                                        "approvers": {"type": "array", "uniqueItems": True, "maxItems": 100,
                                                      "items": {"type": "string", "pattern": APPROVER_PATTERN}}}},
        },
    }


def _where(path) -> str:
    return ".".join(str(part) for part in path)


def _problems(error) -> list[tuple[str, str]]:
    """(field, rule) of one jsonschema error, naming the very field for missing and unknown ones."""
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return [(_where([*path, key]), "is required") for key in missing]
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties") or {})
        extra = [key for key in error.instance if key not in known]
        return [(_where([*path, key]), f"unknown field (allowed: {', '.join(known)})") for key in extra]
    if error.validator == "enum":
        return [(_where(path), f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}")]
    return [(_where(path), error.message)]


# --- loading ------------------------------------------------------------------------------------
def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _read(path: Path, shown: str) -> dict:
    import yaml

    try:
        # libyaml's loader where PyYAML has it (its wheels do): several times faster than the pure-Python one.
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CatalogError(shown, [(where, f"not valid YAML: {getattr(err, 'problem', None) or err}")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogError(shown, [("", f"cannot be read: {err}")]) from None
    if not isinstance(document, dict):
        raise CatalogError(shown, [("", f"must be a mapping of fields, not {type(document).__name__}")])
    return document


def _check_own_hyperparameters(algorithm: Mapping, shown: str) -> None:
    """A model's DAG has its own algorithm's *Training* section only: another algorithm's field is refused."""
    from sagemaker_retrain import algorithms

    own = algorithms.get(algorithm["name"]).form_defaults()
    problems = [(f"algorithm.hyperparameters.{key}", f"not a hyperparameter of {algorithm['name']} "
                 f"(its: {', '.join(own)})") for key in (algorithm.get("hyperparameters") or {}) if key not in own]
    if problems:
        raise CatalogError(shown, problems)


def _spec(document: dict, path: Path, shown: str, validator) -> ModelSpec:
    problems = [p for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
                for p in _problems(error)]
    if problems:
        raise CatalogError(shown, problems)
    name = document.get("name", path.stem)
    if name != path.stem:
        raise CatalogError(shown, [("name", f"{name!r} must be the file's name ({path.stem!r})")])
    if not re.match(NAME_PATTERN, path.stem):
        raise CatalogError(shown, [("name", f"the file name {path.stem!r} does not match {NAME_PATTERN}")])
    predictor = PROBLEM_TYPES[document["problem_type"]]
    metric = document["gate"]["metric"]
    if metric not in METRICS_FOR_PREDICTOR[predictor]:
        raise CatalogError(shown, [("gate.metric", f"{metric!r} does not suit problem_type "
                                    f"{document['problem_type']!r}: one of {', '.join(METRICS_FOR_PREDICTOR[predictor])}")])
    num_classes = document.get("num_classes")
    if (predictor == "multiclass_classifier") != (num_classes is not None):
        raise CatalogError(shown, [("num_classes", "required for multiclass_classification, and only for it")])
    history_path = (document.get("settings") or {}).get("history_path", "")
    if history_path.split("/")[0] in RUN_PATHS:
        raise CatalogError(shown, [("settings.history_path", f"{history_path!r} is inside the runs' own files "
                                    f"({', '.join(p + '/' for p in RUN_PATHS)}): pick another path")])
    promotion = dict(document["promotion"])
    if isinstance(promotion.get("require_approval"), bool):
        promotion["require_approval"] = "yes" if promotion["require_approval"] else "no"
    algorithm = document["algorithm"]
    _check_own_hyperparameters(algorithm, shown)
    return ModelSpec(
        name=name,
        dag_id=document.get("dag_id") or f"retrain_{name}",
        file=shown,
        owners=tuple(document["owners"]),
        description=document.get("description", "").strip(),
        dataset_uri=document["data"]["uri"],
        target_column=document["data"]["target"],
        problem_type=document["problem_type"],
        num_classes=num_classes,
        algorithm=algorithm["name"],
        hyperparameters=MappingProxyType(dict(algorithm.get("hyperparameters") or {})),
        gate_metric=metric,
        gate_threshold=float(document["gate"]["threshold"]),
        promotion=MappingProxyType(promotion),
        instances=MappingProxyType(dict(document.get("instances") or {})),
        schedule=document.get("schedule", "@weekly"),
        watch_prefix=document.get("watch_prefix"),
        tags=tuple(document.get("tags") or ()),
        shares_endpoint_with=tuple(document.get("shares_endpoint_with") or ()),
        settings=MappingProxyType(dict(document.get("settings") or {})),
        approval_required=bool((document.get("approval") or {}).get("required", False)),
        approvers=tuple(a.strip() for a in (document.get("approval") or {}).get("approvers") or ()),
    )


def _cross_checks(specs: list[ModelSpec], stems: set[str]) -> dict[str, CatalogError]:
    """Rules between files: unique dag ids, declared endpoint shares. Returns the refused files by name."""
    refused: dict[str, list[tuple[str, str]]] = {}
    by_name = {spec.name: spec for spec in specs}
    for spec in specs:
        for other in specs:
            if other is spec:
                continue
            if other.dag_id == spec.dag_id:
                refused.setdefault(spec.name, []).append(
                    ("dag_id", f"{spec.dag_id!r} is also the dag_id of {other.file}"))
            if other.endpoint_name == spec.endpoint_name and other.name not in spec.shares_endpoint_with:
                refused.setdefault(spec.name, []).append(
                    ("promotion.endpoint_name",
                     f"{spec.endpoint_name!r} is also the endpoint of {other.file}: two models may share an "
                     f"endpoint only if both list each other in shares_endpoint_with ({spec.file} does not list "
                     f"{other.name!r})"))
            if other.name > spec.name and _nested(other.history_path, spec.history_path):
                for one, two in ((spec, other), (other, spec)):
                    refused.setdefault(one.name, []).append(
                        ("settings.history_path", f"{one.history_path!r} and {two.file}'s {two.history_path!r} "
                                                  "overlap: each model keeps its history in a place of its own"))
        for named in spec.shares_endpoint_with:
            other = by_name.get(named)
            if named not in stems:
                refused.setdefault(spec.name, []).append(
                    ("shares_endpoint_with", f"no model {named!r} in the catalog"))
            elif other is not None and other.endpoint_name != spec.endpoint_name:
                refused.setdefault(spec.name, []).append(
                    ("shares_endpoint_with", f"{named!r} ({other.file}) deploys to {other.endpoint_name!r}, "
                                             f"not to {spec.endpoint_name!r}"))
    return {name: CatalogError(by_name[name].file, problems) for name, problems in refused.items()}


def _nested(one: str, two: str) -> bool:
    """Is one history path the other, or inside it?"""
    return one == two or one.startswith(two + "/") or two.startswith(one + "/")


def catalog_dir(default: Path) -> Path:
    """The catalog directory: env ``SAGEMAKER_RETRAIN_CATALOG_DIR`` if set, else ``default``."""
    raw = os.environ.get(CATALOG_DIR_ENV, "").strip()
    return Path(raw) if raw else default


def load_catalog(directory: Path, root: Path | None = None, params: Mapping | None = None) -> Catalog:
    """Every ``*.yaml`` of ``directory`` (sorted): the valid specs, and one error per refused file.

    ``root``: paths in errors are shown relative to it (the project). ``params``: the DAG's Params whose
    rules the schema uses (default: ``params.build_params()``).
    """
    import jsonschema

    from sagemaker_retrain.params import build_params

    params = build_params() if params is None else params
    validator = jsonschema.Draft202012Validator(build_schema(params))
    specs: list[ModelSpec] = []
    errors: list[CatalogError] = []
    if not directory.is_dir():  # no model at all is an error too, and shows as one
        return Catalog((), (CatalogError(_display(directory, root), [("", "the catalog directory does not exist")]),))
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in files:
        shown = _display(path, root)
        try:
            specs.append(_spec(_read(path, shown), path, shown, validator))
        except CatalogError as err:
            errors.append(err)
    refused = _cross_checks(specs, {p.stem for p in files})
    errors.extend(refused.values())
    return Catalog(tuple(s for s in specs if s.name not in refused), tuple(sorted(errors, key=lambda e: e.file)))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="Check the model catalog; print the pools it needs.")
    parser.add_argument("directory", nargs="?", type=Path,
                        default=catalog_dir(Path(__file__).resolve().parents[1] / "models"))
    parser.add_argument("--pools", action="store_true",
                        help="print the endpoint pools as `airflow pools import` JSON")
    args = parser.parse_args(argv)
    catalog = load_catalog(args.directory)
    for error in catalog.errors:
        print(error, file=sys.stderr)
    if args.pools:
        print(json.dumps(catalog.pools(), indent=2))
    else:
        for spec in catalog.specs:
            print(f"{spec.file}: {spec.dag_id} -> endpoint {spec.endpoint_name} (pool {spec.pool})")
    return 1 if catalog.errors and not args.pools else 0  # pools: a broken file must not stop a deployment


if __name__ == "__main__":
    raise SystemExit(main())
