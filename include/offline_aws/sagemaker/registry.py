"""SageMaker Model Registry: model package groups and (versioned) model packages.

As AWS: a group holds versions 1, 2, 3… (``arn:…:model-package/GROUP/N``, one counter per group,
never reused); a package is created ``Completed`` (no validation job to run here) with
``ModelApprovalStatus`` ``PendingManualApproval`` unless the request names another; approval moves
between ``Approved`` and ``Rejected`` (never back to pending); ``CustomerMetadataProperties`` and
``ApprovalDescription`` change through ``UpdateModelPackage``; ``ClientToken`` makes a create
idempotent; a group is deleted only once it holds no package. ``CreateModel`` may name a package
(``Containers[].ModelPackageName``): its inference container (image and artifact) then serves.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

from .exceptions import ValidationException
from .listing import paginate
from .operations import operation

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
CREATED_BY = {"UserProfileName": "offline-emulator", "DomainId": "offline"}
_VERSIONED = re.compile(r"^(?:arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:model-package/)?"
                        r"([a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})(?:/([0-9]{1,9}))?$")


def _now() -> datetime:
    return datetime.now(UTC)


def model_package_container(backend, container: dict) -> dict:
    """The container that really runs for a ``ContainerDefinition``: the package's, if it names one."""
    name = container.get("ModelPackageName")
    if not name:
        return container
    with backend.lock:
        package = backend.model_packages.get(backend._package_arn(name))
    if package is None:
        return {}
    spec = package.get("InferenceSpecification") or {}
    return {**(spec.get("Containers") or [{}])[0], **{k: v for k, v in container.items() if k == "Environment"}}


class RegistryMixin:
    """The registry operations of ``SageMakerBackend`` (state lives on the backend, under its lock)."""

    def _init_registry(self) -> None:
        self.model_package_groups: dict[str, dict] = {}  # lower-case name -> description
        self.model_packages: dict[str, dict] = {}  # ARN -> description
        self.model_package_versions: dict[str, int] = {}  # lower-case group -> last version given
        self.model_package_tokens: dict[str, str] = {}  # ClientToken -> the ARN it created

    # --- helpers ---------------------------------------------------------------------------
    def _group_arn(self, name: str) -> str:
        return self.arn("model-package-group", name)

    def _package_arn(self, name_or_arn: str) -> str:
        """The ARN a ModelPackageName (unversioned name, GROUP/N, or ARN) stands for."""
        match = _VERSIONED.match(name_or_arn)
        if match is None:
            return name_or_arn
        name, version = match.groups()
        suffix = f"{name.lower()}/{version}" if version else name.lower()
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package/{suffix}"

    def _group(self, name: str) -> dict:
        group = self.model_package_groups.get(name.lower())
        if group is None:
            raise ValidationException(f"ModelPackageGroup {name} does not exist.")
        return group

    def _package(self, name_or_arn: str) -> dict:
        package = self.model_packages.get(self._package_arn(name_or_arn))
        if package is None:
            raise ValidationException(f"ModelPackage {name_or_arn} does not exist.")
        return package

    # --- groups ----------------------------------------------------------------------------
    @operation("CreateModelPackageGroup")
    def create_model_package_group(self, req: dict) -> dict:
        name = req["ModelPackageGroupName"]
        arn = self._group_arn(name)
        with self.lock:
            if name.lower() in self.model_package_groups:
                raise ValidationException(f"Model Package Group already exists: {arn}")
            self._set_tags(arn, req.get("Tags"))
            desc = {"ModelPackageGroupName": name, "ModelPackageGroupArn": arn, "CreationTime": _now(),
                    "CreatedBy": dict(CREATED_BY), "ModelPackageGroupStatus": "Completed"}
            if req.get("ModelPackageGroupDescription") is not None:
                desc["ModelPackageGroupDescription"] = req["ModelPackageGroupDescription"]
            self.model_package_groups[name.lower()] = desc
        return {"ModelPackageGroupArn": arn}

    @operation("DescribeModelPackageGroup")
    def describe_model_package_group(self, req: dict) -> dict:
        with self.lock:
            return copy.deepcopy(self._group(req["ModelPackageGroupName"]))

    @operation("ListModelPackageGroups")
    def list_model_package_groups(self, req: dict) -> dict:
        keys = ("ModelPackageGroupName", "ModelPackageGroupArn", "ModelPackageGroupDescription", "CreationTime",
                "ModelPackageGroupStatus")
        with self.lock:
            rows = [{k: copy.deepcopy(g[k]) for k in keys if k in g} for g in self.model_package_groups.values()]
        items, token = paginate(rows, req, name_key="ModelPackageGroupName")
        return {"ModelPackageGroupSummaryList": items, **({"NextToken": token} if token else {})}

    @operation("DeleteModelPackageGroup")
    def delete_model_package_group(self, req: dict) -> dict:
        name = req["ModelPackageGroupName"]
        with self.lock:
            group = self._group(name)
            if any(p.get("ModelPackageGroupName", "").lower() == name.lower() for p in self.model_packages.values()):
                raise ValidationException(
                    f"Model Package Group {name} cannot be deleted because it contains model packages; delete "
                    "them first.")
            del self.model_package_groups[name.lower()]
            self.tags.pop(group["ModelPackageGroupArn"], None)
        return {}

    # --- packages --------------------------------------------------------------------------
    @operation("CreateModelPackage")
    def create_model_package(self, req: dict) -> dict:
        group_name, name = req.get("ModelPackageGroupName"), req.get("ModelPackageName")
        if bool(group_name) == bool(name):
            raise ValidationException(
                "Exactly one of ModelPackageName (an unversioned package) or ModelPackageGroupName (a versioned "
                "package) must be specified.")
        if name and not req.get("InferenceSpecification"):
            raise ValidationException("InferenceSpecification is required for an unversioned model package.")
        if name and req.get("ModelApprovalStatus"):
            raise ValidationException("ModelApprovalStatus can only be set for a versioned model package.")
        if group_name and req.get("Tags"):  # botocore's CreateModelPackage documentation, Tags
            raise ValidationException("Tags cannot be specified for a versioned model package (with "
                                      "ModelPackageGroupName): it uses the tags associated with its group.")
        with self.lock:
            token = req.get("ClientToken")
            if token and token in self.model_package_tokens:
                arn = self.model_package_tokens[token]
                if arn in self.model_packages:
                    return {"ModelPackageArn": arn}  # the same request again: the same package
            created = _now()
            desc: dict[str, Any] = {"CreationTime": created, "ModelPackageStatus": "Completed",
                                    "ModelPackageStatusDetails": {"ValidationStatuses": []},
                                    "CertifyForMarketplace": bool(req.get("CertifyForMarketplace", False)),
                                    "CreatedBy": dict(CREATED_BY)}
            if group_name:
                group = self._group(group_name)
                number = self.model_package_versions.get(group_name.lower(), 0) + 1
                arn = self._package_arn(f"{group['ModelPackageGroupName']}/{number}")
                desc.update(ModelPackageName=group["ModelPackageGroupName"],
                            ModelPackageGroupName=group["ModelPackageGroupName"], ModelPackageVersion=number,
                            ModelApprovalStatus=req.get("ModelApprovalStatus") or "PendingManualApproval")
            else:
                arn = self._package_arn(name)
                if arn in self.model_packages:
                    raise ValidationException(f"Model Package already exists: {arn}")
                desc["ModelPackageName"] = name
            desc["ModelPackageArn"] = arn
            for key in ("ModelPackageDescription", "InferenceSpecification", "ValidationSpecification",
                        "SourceAlgorithmSpecification", "MetadataProperties", "ModelMetrics", "Domain", "Task",
                        "SamplePayloadUrl", "CustomerMetadataProperties", "DriftCheckBaselines",
                        "AdditionalInferenceSpecifications", "SkipModelValidation", "SourceUri",
                        "ModelPackageRegistrationType"):
                if req.get(key) is not None:
                    desc[key] = copy.deepcopy(req[key])
            # A version carries its group's tags (as AWS documents it); an unversioned package its own.
            self._set_tags(arn, copy.deepcopy(self.tags.get(group["ModelPackageGroupArn"], [])) if group_name
                           else req.get("Tags"))
            if group_name:
                self.model_package_versions[group_name.lower()] = number
            self.model_packages[arn] = desc
            if token:
                self.model_package_tokens[token] = arn
        return {"ModelPackageArn": arn}

    @operation("DescribeModelPackage")
    def describe_model_package(self, req: dict) -> dict:
        with self.lock:
            return copy.deepcopy(self._package(req["ModelPackageName"]))

    @operation("ListModelPackages")
    def list_model_packages(self, req: dict) -> dict:
        group, status = req.get("ModelPackageGroupName"), req.get("ModelApprovalStatus")
        kind = req.get("ModelPackageType") or ("Versioned" if group else "Both")
        keys = ("ModelPackageName", "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                "ModelPackageDescription", "CreationTime", "ModelPackageStatus", "ModelApprovalStatus")
        with self.lock:
            if group:
                self._group(group)
            rows = []
            for package in self.model_packages.values():
                versioned = "ModelPackageGroupName" in package
                if (kind == "Versioned" and not versioned) or (kind == "Unversioned" and versioned):
                    continue
                if group and package.get("ModelPackageGroupName", "").lower() != group.lower():
                    continue
                if status and package.get("ModelApprovalStatus") != status:
                    continue
                rows.append({k: copy.deepcopy(package[k]) for k in keys if k in package})
        items, token = paginate(rows, req, name_key="ModelPackageName")
        return {"ModelPackageSummaryList": items, **({"NextToken": token} if token else {})}

    @operation("UpdateModelPackage")
    def update_model_package(self, req: dict) -> dict:
        with self.lock:
            package = self._package(req["ModelPackageArn"])
            arn = package["ModelPackageArn"]
            wanted = req.get("ModelApprovalStatus")
            if wanted is not None:
                if "ModelPackageGroupName" not in package:
                    raise ValidationException("ModelApprovalStatus can only be set for a versioned model package.")
                current = package.get("ModelApprovalStatus")
                if wanted == "PendingManualApproval" and current != "PendingManualApproval":
                    raise ValidationException(
                        f"Model package {arn} is {current}: its approval status cannot go back to "
                        "PendingManualApproval.")
            if req.get("ApprovalDescription") is not None and wanted is None:
                raise ValidationException("ApprovalDescription can only be updated with ModelApprovalStatus.")
            metadata = dict(package.get("CustomerMetadataProperties") or {})
            metadata.update(req.get("CustomerMetadataProperties") or {})
            for key in req.get("CustomerMetadataPropertiesToRemove") or []:
                metadata.pop(key, None)
            if len(metadata) > 50:
                raise ValidationException("CustomerMetadataProperties can have at most 50 entries.")
            if wanted is not None:
                package["ModelApprovalStatus"] = wanted
                if req.get("ApprovalDescription") is not None:
                    package["ApprovalDescription"] = req["ApprovalDescription"]
            if metadata:
                package["CustomerMetadataProperties"] = metadata
            else:
                package.pop("CustomerMetadataProperties", None)
            for key in ("InferenceSpecification", "SourceUri"):
                if req.get(key) is not None:
                    package[key] = copy.deepcopy(req[key])
            package["LastModifiedTime"] = _now()
            package["LastModifiedBy"] = dict(CREATED_BY)
        return {"ModelPackageArn": arn}

    @operation("DeleteModelPackage")
    def delete_model_package(self, req: dict) -> dict:
        with self.lock:
            package = self._package(req["ModelPackageName"])
            del self.model_packages[package["ModelPackageArn"]]
            self.tags.pop(package["ModelPackageArn"], None)
        return {}

    def _check_container_package(self, container: dict) -> None:
        """CreateModel naming a package: it must exist, be Completed and carry an inference container."""
        name = container.get("ModelPackageName")
        if not name:
            return
        package = self.model_packages.get(self._package_arn(name))
        if package is None:
            raise ValidationException(f"ModelPackage {name} does not exist.")
        if package["ModelPackageStatus"] != "Completed":
            raise ValidationException(f"ModelPackage {name} is {package['ModelPackageStatus']}, not Completed.")
        if not (package.get("InferenceSpecification") or {}).get("Containers"):
            raise ValidationException(f"ModelPackage {name} has no InferenceSpecification to create a model from.")
