"""Plain functions that build the exact requests sent to SageMaker.

Keeping them as dict builders makes each request visible, and testable against botocore's
service model, without any AWS call.
"""

from __future__ import annotations

from collections.abc import Mapping

from sagemaker_retrain.algorithms import Algorithm

TAG_PROJECT = "sagemaker-retrain:project"
PROJECT = "sagemaker-retrain"
TAG_ENDPOINT = "sagemaker-retrain:endpoint"
TAG_RUN = "sagemaker-retrain:run-id"
TAG_TRAINING_JOB = "sagemaker-retrain:training-job"
TAG_PREVIOUS_CONFIG = "sagemaker-retrain:previous-config"
# Written on an endpoint config once the run that deployed it verified it (InService on it, smoke test
# passed, recorded): the undo of a deployment reads it, never a task's XCom.
TAG_VERIFIED = "sagemaker-retrain:verified"
CHANNELS = ("train", "validation", "test")

def tags(endpoint_name: str, run_id: str, **extra: str) -> list[dict[str, str]]:
    """The project's ownership tags (project, endpoint, run): the pipeline touches only what carries them."""
    out = [{"Key": TAG_PROJECT, "Value": PROJECT}, {"Key": TAG_ENDPOINT, "Value": endpoint_name},
           {"Key": TAG_RUN, "Value": run_id[:256]}]
    out += [{"Key": f"sagemaker-retrain:{k.replace('_', '-')}", "Value": v} for k, v in extra.items()]
    return out


def _with_key(section: dict, field: str, kms_key: str | None) -> dict:
    """``section`` with ``field`` naming the customer-managed KMS key, when one is configured (Variable
    ``sagemaker_retrain_kms_key_arn``); without one, unchanged: SageMaker's and S3's default encryption."""
    return {**section, field: kms_key} if kms_key else section


def build_training_config(
    *,
    algorithm: Algorithm,
    job_name: str,
    image: str,
    role_arn: str,
    channel_uris: Mapping[str, str],
    output_uri: str,
    params: Mapping,
    feature_dim: int,
    resource_tags: list[dict[str, str]],
    content_type: str | Mapping[str, str] | None = None,
    code: Mapping | None = None,
    region: str | None = None,
    kms_key: str | None = None,
) -> dict:
    """CreateTrainingJob request: ``algorithm`` on its channels (those of ``channel_uris`` it takes).

    ``content_type`` is one type for every channel or a per-channel mapping (RecordIO training
    data keeps a CSV test channel, which evaluation reads back); None: the algorithm's types for
    the Params. ``code`` (``{"uri", "sha256", "entry_point"}``) is script mode's uploaded source;
    ``region`` the job's region (script mode's ``sagemaker_region``); ``kms_key`` (a key ARN) encrypts the
    training volumes and the model artifacts (the policy's ``sagemaker:VolumeKmsKey``/``OutputKmsKey``).
    """
    if content_type is None:
        types = algorithm.channel_content_types(params)
    else:
        types = content_type if isinstance(content_type, Mapping) else dict.fromkeys(CHANNELS, content_type)
    distribution = "ShardedByS3Key" if int(params["training_instance_count"]) > 1 else "FullyReplicated"
    channels = []
    for name in algorithm.channels:
        if name not in channel_uris:
            continue
        channels.append(
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": channel_uris[name],
                        "S3DataDistributionType": distribution if name == "train" else "FullyReplicated",
                    }
                },
                "ContentType": types[name],
                "CompressionType": "None",
                "InputMode": "File",
            }
        )
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": algorithm.algorithm_specification(image),
        "RoleArn": role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": _with_key({"S3OutputPath": output_uri}, "KmsKeyId", kms_key),
        "ResourceConfig": _with_key({
            "InstanceType": params["training_instance_type"],
            "InstanceCount": int(params["training_instance_count"]),
            "VolumeSizeInGB": 10,
        }, "VolumeKmsKeyId", kms_key),
        "StoppingCondition": {"MaxRuntimeInSeconds": int(params["max_runtime_seconds"])},
        "HyperParameters": algorithm.build_hyperparameters(params, feature_dim, code=code, region=region),
        "Tags": resource_tags,
    }


def build_model_config(
    *, algorithm: Algorithm, model_name: str, image: str, model_data_url: str, role_arn: str,
    resource_tags: list[dict[str, str]], code: Mapping | None = None, region: str | None = None,
) -> dict:
    """CreateModel request: the training job's artifact behind the algorithm's container (and code)."""
    return {
        "ModelName": model_name,
        "PrimaryContainer": algorithm.container(image, model_data_url, code, region),
        "ExecutionRoleArn": role_arn,
        "Tags": resource_tags,
    }


def build_model_from_package_config(
    *, model_name: str, model_package_arn: str, role_arn: str, resource_tags: list[dict[str, str]],
    environment: Mapping[str, str] | None = None,
) -> dict:
    """CreateModel request from a registered model package (its image and artifact), as AWS recommends.

    ``environment`` (script mode: the code that serves) is set on the container as the SageMaker SDK's
    ``ModelPackage`` sets it, beside the package's own.
    """
    container: dict = {"ModelPackageName": model_package_arn}
    if environment:
        container["Environment"] = dict(environment)
    return {
        "ModelName": model_name,
        "Containers": [container],
        "ExecutionRoleArn": role_arn,
        "Tags": resource_tags,
    }


def build_model_package_group_config(*, group_name: str, endpoint_name: str,
                                     resource_tags: list[dict[str, str]]) -> dict:
    """CreateModelPackageGroup request: one group per endpoint, tagged as the pipeline's."""
    return {
        "ModelPackageGroupName": group_name,
        "ModelPackageGroupDescription": f"Models trained for endpoint {endpoint_name}",
        "Tags": resource_tags,
    }


def build_model_package_config(
    *, algorithm: Algorithm, group_name: str, image: str, model_data_url: str, params: Mapping, metrics_uri: str,
    customer_metadata: Mapping[str, str], client_token: str, description: str,
    code: Mapping | None = None, region: str | None = None,
) -> dict:
    """CreateModelPackage request: a new version in the endpoint's group, pending manual approval.

    The InferenceSpecification is the algorithm's: its container (with script mode's code), its
    request and response types.

    No ``Tags``: a version takes its group's tags, and AWS refuses a versioned package's own
    (botocore's CreateModelPackage documentation); the group is tagged and trusted by them.

    ``metrics_uri`` is where the gate writes both models' metrics on this run's test rows
    (``…/evaluation/metrics.json``): known before it exists, so the package names it from the start.
    """
    return {
        "ModelPackageGroupName": group_name,
        "ModelPackageDescription": description[:1024],
        "InferenceSpecification": algorithm.inference_specification(image, model_data_url, params, code, region),
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        "CustomerMetadataProperties": dict(customer_metadata),
        "ModelApprovalStatus": "PendingManualApproval",
        "ClientToken": client_token,
    }


def build_endpoint_config_config(
    *, config_name: str, model_name: str, params: Mapping, resource_tags: list[dict[str, str]],
    kms_key: str | None = None,
) -> dict:
    """CreateEndpointConfig request: one production variant serving the run's model (``kms_key``: its
    instances' storage volumes; the allowed instance types have no local NVMe storage, which refuses a key)."""
    return _with_key({
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": int(params["endpoint_instance_count"]),
                "InstanceType": params["endpoint_instance_type"],
                "InitialVariantWeight": 1.0,
            }
        ],
        "Tags": resource_tags,
    }, "KmsKeyId", kms_key)


def build_endpoint_request(
    *, endpoint_name: str, config_name: str, resource_tags: list[dict[str, str]] | None = None
) -> dict:
    """CreateEndpoint request (UpdateEndpoint takes the same minus Tags)."""
    request = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
    if resource_tags:
        request["Tags"] = resource_tags
    return request


def build_update_endpoint_request(
    *, endpoint_name: str, config_name: str, deployment_config: dict | None = None
) -> dict:
    """UpdateEndpoint request: blue/green switch to ``config_name``; the old config serves until then."""
    request = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
    if deployment_config:
        request["DeploymentConfig"] = deployment_config
    return request


def alarm_names(prefix: str, endpoint_name: str) -> dict[str, str]:
    """The CloudWatch alarms that roll a deployment back, named with the project's prefix."""
    base = f"{prefix.replace('/', '-')}-{endpoint_name}"
    return {"errors": f"{base}-invocation-5xx", "latency": f"{base}-model-latency"}


def build_alarm_requests(
    *, prefix: str, endpoint_name: str, latency_ms: float, resource_tags: list[dict[str, str]]
) -> list[dict]:
    """PutMetricAlarm requests: any 5xx from the model, or its average latency over ``latency_ms``.

    SageMaker watches these during a blue/green deployment and rolls the endpoint back itself
    when one goes into ALARM (``AutoRollbackConfiguration``).
    """
    names = alarm_names(prefix, endpoint_name)
    common = {
        "Namespace": "AWS/SageMaker",
        "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": "AllTraffic"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
        "Tags": resource_tags,
    }
    return [
        {**common, "AlarmName": names["errors"], "MetricName": "Invocation5XXErrors", "Statistic": "Sum",
         "Threshold": 0.0, "ComparisonOperator": "GreaterThanThreshold",
         "AlarmDescription": f"Model errors on {endpoint_name}: rolls a deployment back"},
        {**common, "AlarmName": names["latency"], "MetricName": "ModelLatency", "Statistic": "Average",
         "Unit": "Microseconds", "Threshold": float(latency_ms) * 1000.0,
         "ComparisonOperator": "GreaterThanThreshold",
         "AlarmDescription": f"Model latency on {endpoint_name} over {latency_ms} ms: rolls a deployment back"},
    ]


def build_deployment_config(params: Mapping, alarm_names_: list[str]) -> dict:
    """UpdateEndpoint's DeploymentConfig: blue/green with canary, linear or all-at-once shifting.

    The new fleet first takes a share of traffic (canary) or steps (linear) while SageMaker
    watches the alarms for the bake time; any alarm rolls the endpoint back to the old fleet.
    """
    strategy = params["deployment_strategy"]
    bake = int(params["bake_seconds"])
    routing: dict = {"WaitIntervalInSeconds": bake}
    if strategy == "canary":
        routing.update(Type="CANARY", CanarySize={"Type": "CAPACITY_PERCENT", "Value": int(params["canary_percent"])})
    elif strategy == "linear":
        routing.update(Type="LINEAR",
                       LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": int(params["linear_step_percent"])})
    else:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": bake}
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": int(params["termination_wait_seconds"]),
            "MaximumExecutionTimeoutInSeconds": int(params["deployment_timeout_seconds"]),
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names_]},
    }


def build_transform_config(
    *, algorithm: Algorithm, job_name: str, model_name: str, input_uri: str, output_uri: str, params: Mapping,
    resource_tags: list[dict[str, str]], kms_key: str | None = None,
) -> dict:
    """CreateTransformJob request: score the label-first test split, dropping the label column.

    ``InputFilter $[1:]`` sends only the features to the model; rows keep their order (Line
    split and assembly), so each ``.out`` line matches the input line of the same number. The
    output is in the model's algorithm's ``transform_accept``, which that algorithm parses back.
    ``kms_key`` encrypts the job's volumes and its ``.out`` files.
    """
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": algorithm.inference_content_type,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": _with_key({"S3OutputPath": output_uri, "Accept": algorithm.transform_accept,
                                      "AssembleWith": "Line"}, "KmsKeyId", kms_key),
        "TransformResources": _with_key({"InstanceType": params["transform_instance_type"], "InstanceCount": 1},
                                        "VolumeKmsKeyId", kms_key),
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "None"},
        "Tags": resource_tags,
    }
