"""SageMaker's state and rules: training and transform jobs, models, endpoint configs, endpoints, tags.

Everything a request can be rejected for is decided here (no HTTP involved), so the rules and
the state machines are unit-testable; ``responses`` only translates the wire protocol. Work
that takes time (training, deploying, batch transform) runs in background threads from
``training``, ``hosting``, ``deployment`` and ``transform``, which move the records (``records``)
through AWS's statuses. Imports run one way: this module -> the runners -> ``records``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .. import ACCOUNT_ID, DEFAULT_REGION
from ..aws_clients import AwsClients
from ..faults import Faults
from ..settings import Clock
from .alarms import missing_alarms
from .deployment import pending_variants, start_blue_green
from .exceptions import ResourceNotFound, SageMakerError, ValidationException
from .guardrails import alarm_names, check_deployment_config
from .hosting import invoke, start_deletion, start_deployment
from .listing import paginate
from .operations import OPERATIONS, operation
from .records import Endpoint, TrainingJob, TransformJob, model_artifact_uri, now, record_transition
from .registry import RegistryMixin, model_package_container
from .training import start_training_job
from .transform import start_transform_job

MAX_TRANSFORM_PAYLOAD_MB = 100  # AWS: MaxPayloadInMB (times MaxConcurrentTransforms) at most 100 MB


class SageMakerBackend(RegistryMixin):
    """One account/region of SageMaker. Thread-safe: every record change happens under ``lock``."""

    def __init__(
        self,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        *,
        clock: Clock | None = None,
        faults: Faults | None = None,
        aws: AwsClients | None = None,
    ):
        self.region = region
        self.account_id = account_id
        self.clock = clock or Clock()
        self.faults = faults or Faults()
        self.aws = aws or AwsClients(region=region)
        self.lock = threading.RLock()
        self.training_jobs: dict[str, TrainingJob] = {}
        self.transform_jobs: dict[str, TransformJob] = {}
        self.models: dict[str, dict] = {}
        self.endpoint_configs: dict[str, dict] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.tags: dict[str, list[dict]] = {}
        self._init_registry()

    # --- helpers -------------------------------------------------------------------------
    def arn(self, kind: str, name: str) -> str:
        # AWS lower-cases names in SageMaker ARNs, and names are unique case-insensitively.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    def call(self, operation_name: str, params: dict | None = None) -> dict:
        """Run an operation by its AWS name, as the wire layer does."""
        handler = OPERATIONS.get(operation_name)
        if handler is None:
            raise SageMakerError(
                f"Operation {operation_name} is not supported by the offline emulator.",
                code="UnknownOperationException",
                status=400,
            )
        return handler(self, params or {})

    def _set_tags(self, arn: str, tags: list[dict] | None) -> None:
        if not tags:
            return
        current = {t["Key"]: t for t in self.tags.get(arn, [])}
        for tag in tags:
            if tag["Key"].lower().startswith("aws:"):
                raise ValidationException("Tag keys beginning with 'aws:' are reserved for system use.")
            current[tag["Key"]] = {"Key": tag["Key"], "Value": tag.get("Value", "")}
        if len(current) > 50:
            raise ValidationException(f"Too many tags: {arn} would have {len(current)} tags, at most 50.")
        self.tags[arn] = list(current.values())

    def _arn_exists(self, arn: str) -> bool:
        kind, _, name = arn.partition(":")[2].rpartition(":")[2].partition("/")
        if kind == "model-package":
            return arn in self.model_packages
        table = {
            "training-job": self.training_jobs,
            "transform-job": self.transform_jobs,
            "model": self.models,
            "endpoint-config": self.endpoint_configs,
            "endpoint": self.endpoints,
            "model-package-group": self.model_package_groups,
        }.get(kind)
        if table is None or not arn.startswith(f"arn:aws:sagemaker:{self.region}:{self.account_id}:"):
            return False
        return name in table

    # --- training jobs --------------------------------------------------------------------
    @operation("CreateTrainingJob")
    def create_training_job(self, req: dict) -> dict:
        """Register the job InProgress/Starting and start its runner thread."""
        name = req["TrainingJobName"]
        arn = self.arn("training-job", name)
        if req.get("ResourceConfig") is None:
            raise ValidationException(
                "1 validation error detected: Value null at 'resourceConfig' failed to satisfy "
                "constraint: Member must not be null"
            )
        if "AlgorithmSpecification" not in req:
            raise ValidationException("AlgorithmSpecification is required for a training job.")
        algo = req["AlgorithmSpecification"]
        if not algo.get("TrainingImage") and not algo.get("AlgorithmName"):
            raise ValidationException("Either TrainingImage or AlgorithmName must be specified.")
        channels = [c["ChannelName"] for c in req.get("InputDataConfig", [])]
        if len(set(channels)) != len(channels):
            raise ValidationException("Channel names must be unique within InputDataConfig.")
        created = now()
        input_mode = algo.get("TrainingInputMode", "File")
        desc = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "ModelArtifacts": {"S3ModelArtifacts": model_artifact_uri(req["OutputDataConfig"], name)},
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "HyperParameters": dict(req.get("HyperParameters") or {}),
            "AlgorithmSpecification": {
                **copy.deepcopy(algo),
                "TrainingInputMode": input_mode,
                "EnableSageMakerMetricsTimeSeries": algo.get("EnableSageMakerMetricsTimeSeries", False),
            },
            "RoleArn": req["RoleArn"],
            "InputDataConfig": [_channel_with_defaults(c, input_mode) for c in req.get("InputDataConfig", [])],
            "OutputDataConfig": {"KmsKeyId": "", "CompressionType": "GZIP", **req["OutputDataConfig"]},
            "ResourceConfig": {"VolumeSizeInGB": 30, **req["ResourceConfig"]},
            "StoppingCondition": req.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
            "CreationTime": created,
            "LastModifiedTime": created,
            "SecondaryStatusTransitions": [
                {"Status": "Starting", "StartTime": created, "StatusMessage": "Launching requested ML instances"}
            ],
            "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False)),
            "EnableInterContainerTrafficEncryption": bool(req.get("EnableInterContainerTrafficEncryption", False)),
            "EnableManagedSpotTraining": bool(req.get("EnableManagedSpotTraining", False)),
        }
        for optional in ("VpcConfig", "CheckpointConfig", "Environment", "RetryStrategy", "DebugHookConfig"):
            if optional in req:
                desc[optional] = copy.deepcopy(req[optional])
        with self.lock:
            if name.lower() in self.training_jobs:
                # AWS answers ResourceInUse here (not ValidationException as for models/endpoints).
                raise SageMakerError(
                    "Training job names must be unique within an AWS account and region, and a training "
                    f"job with this name already exists ({arn})",
                    code="ResourceInUse",
                    status=400,
                )
            self._set_tags(arn, req.get("Tags"))
            job = TrainingJob(desc=desc, injected_failure=self.faults.take_training_failure(),
                              nan_weights=self.faults.take_nan_weights())
            self.training_jobs[name.lower()] = job
        start_training_job(self, job)
        return {"TrainingJobArn": arn}

    def _job(self, name: str) -> TrainingJob:
        job = self.training_jobs.get(name.lower())
        if job is None:
            raise ValidationException("Requested resource not found.")
        return job

    @operation("DescribeTrainingJob")
    def describe_training_job(self, req: dict) -> dict:
        with self.lock:
            return copy.deepcopy(self._job(req["TrainingJobName"]).desc)

    @operation("StopTrainingJob")
    def stop_training_job(self, req: dict) -> dict:
        """InProgress -> Stopping; the runner thread notices and ends the job Stopped."""
        with self.lock:
            job = self._job(req["TrainingJobName"])
            status = job.desc["TrainingJobStatus"]
            if status != "InProgress":
                raise ValidationException(f"The request was rejected because the training job is in status {status}.")
            job.desc["TrainingJobStatus"] = "Stopping"
            record_transition(job.desc, "Stopping", "Stopping the training job")
            job.stop_requested.set()
        return {}

    @operation("ListTrainingJobs")
    def list_training_jobs(self, req: dict) -> dict:
        with self.lock:
            descs = [copy.deepcopy(j.desc) for j in self.training_jobs.values()]
        summaries = [
            {
                k: d[k]
                for k in (
                    "TrainingJobName",
                    "TrainingJobArn",
                    "CreationTime",
                    "TrainingEndTime",
                    "LastModifiedTime",
                    "TrainingJobStatus",
                    "SecondaryStatus",
                )
                if k in d
            }
            for d in descs
        ]
        items, token = paginate(summaries, req, name_key="TrainingJobName", status_key="TrainingJobStatus")
        return _page("TrainingJobSummaries", items, token)

    # --- transform jobs -------------------------------------------------------------------
    @operation("CreateTransformJob")
    def create_transform_job(self, req: dict) -> dict:
        """Register the job InProgress and start its transform instance (``transform``)."""
        name = req["TransformJobName"]
        arn = self.arn("transform-job", name)
        payload, concurrent = req.get("MaxPayloadInMB"), req.get("MaxConcurrentTransforms")
        if payload is not None and payload > MAX_TRANSFORM_PAYLOAD_MB:
            raise ValidationException(f"MaxPayloadInMB must be less than or equal to {MAX_TRANSFORM_PAYLOAD_MB}.")
        if payload and concurrent and payload * concurrent > MAX_TRANSFORM_PAYLOAD_MB:
            raise ValidationException(
                f"The value of MaxConcurrentTransforms * MaxPayloadInMB ({concurrent} * {payload}) cannot "
                f"exceed {MAX_TRANSFORM_PAYLOAD_MB} MB."
            )
        created = now()
        desc = {
            "TransformJobName": name,
            "TransformJobArn": arn,
            "TransformJobStatus": "InProgress",
            "ModelName": req["ModelName"],
            "TransformInput": {"CompressionType": "None", "SplitType": "None", **copy.deepcopy(req["TransformInput"])},
            "TransformOutput": {"AssembleWith": "None", **copy.deepcopy(req["TransformOutput"])},
            "TransformResources": copy.deepcopy(req["TransformResources"]),
            "DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None",
                               **copy.deepcopy(req.get("DataProcessing") or {})},
            "CreationTime": created,
            "LastModifiedTime": created,
        }
        for optional in ("MaxConcurrentTransforms", "MaxPayloadInMB", "BatchStrategy", "Environment",
                         "ModelClientConfig", "DataCaptureConfig", "ExperimentConfig"):
            if optional in req:
                desc[optional] = copy.deepcopy(req[optional])
        with self.lock:
            if name.lower() in self.transform_jobs:
                raise ValidationException(
                    "Job name must be unique within an AWS account and region, and a job with this name "
                    f"already exists ({arn})"
                )
            self._model(req["ModelName"])  # 'Could not find model "arn".' as AWS
            self._set_tags(arn, req.get("Tags"))
            job = TransformJob(desc=desc, injected_failure=self.faults.take_transform_failure())
            self.transform_jobs[name.lower()] = job
        start_transform_job(self, job)
        return {"TransformJobArn": arn}

    def _transform_job(self, name: str) -> TransformJob:
        job = self.transform_jobs.get(name.lower())
        if job is None:
            raise ValidationException(f"Could not find requested job with name {name}")
        return job

    @operation("DescribeTransformJob")
    def describe_transform_job(self, req: dict) -> dict:
        with self.lock:
            desc = copy.deepcopy(self._transform_job(req["TransformJobName"]).desc)
        desc.pop("LastModifiedTime", None)
        return desc

    @operation("StopTransformJob")
    def stop_transform_job(self, req: dict) -> dict:
        """InProgress -> Stopping; the transform thread notices and ends the job Stopped (no output kept)."""
        with self.lock:
            job = self._transform_job(req["TransformJobName"])
            status = job.desc["TransformJobStatus"]
            if status == "Stopping":
                return {}
            if status != "InProgress":
                raise ValidationException(f"The request was rejected because the transform job is in status {status}.")
            job.desc.update(TransformJobStatus="Stopping", LastModifiedTime=now())
            job.stop_requested.set()
        return {}

    @operation("ListTransformJobs")
    def list_transform_jobs(self, req: dict) -> dict:
        keys = ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime", "LastModifiedTime",
                "TransformJobStatus", "FailureReason")
        with self.lock:
            rows = [{k: copy.deepcopy(j.desc[k]) for k in keys if k in j.desc} for j in self.transform_jobs.values()]
        items, token = paginate(rows, req, name_key="TransformJobName", status_key="TransformJobStatus")
        return _page("TransformJobSummaries", items, token)

    # --- models ---------------------------------------------------------------------------
    @operation("CreateModel")
    def create_model(self, req: dict) -> dict:
        name = req["ModelName"]
        arn = self.arn("model", name)
        if not req.get("PrimaryContainer") and not req.get("Containers"):
            raise ValidationException("Either PrimaryContainer or Containers must be specified.")
        for container in [req.get("PrimaryContainer")] + list(req.get("Containers") or []):
            if container is not None and not container.get("Image") and not container.get("ModelPackageName"):
                raise ValidationException("Image is required for a container definition.")
            if container is not None and container.get("ModelPackageName"):
                with self.lock:
                    self._check_container_package(container)
        desc = {
            "ModelName": name,
            "ModelArn": arn,
            "CreationTime": now(),
            "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False)),
        }
        for key in ("PrimaryContainer", "Containers", "ExecutionRoleArn", "VpcConfig", "InferenceExecutionConfig"):
            if key in req:
                desc[key] = copy.deepcopy(req[key])
        for container in [desc.get("PrimaryContainer")] + list(desc.get("Containers") or []):
            if container is not None:
                container.setdefault("Mode", "SingleModel")
                container.setdefault("Environment", {})
        with self.lock:
            if name.lower() in self.models:
                raise ValidationException(f'Cannot create already existing model "{arn}".')
            self._set_tags(arn, req.get("Tags"))
            self.models[name.lower()] = desc
        return {"ModelArn": arn}

    def model_container(self, model_desc: dict) -> dict:
        """The container a model runs: its first, resolved through its model package if it names one."""
        container = model_desc.get("PrimaryContainer") or (model_desc.get("Containers") or [{}])[0]
        return model_package_container(self, container)

    def _model(self, name: str) -> dict:
        model = self.models.get(name.lower())
        if model is None:
            raise ValidationException(f'Could not find model "{self.arn("model", name)}".')
        return model

    @operation("DescribeModel")
    def describe_model(self, req: dict) -> dict:
        with self.lock:
            return copy.deepcopy(self._model(req["ModelName"]))

    @operation("DeleteModel")
    def delete_model(self, req: dict) -> dict:
        with self.lock:
            model = self._model(req["ModelName"])
            del self.models[req["ModelName"].lower()]
            self.tags.pop(model["ModelArn"], None)
        return {}

    @operation("ListModels")
    def list_models(self, req: dict) -> dict:
        with self.lock:
            rows = [{k: m[k] for k in ("ModelName", "ModelArn", "CreationTime")} for m in self.models.values()]
        items, token = paginate(rows, req, name_key="ModelName")
        return _page("Models", items, token)

    # --- endpoint configs -----------------------------------------------------------------
    @operation("CreateEndpointConfig")
    def create_endpoint_config(self, req: dict) -> dict:
        name = req["EndpointConfigName"]
        arn = self.arn("endpoint-config", name)
        variants = []
        seen = set()
        with self.lock:
            if name.lower() in self.endpoint_configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{arn}".')
            for variant in req["ProductionVariants"]:
                vname = variant["VariantName"]
                if vname in seen:
                    raise ValidationException(f"Variant names must be unique: {vname} is used more than once.")
                seen.add(vname)
                if not variant.get("ModelName"):
                    raise ValidationException(f"ModelName is required for production variant {vname}.")
                self._model(variant["ModelName"])  # "Could not find model ..." as AWS
                if "ServerlessConfig" not in variant and (
                    not variant.get("InstanceType") or not variant.get("InitialInstanceCount")
                ):
                    raise ValidationException(
                        f"Invalid ProductionVariant {vname}: InstanceType and InitialInstanceCount are "
                        "required unless ServerlessConfig is specified."
                    )
                variants.append({"InitialVariantWeight": 1.0, **copy.deepcopy(variant)})
            desc = {
                "EndpointConfigName": name,
                "EndpointConfigArn": arn,
                "ProductionVariants": variants,
                "CreationTime": now(),
                "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False)),
            }
            for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig", "ExecutionRoleArn"):
                if key in req:
                    desc[key] = copy.deepcopy(req[key])
            self._set_tags(arn, req.get("Tags"))
            self.endpoint_configs[name.lower()] = desc
        return {"EndpointConfigArn": arn}

    def _endpoint_config(self, name: str) -> dict:
        config = self.endpoint_configs.get(name.lower())
        if config is None:
            raise ValidationException(
                f'Could not find endpoint configuration "{self.arn("endpoint-config", name)}".'
            )
        return config

    @operation("DescribeEndpointConfig")
    def describe_endpoint_config(self, req: dict) -> dict:
        with self.lock:
            return copy.deepcopy(self._endpoint_config(req["EndpointConfigName"]))

    @operation("DeleteEndpointConfig")
    def delete_endpoint_config(self, req: dict) -> dict:
        with self.lock:
            config = self._endpoint_config(req["EndpointConfigName"])
            del self.endpoint_configs[req["EndpointConfigName"].lower()]
            self.tags.pop(config["EndpointConfigArn"], None)
        return {}

    @operation("ListEndpointConfigs")
    def list_endpoint_configs(self, req: dict) -> dict:
        with self.lock:
            rows = [
                {k: c[k] for k in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
                for c in self.endpoint_configs.values()
            ]
        items, token = paginate(rows, req, name_key="EndpointConfigName")
        return _page("EndpointConfigs", items, token)

    # --- endpoints ------------------------------------------------------------------------
    @operation("CreateEndpoint")
    def create_endpoint(self, req: dict) -> dict:
        """Register the endpoint Creating; a hosting thread loads the model and makes it InService."""
        name = req["EndpointName"]
        arn = self.arn("endpoint", name)
        deployment_config = copy.deepcopy(req.get("DeploymentConfig"))
        if deployment_config is not None:  # nothing to shift at creation: kept for RetainDeploymentConfig
            with self.lock:
                config = copy.deepcopy(self._endpoint_config(req["EndpointConfigName"]))
            self._check_deployment_config(deployment_config, config)
        with self.lock:
            if name.lower() in self.endpoints:
                raise ValidationException(f'Cannot create already existing endpoint "{arn}".')
            config = copy.deepcopy(self._endpoint_config(req["EndpointConfigName"]))
            created = now()
            endpoint = Endpoint(
                desc={
                    "EndpointName": name,
                    "EndpointArn": arn,
                    "EndpointConfigName": config["EndpointConfigName"],
                    "EndpointStatus": "Creating",
                    "CreationTime": created,
                    "LastModifiedTime": created,
                    **({"LastDeploymentConfig": deployment_config} if deployment_config is not None else {}),
                }
            )
            self._set_tags(arn, req.get("Tags"))
            self.endpoints[name.lower()] = endpoint
            failure = self.faults.take_endpoint_create_failure()
            start_deployment(self, endpoint, config, previous=None, injected_failure=failure)
        return {"EndpointArn": arn}

    def _check_deployment_config(self, deployment_config: dict, config: dict) -> None:
        """The rules of ``guardrails`` and, through CloudWatch, that the rollback alarms exist. Call unlocked."""
        check_deployment_config(deployment_config, config)
        missing = missing_alarms(self.aws, alarm_names(deployment_config))
        if missing:
            raise ValidationException(
                f"The CloudWatch alarm(s) {', '.join(missing)} in DeploymentConfig.AutoRollbackConfiguration "
                "could not be found. Please make sure the alarms exist in the endpoint's account and region."
            )

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name.lower())
        if endpoint is None:
            raise ValidationException(f'Could not find endpoint "{self.arn("endpoint", name)}".')
        return endpoint

    @operation("DescribeEndpoint")
    def describe_endpoint(self, req: dict) -> dict:
        with self.lock:
            return copy.deepcopy(self._endpoint(req["EndpointName"]).desc)

    @operation("UpdateEndpoint")
    def update_endpoint(self, req: dict) -> dict:
        """InService -> Updating; the old config keeps serving until the new one is loaded.

        Without ``DeploymentConfig`` the new config replaces the old one at once when loaded; with
        it (or ``RetainDeploymentConfig`` and a previous one) a blue/green deployment shifts traffic
        step by step, baking and watching its CloudWatch alarms (``deployment``).
        """
        with self.lock:
            endpoint = self._endpoint(req["EndpointName"])
            deployment_config = req.get("DeploymentConfig")
            if deployment_config is None and req.get("RetainDeploymentConfig"):
                deployment_config = endpoint.desc.get("LastDeploymentConfig")
            deployment_config = copy.deepcopy(deployment_config)
            config = copy.deepcopy(self._endpoint_config(req["EndpointConfigName"]))
        if deployment_config is not None:
            self._check_deployment_config(deployment_config, config)
        with self.lock:
            endpoint = self._endpoint(req["EndpointName"])
            arn = endpoint.desc["EndpointArn"]
            status = endpoint.desc["EndpointStatus"]
            if status == "Failed":
                raise ValidationException(f'Cannot update failed endpoint "{arn}".')
            if status != "InService":
                raise ValidationException(f'Cannot update in-progress endpoint "{arn}".')
            config = copy.deepcopy(self._endpoint_config(req["EndpointConfigName"]))
            previous = endpoint.desc["EndpointConfigName"]
            started = now()
            pending = {"EndpointConfigName": config["EndpointConfigName"], "StartTime": started}
            if deployment_config is not None:
                pending["ProductionVariants"] = pending_variants(config, "Creating", started)
            endpoint.desc.update(
                EndpointStatus="Updating",
                EndpointConfigName=config["EndpointConfigName"],
                LastModifiedTime=started,
                PendingDeploymentSummary=pending,
            )
            endpoint.desc.pop("FailureReason", None)
            failure = self.faults.take_endpoint_update_failure()
            if deployment_config is None:
                start_deployment(self, endpoint, config, previous=previous, injected_failure=failure)
            else:
                start_blue_green(self, endpoint, config, deployment_config, previous=previous,
                                 injected_failure=failure)
        return {"EndpointArn": arn}

    @operation("DeleteEndpoint")
    def delete_endpoint(self, req: dict) -> dict:
        """-> Deleting, then the record disappears after the (scaled) teardown time."""
        with self.lock:
            endpoint = self._endpoint(req["EndpointName"])
            if endpoint.desc["EndpointStatus"] == "Deleting":
                raise ValidationException(
                    f'Cannot delete in-progress endpoint "{endpoint.desc["EndpointArn"]}".'
                )
            endpoint.desc.update(EndpointStatus="Deleting", LastModifiedTime=now())
            start_deletion(self, endpoint)
        return {}

    @operation("ListEndpoints")
    def list_endpoints(self, req: dict) -> dict:
        with self.lock:
            rows = [
                {
                    k: e.desc[k]
                    for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
                }
                for e in self.endpoints.values()
            ]
        items, token = paginate(rows, req, name_key="EndpointName", status_key="EndpointStatus")
        return _page("Endpoints", items, token)

    def invoke_endpoint(self, name: str, body: bytes, content_type: str | None, accept: str | None,
                        target_variant: str | None = None) -> tuple[bytes, str, str]:
        """SageMaker Runtime InvokeEndpoint -> (body, content type, invoked variant)."""
        return invoke(self, name, body, content_type, accept, target_variant)

    # --- tags -----------------------------------------------------------------------------
    def _require_arn(self, arn: str) -> None:
        if not self._arn_exists(arn):
            raise ValidationException(f"Resource {arn} does not exist.")

    @operation("AddTags")
    def add_tags(self, req: dict) -> dict:
        with self.lock:
            self._require_arn(req["ResourceArn"])
            self._set_tags(req["ResourceArn"], req["Tags"])
            return {"Tags": copy.deepcopy(self.tags[req["ResourceArn"]])}

    @operation("ListTags")
    def list_tags(self, req: dict) -> dict:
        with self.lock:
            self._require_arn(req["ResourceArn"])
            tags = copy.deepcopy(self.tags.get(req["ResourceArn"], []))
        start = int(req.get("NextToken") or 0) if str(req.get("NextToken") or "0").isdigit() else 0
        limit = req.get("MaxResults") or 50
        page = tags[start : start + limit]
        out: dict[str, Any] = {"Tags": page}
        if start + limit < len(tags):
            out["NextToken"] = str(start + limit)
        return out

    @operation("DeleteTags")
    def delete_tags(self, req: dict) -> dict:
        with self.lock:
            self._require_arn(req["ResourceArn"])
            keys = set(req["TagKeys"])
            self.tags[req["ResourceArn"]] = [t for t in self.tags.get(req["ResourceArn"], []) if t["Key"] not in keys]
        return {}

    # --- introspection --------------------------------------------------------------------
    def summary(self) -> dict:
        """A compact view for the admin route."""
        with self.lock:
            return {
                "training_jobs": {
                    j.desc["TrainingJobName"]: {
                        "status": j.desc["TrainingJobStatus"],
                        "secondary_status": j.desc["SecondaryStatus"],
                        **({"failure_reason": j.desc["FailureReason"]} if "FailureReason" in j.desc else {}),
                    }
                    for j in self.training_jobs.values()
                },
                "transform_jobs": {
                    j.desc["TransformJobName"]: {
                        "status": j.desc["TransformJobStatus"],
                        **({"failure_reason": j.desc["FailureReason"]} if "FailureReason" in j.desc else {}),
                    }
                    for j in self.transform_jobs.values()
                },
                "models": sorted(m["ModelName"] for m in self.models.values()),
                "model_packages": {
                    arn: p.get("ModelApprovalStatus", "") for arn, p in sorted(self.model_packages.items())
                },
                "endpoint_configs": sorted(c["EndpointConfigName"] for c in self.endpoint_configs.values()),
                "endpoints": {
                    e.desc["EndpointName"]: {
                        "status": e.desc["EndpointStatus"],
                        "config": e.desc["EndpointConfigName"],
                        **({"failure_reason": e.desc["FailureReason"]} if "FailureReason" in e.desc else {}),
                        **({"green_share": e.green_share} if e.green else {}),  # a blue/green deployment's split
                    }
                    for e in self.endpoints.values()
                },
            }


class SageMakerService:
    """All regions of our SageMaker in one account, sharing the clock, faults and S3/Logs clients."""

    def __init__(self, *, clock: Clock | None = None, faults: Faults | None = None,
                 endpoint_url: str | None = None, account_id: str = ACCOUNT_ID):
        self.clock = clock or Clock()
        self.faults = faults or Faults()
        self.account_id = account_id
        self.endpoint_url = endpoint_url
        self.credentials = ("test", "test")  # what it signs its own S3/Logs calls with
        self._backends: dict[str, SageMakerBackend] = {}
        self._lock = threading.Lock()

    def backend(self, region: str = DEFAULT_REGION) -> SageMakerBackend:
        with self._lock:
            if region not in self._backends:
                self._backends[region] = SageMakerBackend(
                    region,
                    self.account_id,
                    clock=self.clock,
                    faults=self.faults,
                    aws=AwsClients(self.endpoint_url, region, self.credentials),
                )
            return self._backends[region]

    def regions(self) -> list[str]:
        with self._lock:
            return list(self._backends)

    def reset(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                with backend.lock:
                    for job in [*backend.training_jobs.values(), *backend.transform_jobs.values()]:
                        job.stop_requested.set()
                    for endpoint in backend.endpoints.values():
                        endpoint.generation += 1
            self._backends.clear()


# --- small pure helpers ---------------------------------------------------------------------
def _channel_with_defaults(channel: dict, input_mode: str) -> dict:
    channel = copy.deepcopy(channel)
    source = channel.get("DataSource", {}).get("S3DataSource")
    if source is not None:
        source.setdefault("S3DataDistributionType", "FullyReplicated")
    channel.setdefault("CompressionType", "None")
    channel.setdefault("RecordWrapperType", "None")
    return channel


def _page(key: str, items: list, token: str | None) -> dict:
    out: dict[str, Any] = {key: items}
    if token:
        out["NextToken"] = token
    return out


__all__ = ["SageMakerBackend", "SageMakerService", "OPERATIONS", "ResourceNotFound", "Endpoint", "TrainingJob",
           "TransformJob", "now", "record_transition"]
