"""The one interface the pipeline calls for anything that depends on the algorithm.

An ``Algorithm`` is a strategy: its training image per region, its hyperparameters (built from the
run's Params and validated before anything is spent), its channels and their content types, the
format ``prepare`` writes, the inference content types, how batch-transform output and endpoint
answers become one prediction per row, and the registry's ``InferenceSpecification``.

Predictions are normalised to the records the gate's metrics read (``evaluation.compute_metrics``):
``{"score": float | list[float], "predicted_label": float}`` — ``score`` is the regression value, the
positive-class probability (binary) or the class probabilities (multiclass) where the algorithm
gives them, else the label itself; ``predicted_label`` is present for classifiers.

Importing this package is cheap (no numpy, no boto3): the DAG file builds the Trigger form from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
JSON = "application/json"
JSONLINES = "application/jsonlines"
CHANNELS = ("train", "validation", "test")
PREDICTOR_TYPES = ("regressor", "binary_classifier", "multiclass_classifier")


class AnswerError(ValueError):
    """A model's answer cannot be read as one finite prediction per row."""


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: the AWS name, the Param that sets it, its type and rules.

    ``kind``: ``int``, ``float``, ``bool`` or ``str``. ``required``: the job fails on AWS without it,
    so a run without the Param is refused when it starts. ``default`` is the Param's default
    (None: unset, AWS's own default applies). ``minimum``/``maximum``/``choices`` mirror the
    algorithm's documented ranges; ``exclusive_minimum`` for ranges open at the bottom.
    """

    name: str
    param: str
    kind: str
    title: str
    description: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    choices: tuple | None = None

    def schema(self) -> dict:
        """The Param's JSON schema (without section/title/description)."""
        json_type = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}[self.kind]
        schema: dict = {"type": json_type if self.default is not None and not self.required
                        else ["null", json_type]}
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum),
                           ("exclusiveMinimum", self.exclusive_minimum)):
            if value is not None:
                schema[key] = value
        if self.choices is not None:
            schema["enum"] = list(self.choices) + ([None] if "null" in schema["type"] else [])
        return schema

    def check(self, value: Any, algorithm: str) -> None:
        """Raise ValueError naming the Param when ``value`` breaks the rules (None passes unless required)."""
        where = f"Param {self.param} ({self.title}: hyperparameter {self.name} of {algorithm})"
        if value is None:
            if self.required:
                raise ValueError(f"{where} is required: set it before triggering the run")
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{where} must be true or false, not {value!r}")
            return
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where} must be a number, not {value!r}")
            if self.kind == "int" and float(value) != int(value):
                raise ValueError(f"{where} must be a whole number, not {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"{where} must be finite, not {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{where} must be at least {self.minimum}, not {value!r}")
            if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
                raise ValueError(f"{where} must be above {self.exclusive_minimum}, not {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{where} must be at most {self.maximum}, not {value!r}")
        elif not isinstance(value, str):
            raise ValueError(f"{where} must be a string, not {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where} must be one of {', '.join(map(str, self.choices))}, not {value!r}")


def hp_value(value: Any) -> str:
    """A hyperparameter value as the API wants it (strings; booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class ExtraParam:
    """A Param of the algorithm's form section that is not one hyperparameter (script location, …)."""

    name: str
    title: str
    description: str
    default: Any
    schema: dict = field(default_factory=dict)


class Algorithm:
    """Base strategy; each module subclasses it once (see ``linear_learner``, ``xgboost``, ``knn``, ``sklearn``)."""

    name: str = ""  # the Param value: linear-learner, xgboost, knn, sklearn
    title: str = ""
    repository: str = ""  # ECR repository of the training/inference image
    tag: str = ""
    accounts: Mapping[str, str] = {}
    hyperparameters: tuple[Hyperparameter, ...] = ()
    extra_params: tuple[ExtraParam, ...] = ()
    channels: tuple[str, ...] = CHANNELS
    training_formats: tuple[str, ...] = (CSV,)  # what prepare may write for its train/validation channels
    inference_content_type: str = CSV  # requests: features only, no label
    endpoint_accept: str = JSON
    transform_accept: str = JSONLINES
    supported_content_types: tuple[str, ...] = (CSV,)
    supported_response_types: tuple[str, ...] = (JSON,)
    predictor_types: tuple[str, ...] = PREDICTOR_TYPES

    # --- images -----------------------------------------------------------------------------------
    def image(self, region: str) -> str:
        """The ECR URI of the image in ``region`` (as the SageMaker SDK's ``image_uris.retrieve``)."""
        try:
            account = self.accounts[region]
        except KeyError:
            known = ", ".join(sorted(self.accounts))
            raise ValueError(f"{self.title} is not published in region {region!r}; known regions: {known}") from None
        return f"{account}.dkr.ecr.{region}.{ecr_domain(region)}/{self.repository}:{self.tag}"

    def owns_image(self, image: str) -> bool:
        """Whether ``image`` is this algorithm's (its repository, any region/account, this or an alias tag)."""
        repository_and_tag = (image or "").rsplit("/", 1)[-1]
        repository, _, tag = repository_and_tag.partition(":")
        return repository == self.repository and tag in self.image_tags()

    def image_tags(self) -> tuple[str, ...]:
        return (self.tag,)

    # --- training ---------------------------------------------------------------------------------
    def validate(self, params: Mapping, project_dir: Path | None = None) -> None:
        """Refuse Params this algorithm cannot train with (ValueError naming the Param), before anything is spent.

        ``project_dir``: where a script's folder is looked up (script mode), when known.
        """
        predictor = params.get("predictor_type")
        if predictor not in self.predictor_types:
            raise ValueError(f"Param predictor_type {predictor!r} is not one {self.title} trains: choose one of "
                             f"{', '.join(self.predictor_types)}")
        fmt = self.training_format(params)
        if fmt not in self.training_formats:
            raise ValueError(f"Param training_content_type {fmt!r} is not a training format of {self.title}: "
                             f"choose one of {', '.join(self.training_formats)}")
        for hp in self.hyperparameters:
            hp.check(params.get(hp.param), self.title)

    def package(self, params: Mapping, project_dir: Path | None) -> tuple[bytes, str, dict] | None:
        """The user's code to upload before training: (``sourcedir.tar.gz`` bytes, sha256, facts), or None."""
        return None

    def training_format(self, params: Mapping) -> str:
        """The content type prepare writes for the train (and validation) channel."""
        return params.get("training_content_type") or CSV

    def channel_content_types(self, params: Mapping) -> dict[str, str]:
        """Each channel's ContentType in the training request (the test split is always CSV)."""
        fmt = self.training_format(params)
        return {c: (CSV if c == "test" else fmt) for c in self.channels}

    def build_hyperparameters(self, params: Mapping, feature_dim: int, **context: Any) -> dict[str, str]:
        """The training job's HyperParameters: every set Param, as strings."""
        return {hp.name: hp_value(params[hp.param]) for hp in self.hyperparameters
                if params.get(hp.param) is not None}

    def algorithm_specification(self, image: str) -> dict:
        return {"TrainingImage": image, "TrainingInputMode": "File"}

    # --- inference --------------------------------------------------------------------------------
    def container(self, image: str, model_data_url: str, code: Mapping | None = None,
                  region: str | None = None) -> dict:
        """The model's container (CreateModel's PrimaryContainer, the registry's InferenceSpecification)."""
        return {"Image": image, "ModelDataUrl": model_data_url}

    def inference_specification(self, image: str, model_data_url: str, params: Mapping,
                                code: Mapping | None = None, region: str | None = None) -> dict:
        return {
            "Containers": [self.container(image, model_data_url, code, region)],
            "SupportedContentTypes": list(self.supported_content_types),
            "SupportedResponseMIMETypes": list(self.supported_response_types),
            "SupportedRealtimeInferenceInstanceTypes": [params["endpoint_instance_type"]],
            "SupportedTransformInstanceTypes": [params["transform_instance_type"]],
        }

    def parse_transform_output(self, body: bytes, predictor_type: str, where: str = "transform output") -> list[dict]:
        """One normalised prediction per output line of a batch transform ``.out`` file."""
        raise NotImplementedError

    def parse_endpoint_answer(self, body: bytes, predictor_type: str) -> list[dict]:
        """One normalised prediction per row of an InvokeEndpoint answer (``endpoint_accept``)."""
        raise NotImplementedError

    @property
    def section(self) -> str:
        """The Trigger form's section of its Params."""
        return f"Training ({self.title} hyperparameters)"

    def form_params(self) -> list[tuple[str, Any, str, str, dict]]:
        """(Param name, default, title, description, JSON schema) of each Param of its form section."""
        out = []
        for hp in self.hyperparameters:
            out.append((hp.param, hp.default, hp.title, hp.description, hp.schema()))
        for extra in self.extra_params:
            out.append((extra.name, extra.default, extra.title, extra.description, dict(extra.schema)))
        return out

    def form_defaults(self) -> dict[str, Any]:
        """Its form section's defaults (Param name -> value): what a run that names it gets for a Param not given."""
        return {name: default for name, default, *_ in self.form_params()}

    def __repr__(self) -> str:
        return f"<Algorithm {self.name}>"


def ecr_domain(region: str) -> str:
    if region.startswith("cn-"):
        return "amazonaws.com.cn"
    if region.startswith("us-isob-"):
        return "sc2s.sgov.gov"
    if region.startswith("us-isof-"):
        return "csp.hci.ic.gov"
    if region.startswith("us-iso-"):
        return "c2s.ic.gov"
    return "amazonaws.com"


# --- parsing helpers shared by the strategies ---------------------------------------------------------
def json_lines(body: bytes, where: str) -> list[Any]:
    """One JSON value per non-blank line; the whole body parsed in one call when it is well formed."""
    text = body.decode()
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        values = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        values = None
    if values is not None and len(values) == len(lines):
        return values
    values = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except ValueError as err:
            raise AnswerError(f"{where} line {number} is not JSON: {line[:120]!r}") from err
    return values


def number_lines(body: bytes, where: str) -> list[float | list[float]]:
    """One number (or a comma-separated / bracketed vector) per non-blank line."""
    out: list[float | list[float]] = []
    for number, line in enumerate(body.decode().splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        text = text.strip("[]")
        try:
            values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
        except ValueError as err:
            raise AnswerError(f"{where} line {number} is not a number or a list of numbers: {line[:120]!r}") from err
        if not values:
            raise AnswerError(f"{where} line {number} is empty: {line[:120]!r}")
        out.append(values[0] if len(values) == 1 and "," not in text else values)
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def from_value(value: Any, predictor_type: str, *, probability: bool, index: int = 0) -> dict:
    """A normalised record from one row's raw value (a number, or a list of class probabilities/scores).

    ``probability``: a scalar of a binary classifier is the positive class's probability (threshold
    0.5), not a label.
    """
    if isinstance(value, list):
        if not value or not all(_finite(v) for v in value):
            raise AnswerError(f"Prediction {index} is not a list of finite numbers: {value!r}")
        if predictor_type == "regressor":
            if len(value) != 1:
                raise AnswerError(f"Prediction {index} of a regressor has {len(value)} values: {value!r}")
            return {"score": float(value[0])}
        label = float(max(range(len(value)), key=value.__getitem__))
        if predictor_type == "binary_classifier":
            score = float(value[1]) if len(value) == 2 else float(value[0])
            return {"score": score, "predicted_label": label if len(value) == 2 else float(score > 0.5)}
        return {"score": [float(v) for v in value], "predicted_label": label}
    if not _finite(value):
        raise AnswerError(f"Prediction {index} is not a finite number: {value!r}")
    value = float(value)
    if predictor_type == "regressor":
        return {"score": value}
    if predictor_type == "binary_classifier" and probability:
        return {"score": value, "predicted_label": float(value > 0.5)}
    return {"score": value, "predicted_label": value}


def from_values(values: list, predictor_type: str, *, probability: bool) -> list[dict]:
    """One normalised record per row's raw value (``from_value`` of each, numbered for its errors)."""
    return [from_value(v, predictor_type, probability=probability, index=i) for i, v in enumerate(values)]


def json_predictions(body: bytes, what: str, key: str | None = None) -> list:
    """The items of a built-in's JSON answer ``{"predictions": [...]}``, or each item's ``key`` when given.

    ``what`` names the algorithm in the error: an answer of another shape is not this algorithm's.
    """
    try:
        items = json.loads(body)["predictions"]
        return items if key is None else [item[key] for item in items]
    except (ValueError, KeyError, TypeError) as err:
        raise AnswerError(f"Endpoint answer is not {what} JSON: {body[:200]!r}") from err
