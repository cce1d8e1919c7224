"""The SageMaker Model Registry side of the pipeline: one package group per endpoint, a version per run.

Every trained model is registered (``PendingManualApproval``) before anything scores it; the
challenger's SageMaker model is created from its package, so what serves is always a registry
entry. The champion is the package behind the model the endpoint serves; its approval status
and the approver live in the package (``ModelApprovalStatus``, ``ApprovalDescription``), the run's
lineage and the gate's verdict in its ``CustomerMetadataProperties``.
"""

from __future__ import annotations

import logging
import re
import uuid

from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_ENDPOINT, TAG_PROJECT
from sagemaker_retrain.ownership import ForeignResourceError, tags_of

log = logging.getLogger(__name__)

APPROVED, REJECTED, PENDING = "Approved", "Rejected", "PendingManualApproval"
# CustomerMetadataProperties values: letters, digits, spaces and _.:/=+-@ only, 1-256 characters.
_METADATA_DISALLOWED = re.compile(r"[^\w .:/=+\-@]")
_TOKEN_NAMESPACE = uuid.UUID("6f1c2a52-7a4e-4f53-9d8e-2a3c9d1b5e10")


def group_name(params: dict) -> str:
    """One group per endpoint (ephemeral runs register under the endpoint they evaluate for)."""
    return params["endpoint_name"]


def metadata_value(value) -> str:
    """``value`` as AWS accepts it in CustomerMetadataProperties (other characters become spaces)."""
    text = _METADATA_DISALLOWED.sub(" ", str(value)).strip() or "-"
    return text[:256]


def metadata(values: dict) -> dict[str, str]:
    """Keys and values cleaned for CustomerMetadataProperties; None values left out."""
    return {metadata_value(k)[:128]: metadata_value(v) for k, v in values.items() if v is not None}


def client_token(run_id: str, slug: str) -> str:
    """CreateModelPackage's idempotency token for this run (a retry registers no second version)."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{run_id}|{slug}"))


def _missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound")


def ensure_group(sm, name: str, endpoint: str, tags: list[dict]) -> str:
    """The group's ARN, creating it (tagged) if absent; a group without our endpoint tag is refused."""
    try:
        arn = sm.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
    except ClientError as err:
        if not _missing(err):
            raise
        try:
            return sm.create_model_package_group(
                ModelPackageGroupName=name, Tags=tags,
                ModelPackageGroupDescription=f"Models trained for endpoint {endpoint}")[
                "ModelPackageGroupArn"]
        except ClientError as create_err:
            if "already exists" not in str(create_err):
                raise
            arn = sm.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
    found = tags_of(sm, arn)
    if found.get(TAG_ENDPOINT) != endpoint:
        raise ForeignResourceError(
            f"Model package group {name} exists but was not created by this pipeline (it carries "
            f"{TAG_ENDPOINT}={found.get(TAG_ENDPOINT)!r}). Refusing to register into it; tag it "
            f"{TAG_ENDPOINT}={endpoint} and {TAG_PROJECT}=sagemaker-retrain if it is yours.")
    return arn


def package_of_model(sm, model_name: str | None) -> dict | None:
    """The registry entry a SageMaker model was created from (None for a model made from an image)."""
    if not model_name:
        return None
    try:
        model = sm.describe_model(ModelName=model_name)
    except ClientError as err:
        if _missing(err):
            return None
        raise
    containers = [model.get("PrimaryContainer") or {}] + list(model.get("Containers") or [])
    arn = next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)
    return summary(sm, arn) if arn else None


def summary(sm, arn: str) -> dict:
    """The fields the pipeline and the history page show of a package."""
    desc = sm.describe_model_package(ModelPackageName=arn)
    return {
        "arn": desc["ModelPackageArn"],
        "group": desc.get("ModelPackageGroupName"),
        "version": desc.get("ModelPackageVersion"),
        "approval": desc.get("ModelApprovalStatus"),
        "approval_description": desc.get("ApprovalDescription"),
        "metadata": desc.get("CustomerMetadataProperties") or {},
        "metrics_uri": (((desc.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get(
            "S3Uri"),
        "created": desc["CreationTime"].isoformat() if hasattr(desc["CreationTime"], "isoformat")
        else str(desc["CreationTime"]),
    }


def set_approval(sm, arn: str, status: str, description: str, extra: dict | None = None) -> None:
    """Approve or reject a package, saying who and why (and any metadata to record with it)."""
    request = {"ModelPackageArn": arn, "ModelApprovalStatus": status,
               "ApprovalDescription": description[:1024]}
    if extra:
        request["CustomerMetadataProperties"] = metadata(extra)
    current = sm.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
    if current == status and not extra:
        return
    log.info("Model package %s: %s -> %s (%s)", arn, current, status, description)
    sm.update_model_package(**request)


def annotate(sm, arn: str, values: dict) -> None:
    """Add run facts to a package's CustomerMetadataProperties (UpdateModelPackage merges them)."""
    props = metadata(values)
    if props:
        sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties=props)


def list_packages(sm, group: str, limit: int = 100) -> list[dict]:
    """The group's versions, newest first (at most ``limit``); empty if the group does not exist."""
    out: list[dict] = []
    token = None
    try:
        while len(out) < limit:
            page = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                          SortOrder="Descending", MaxResults=min(100, limit - len(out)),
                                          **({"NextToken": token} if token else {}))
            out += page["ModelPackageSummaryList"]
            token = page.get("NextToken")
            if not token:
                break
    except ClientError as err:
        if _missing(err):
            return []
        raise
    return out
