"""The hosting "instances": deploy an endpoint config (Creating/Updating) and serve invocations.

Deploying downloads each variant's ``model.tar.gz`` from S3 through boto3 and loads it, as the
inference container does; a failed update rolls back to the previous config, still InService,
with a FailureReason, as AWS does. While an update runs, invocations use the old models (during a
blue/green deployment, ``Endpoint.pick_fleet`` sends the configured share to the new ones).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from dataclasses import dataclass

from .. import algorithms
from ..algorithms.base import Predictor
from ..limits import INVOKE_ENDPOINT_MAX_BYTES
from .exceptions import SageMakerError
from .records import Backend, Endpoint, now

MAX_PAYLOAD_BYTES = INVOKE_ENDPOINT_MAX_BYTES

# Emulated durations in seconds at time scale 1.
CREATING_SECONDS = 5.0
UPDATING_SECONDS = 5.0
DELETING_SECONDS = 2.0


class RuntimeError_(SageMakerError):
    """A SageMaker Runtime error (rest-json: the code travels in ``x-amzn-ErrorType``)."""


class ModelErrorResponse(SageMakerError):
    """The container answered an error: HTTP 424 ModelError carrying the container's status."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, *, original_status: int, original_message: str, log_stream_arn: str):
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn


@dataclass
class LoadedVariant:
    name: str
    model: Predictor  # the algorithm's loaded model (algorithms.base.Predictor)
    weight: float
    image: str


class DeployFailed(Exception):
    """Ends a deployment; the message is the endpoint's FailureReason."""


def start_deployment(backend: Backend, endpoint: Endpoint, config: dict, *, previous: str | None,
                     injected_failure: str | None) -> None:
    """Called under ``backend.lock`` right after the record went Creating/Updating."""
    endpoint.generation += 1
    generation = endpoint.generation
    endpoint.thread = threading.Thread(
        target=_deploy,
        args=(backend, endpoint, generation, config, previous, injected_failure),
        name=f"endpoint-{endpoint.desc['EndpointName']}",
        daemon=True,
    )
    endpoint.thread.start()


def _deploy(backend, endpoint: Endpoint, generation: int, config: dict, previous: str | None,
            injected_failure: str | None) -> None:
    seconds = UPDATING_SECONDS if previous else CREATING_SECONDS
    try:
        if injected_failure is not None:
            backend.clock.pause(seconds)
            raise DeployFailed(injected_failure)
        loaded = load_variants(backend, config)
        backend.clock.pause(seconds)
    except DeployFailed as exc:
        reason = str(exc)
        loaded = None
    except Exception as exc:  # noqa: BLE001 - never leave an endpoint stuck in Creating
        reason = f"Internal error while deploying: {type(exc).__name__}: {exc}"
        loaded = None
    with backend.lock:
        if endpoint.generation != generation or backend.endpoints.get(endpoint.desc["EndpointName"].lower()) is not endpoint:
            return  # deleted or superseded meanwhile
        desc = endpoint.desc
        desc.pop("PendingDeploymentSummary", None)
        desc["LastModifiedTime"] = now()
        if loaded is not None:
            endpoint.serving = loaded
            desc["EndpointStatus"] = "InService"
            desc.pop("FailureReason", None)
            desc["ProductionVariants"] = variant_summaries(loaded)
        elif previous is None:
            desc["EndpointStatus"] = "Failed"
            desc["FailureReason"] = reason
        else:  # roll back: the old config keeps serving
            desc["EndpointStatus"] = "InService"
            desc["EndpointConfigName"] = previous
            desc["FailureReason"] = reason


def variant_summaries(loaded: dict[str, LoadedVariant]) -> list[dict]:
    stamp = now()
    return [
        {
            "VariantName": v.name,
            "DeployedImages": [
                {
                    "SpecifiedImage": v.image,
                    "ResolvedImage": f"{v.image.split(':')[0]}@sha256:{hashlib.sha256(v.image.encode()).hexdigest()}",
                    "ResolutionTime": stamp,
                }
            ],
            "CurrentWeight": v.weight,
            "DesiredWeight": v.weight,
            "CurrentInstanceCount": 1,
            "DesiredInstanceCount": 1,
        }
        for v in loaded.values()
    ]


def load_variants(backend: Backend, config: dict) -> dict[str, LoadedVariant]:
    loaded = {}
    for variant in config["ProductionVariants"]:
        with backend.lock:
            model_desc = backend.models.get(variant["ModelName"].lower())
        if model_desc is None:
            raise DeployFailed(f'Could not find model "{backend.arn("model", variant["ModelName"])}".')
        container = backend.model_container(model_desc)
        image = container.get("Image", "")
        try:
            algorithm = algorithms.for_image(image)
        except algorithms.UnknownImage as exc:
            raise DeployFailed(f"{exc} (model {model_desc['ModelName']})") from None
        url = container.get("ModelDataUrl")
        if not url:
            raise DeployFailed(
                f"The primary container for production variant {variant['VariantName']} did not pass the ping "
                f"health check: model {model_desc['ModelName']} has no ModelDataUrl."
            )
        match = re.match(r"^(?:s3|https)://([^/]+)/(.+)$", url)
        if not match:
            raise DeployFailed(f"Invalid ModelDataUrl {url!r}.")
        bucket, key = match.groups()
        try:
            blob = backend.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception:  # noqa: BLE001 - any S3 error reads as AWS's download failure
            raise DeployFailed(
                f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there is an "
                "object located at the URL and that the role passed to CreateModel has permissions to download "
                "the model."
            ) from None
        try:
            model = algorithm.load(blob, container, lambda uri: fetch_s3(backend, uri))
        except ValueError:
            raise DeployFailed(
                f"The primary container for production variant {variant['VariantName']} did not pass the ping "
                "health check. Please check CloudWatch logs for this endpoint."
            ) from None
        loaded[variant["VariantName"]] = LoadedVariant(
            variant["VariantName"], model, float(variant.get("InitialVariantWeight", 1.0)), image
        )
    return loaded


def fetch_s3(backend: Backend, uri: str) -> bytes:
    """An ``s3://`` object through the emulator's S3 (a script's ``sourcedir.tar.gz``); ValueError if absent."""
    match = re.match(r"^(?:s3|https)://([^/]+)/(.+)$", uri)
    if not match:
        raise ValueError(f"Invalid S3 URI {uri!r}.")
    try:
        return backend.aws.client("s3").get_object(Bucket=match[1], Key=match[2])["Body"].read()
    except Exception as exc:  # noqa: BLE001 - the container fails to start, whatever S3 said
        raise ValueError(f"Failed to download {uri}: {exc}") from None


def start_deletion(backend: Backend, endpoint: Endpoint) -> None:
    """Called under ``backend.lock`` after the record went Deleting."""
    endpoint.generation += 1
    generation = endpoint.generation

    def run() -> None:
        backend.clock.pause(DELETING_SECONDS)
        with backend.lock:
            key = endpoint.desc["EndpointName"].lower()
            if endpoint.generation == generation and backend.endpoints.get(key) is endpoint:
                del backend.endpoints[key]
                backend.tags.pop(endpoint.desc["EndpointArn"], None)

    endpoint.thread = threading.Thread(target=run, name=f"delete-{endpoint.desc['EndpointName']}", daemon=True)
    endpoint.thread.start()


def payload_too_large() -> RuntimeError_:
    return RuntimeError_(
        f"Request payload size exceeds the maximum allowed size of {MAX_PAYLOAD_BYTES} bytes (6 MB).",
        code="ValidationError",
        status=413,
    )


def invoke(backend: Backend, name: str, body: bytes, content_type: str | None, accept: str | None,
           target_variant: str | None) -> tuple[bytes, str, str]:
    """Serve one InvokeEndpoint: pick the variant, decode, predict, encode."""
    from ..algorithms.base import ModelError

    if len(body) > MAX_PAYLOAD_BYTES:
        raise payload_too_large()
    with backend.lock:
        endpoint = backend.endpoints.get(name.lower())
        serving = dict(endpoint.pick_fleet()) if endpoint is not None else {}  # blue, or green per the split
        status = endpoint.desc["EndpointStatus"] if endpoint is not None else None
    if status not in ("InService", "Updating") or not serving:
        raise RuntimeError_(
            f"Endpoint {name} of account {backend.account_id} not found.", code="ValidationError", status=400
        )
    if target_variant:
        if target_variant not in serving:
            raise RuntimeError_(
                f"Target variant {target_variant} does not exist for endpoint {name}.",
                code="ValidationError",
                status=400,
            )
        variant = serving[target_variant]
    else:
        variants = list(serving.values())
        variant = random.choices(variants, weights=[max(v.weight, 0.0) for v in variants] or None)[0]
    log_arn = f"arn:aws:logs:{backend.region}:{backend.account_id}:log-group:/aws/sagemaker/Endpoints/{name}"
    try:
        payload, out_type = variant.model.invoke(body, content_type, accept)
    except ModelError as exc:
        original = int(getattr(exc, "status", 400))
        kind = "client" if original < 500 else "server"
        raise ModelErrorResponse(
            f'Received {kind} error ({original}) from primary with message "{exc}". See '
            f"https://{backend.region}.console.aws.amazon.com/cloudwatch/home?region={backend.region}"
            f"#logEventViewer:group=/aws/sagemaker/Endpoints/{name} in account {backend.account_id} "
            "for more information.",
            original_status=original,
            original_message=str(exc),
            log_stream_arn=log_arn,
        ) from None
    return payload, out_type, variant.name
