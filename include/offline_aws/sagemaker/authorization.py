"""What a SageMaker request asks IAM (for ``offline_aws.iam_enforcement``): its action, the resource
ARNs it touches and their condition context, after AWS's Service Authorization Reference.

- ``aws:RequestTag/<key>`` and ``aws:TagKeys`` from the request's Tags; a create that carries Tags is
  authorized as ``sagemaker:AddTags`` on the new resource too (SageMaker's tag-on-create rule).
- ``aws:ResourceTag/<key>`` (and ``sagemaker:ResourceTag/<key>``) from the tags an existing resource
  carries; a resource that does not exist has none (IfExists conditions then hold).
- ``iam:PassRole`` on a create's RoleArn / ExecutionRoleArn, with ``iam:PassedToService``.
- SageMaker's own condition keys of the creates that spend: ``sagemaker:InstanceTypes`` (multivalued:
  every instance type the request asks for), ``sagemaker:MaxRuntimeInSeconds`` (CreateTrainingJob),
  ``sagemaker:VolumeKmsKey`` and ``sagemaker:OutputKmsKey`` (present only when the request names a key).
- CreateEndpoint and UpdateEndpoint touch the endpoint and the endpoint config they name; List*
  operations take no resource (``*``).
- UpdateEndpoint with auto-rollback alarms: SageMaker reads them as the execution role of the new
  config's models (``cloudwatch:DescribeAlarms`` on each alarm, evaluated against that role's
  policies: "Ensure that your IAM execution role has permission to perform the
  cloudwatch:DescribeAlarms action on the auto-rollback alarms", deployment guardrails guide).
"""

from __future__ import annotations

import re

from ..iam_enforcement import AuthRequest
from .models import SageMakerBackend

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
_OWN = re.compile(r"^(Create|Describe|Delete|Update|Stop)(TrainingJob|TransformJob|ModelPackageGroup|Model|"
                  r"EndpointConfig|Endpoint)$")
_KINDS = {"TrainingJob": "training-job", "TransformJob": "transform-job", "Model": "model",
          "EndpointConfig": "endpoint-config", "Endpoint": "endpoint", "ModelPackageGroup": "model-package-group"}


def _request_context(tags: list[dict] | None) -> dict:
    context: dict = {f"aws:RequestTag/{t['Key']}": t.get("Value", "") for t in tags or []}
    if tags:
        context["aws:TagKeys"] = [t["Key"] for t in tags]
    return context


def spend_context(operation: str, params: dict) -> dict:
    """The SageMaker condition keys of a create that spends (Service Authorization Reference)."""
    if operation == "CreateTrainingJob":
        resources = params.get("ResourceConfig") or {}
        types = [resources.get("InstanceType")] + [g.get("InstanceType") for g in resources.get("InstanceGroups", [])]
        context = {"sagemaker:MaxRuntimeInSeconds": (params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
                   "sagemaker:VolumeKmsKey": resources.get("VolumeKmsKeyId"),
                   "sagemaker:OutputKmsKey": (params.get("OutputDataConfig") or {}).get("KmsKeyId")}
    elif operation == "CreateTransformJob":
        resources = params.get("TransformResources") or {}
        types = [resources.get("InstanceType")]
        context = {"sagemaker:VolumeKmsKey": resources.get("VolumeKmsKeyId"),
                   "sagemaker:OutputKmsKey": (params.get("TransformOutput") or {}).get("KmsKeyId")}
    elif operation == "CreateEndpointConfig":
        types = [v.get("InstanceType") for v in params.get("ProductionVariants") or []]
        context = {"sagemaker:VolumeKmsKey": params.get("KmsKeyId")}
    else:
        return {}
    context["sagemaker:InstanceTypes"] = [t for t in types if t]
    return {key: value for key, value in context.items() if value not in (None, "", [])}


def _resource_context(backend: SageMakerBackend, arn: str) -> dict:
    context = {}
    for tag in backend.tags.get(arn, []):
        context[f"aws:ResourceTag/{tag['Key']}"] = tag["Value"]
        context[f"sagemaker:ResourceTag/{tag['Key']}"] = tag["Value"]
    return context


def _package_arn(backend: SageMakerBackend, params: dict, operation: str) -> str:
    if operation == "CreateModelPackage" and params.get("ModelPackageGroupName"):
        group = params["ModelPackageGroupName"].split("/")[-1]
        number = backend.model_package_versions.get(group.lower(), 0) + 1
        return backend._package_arn(f"{group}/{number}")
    return backend._package_arn(params.get("ModelPackageName") or params.get("ModelPackageArn") or "")


def sagemaker_requests(backend: SageMakerBackend, operation: str, params: dict) -> list[AuthRequest]:
    """Every authorization ``operation`` with ``params`` needs, in the order AWS would check them."""
    action = f"sagemaker:{operation}"
    tags = params.get("Tags")
    match = _OWN.match(operation)
    if match:
        kind = _KINDS[match.group(2)]
        name = params.get(f"{match.group(2)}Name") or ""
        arns = [backend.arn(kind, name.split("/")[-1])]
        if operation in ("CreateEndpoint", "UpdateEndpoint"):
            arns.append(backend.arn("endpoint-config", params.get("EndpointConfigName") or ""))
    elif operation in ("CreateModelPackage", "DescribeModelPackage", "UpdateModelPackage", "DeleteModelPackage"):
        arns = [_package_arn(backend, params, operation)]
    elif operation in ("AddTags", "ListTags", "DeleteTags"):
        arns = [params.get("ResourceArn") or ""]
    else:
        arns = ["*"]
    request_context = {**_request_context(tags), **spend_context(operation, params)}
    if operation == "DeleteTags" and params.get("TagKeys"):
        request_context["aws:TagKeys"] = list(params["TagKeys"])
    out = [AuthRequest(action, arn, {**(_resource_context(backend, arn) if arn != "*" else {}), **request_context})
           for arn in arns]
    if tags and operation.startswith("Create"):
        out.append(AuthRequest("sagemaker:AddTags", arns[0], request_context))
    for field in ("RoleArn", "ExecutionRoleArn"):
        if params.get(field) and operation.startswith("Create"):
            out.append(AuthRequest("iam:PassRole", params[field], {"iam:PassedToService": SAGEMAKER_SERVICE}))
    if operation == "UpdateEndpoint":
        rollback = (params.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration") or {}
        for role in _execution_roles(backend, params.get("EndpointConfigName") or ""):
            for alarm in rollback.get("Alarms", []):
                out.append(AuthRequest("cloudwatch:DescribeAlarms",
                                       f"arn:aws:cloudwatch:{backend.region}:{backend.account_id}:alarm:"
                                       f"{alarm.get('AlarmName', '')}", role=role))
    return out


def _execution_roles(backend: SageMakerBackend, config_name: str) -> list[str]:
    """The execution roles of an endpoint config's models (none if it or they do not exist yet)."""
    config = backend.endpoint_configs.get(config_name.lower()) or {}
    roles = []
    for variant in config.get("ProductionVariants", []):
        model = backend.models.get(str(variant.get("ModelName", "")).lower()) or {}
        if model.get("ExecutionRoleArn") and model["ExecutionRoleArn"] not in roles:
            roles.append(model["ExecutionRoleArn"])
    return roles


def invoke_requests(backend: SageMakerBackend, endpoint_name: str) -> list[AuthRequest]:
    arn = backend.arn("endpoint", endpoint_name)
    return [AuthRequest("sagemaker:InvokeEndpoint", arn, _resource_context(backend, arn))]
