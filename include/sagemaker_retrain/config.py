"""Plain functions that build the exact requests sent to SageMaker.

Keeping them as dict builders makes each request visible, and testable against botocore's
service model, without any AWS call.
"""

from __future__ import annotations

from collections.abc import Mapping

TAG_ENDPOINT = "sagemaker-retrain:endpoint"
TAG_RUN = "sagemaker-retrain:run-id"
TAG_TRAINING_JOB = "sagemaker-retrain:training-job"
TAG_PREVIOUS_CONFIG = "sagemaker-retrain:previous-config"
CHANNELS = ("train", "validation", "test")

# Params that map one-to-one onto Linear Learner hyperparameters ("None" means AWS's auto).
_HYPERPARAMETER_PARAMS = (
    "predictor_type", "num_classes", "mini_batch_size", "epochs", "learning_rate", "wd", "l1",
    "num_models", "normalize_data", "use_bias", "early_stopping_patience",
)


def _hp_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def build_hyperparameters(params: Mapping, feature_dim: int) -> dict[str, str]:
    """Linear Learner hyperparameters (strings, as the API wants them); unset params stay 'auto'."""
    hps = {"feature_dim": str(feature_dim)}
    for name in _HYPERPARAMETER_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        if name == "num_classes" and params.get("predictor_type") != "multiclass_classifier":
            continue
        hps[name] = _hp_value(value)
    return hps


def tags(endpoint_name: str, run_id: str, **extra: str) -> list[dict[str, str]]:
    """Tags that let teardown find what a run created, on AWS as in the emulator."""
    out = [{"Key": TAG_ENDPOINT, "Value": endpoint_name}, {"Key": TAG_RUN, "Value": run_id}]
    out += [{"Key": f"sagemaker-retrain:{k.replace('_', '-')}", "Value": v} for k, v in extra.items()]
    return out


def build_training_config(
    *,
    job_name: str,
    image: str,
    role_arn: str,
    channel_uris: Mapping[str, str],
    output_uri: str,
    params: Mapping,
    feature_dim: int,
    resource_tags: list[dict[str, str]],
    content_type: str | Mapping[str, str] = "text/csv",
) -> dict:
    """CreateTrainingJob request: Linear Learner on the train/validation/test channels.

    ``content_type`` is one type for every channel or a per-channel mapping (RecordIO training
    data keeps a CSV test channel, which evaluation reads back).
    """
    types = content_type if isinstance(content_type, Mapping) else dict.fromkeys(CHANNELS, content_type)
    distribution = "ShardedByS3Key" if int(params["training_instance_count"]) > 1 else "FullyReplicated"
    channels = []
    for name in CHANNELS:
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
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": params["training_instance_type"],
            "InstanceCount": int(params["training_instance_count"]),
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(params["max_runtime_seconds"])},
        "HyperParameters": build_hyperparameters(params, feature_dim),
        "Tags": resource_tags,
    }


def build_model_config(
    *, model_name: str, image: str, model_data_url: str, role_arn: str, resource_tags: list[dict[str, str]]
) -> dict:
    """CreateModel request: the training job's artifact behind the same Linear Learner image."""
    return {
        "ModelName": model_name,
        "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data_url},
        "ExecutionRoleArn": role_arn,
        "Tags": resource_tags,
    }


def build_endpoint_config_config(
    *, config_name: str, model_name: str, params: Mapping, resource_tags: list[dict[str, str]]
) -> dict:
    """CreateEndpointConfig request: one production variant serving the run's model."""
    return {
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
    }


def build_endpoint_request(
    *, endpoint_name: str, config_name: str, resource_tags: list[dict[str, str]] | None = None
) -> dict:
    """CreateEndpoint request (UpdateEndpoint takes the same minus Tags)."""
    request = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
    if resource_tags:
        request["Tags"] = resource_tags
    return request


def build_update_endpoint_request(*, endpoint_name: str, config_name: str) -> dict:
    """UpdateEndpoint request: blue/green switch to ``config_name``; the old config serves until then."""
    return {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
