"""The exact requests the pipeline sends, checked against botocore's SageMaker service model."""

from __future__ import annotations

from datetime import UTC

import botocore.session
import pytest
from botocore.validate import ParamValidator

from sagemaker_retrain import algorithms, config
from sagemaker_retrain.images import LINEAR_LEARNER_ACCOUNTS, linear_learner_image
from sagemaker_retrain.naming import resource_name, run_slug

PARAMS = {
    "predictor_type": "regressor", "num_classes": None, "mini_batch_size": 30, "epochs": 15,
    "learning_rate": None, "wd": 0.01, "l1": None, "num_models": None, "normalize_data": True,
    "use_bias": True, "early_stopping_patience": 3, "training_instance_type": "ml.m5.large",
    "training_instance_count": 1, "max_runtime_seconds": 3600, "endpoint_instance_type": "ml.m5.large",
    "endpoint_instance_count": 1,
}
TAGS = config.tags("ep", "manual__2026-11-26T10:00:00+00:00")


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("sagemaker")


def _valid(model, operation: str, request: dict) -> None:
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def _training(**overrides):
    return config.build_training_config(
        algorithm=algorithms.get("linear-learner"), job_name="ep-20261126-100000-abcdef", image=linear_learner_image("us-east-1"),
        role_arn="arn:aws:iam::123456789012:role/R",
        channel_uris={c: f"s3://b/p/input/{c}/" for c in config.CHANNELS}, output_uri="s3://b/p/output",
        params={**PARAMS, **overrides}, feature_dim=12, resource_tags=TAGS,
    )


def test_training_request_is_exact_and_valid(model):
    request = _training()
    _valid(model, "CreateTrainingJob", request)
    assert request["HyperParameters"] == {
        "feature_dim": "12", "predictor_type": "regressor", "mini_batch_size": "30", "epochs": "15",
        "wd": "0.01", "normalize_data": "true", "use_bias": "true", "early_stopping_patience": "3",
    }
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "validation", "test"]
    assert {c["ContentType"] for c in request["InputDataConfig"]} == {"text/csv"}
    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1")
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_multi_instance_training_shards_only_the_train_channel(model):
    request = _training(training_instance_count=3)
    _valid(model, "CreateTrainingJob", request)
    kinds = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
             for c in request["InputDataConfig"]}
    assert kinds == {"train": "ShardedByS3Key", "validation": "FullyReplicated", "test": "FullyReplicated"}


def test_num_classes_only_for_multiclass():
    assert "num_classes" not in _training(num_classes=4)["HyperParameters"]
    hps = _training(predictor_type="multiclass_classifier", num_classes=4)["HyperParameters"]
    assert hps["num_classes"] == "4"


def test_model_config_and_endpoint_requests_are_valid(model):
    image = linear_learner_image("eu-west-1")
    _valid(model, "CreateModel", config.build_model_config(
        algorithm=algorithms.get("linear-learner"), model_name="m", image=image, model_data_url="s3://b/k/model.tar.gz",
        role_arn="arn:aws:iam::123456789012:role/R", resource_tags=TAGS))
    endpoint_config = config.build_endpoint_config_config(config_name="c", model_name="m", params=PARAMS,
                                                          resource_tags=TAGS)
    _valid(model, "CreateEndpointConfig", endpoint_config)
    assert endpoint_config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    _valid(model, "CreateEndpoint", config.build_endpoint_request(endpoint_name="e", config_name="c",
                                                                  resource_tags=TAGS))
    _valid(model, "UpdateEndpoint", config.build_update_endpoint_request(endpoint_name="e", config_name="c"))


def test_instance_types_in_params_exist_in_botocore(model):
    training = model.shape_for("TrainingInstanceType").enum
    hosting = model.shape_for("ProductionVariantInstanceType").enum
    assert PARAMS["training_instance_type"] in training
    assert PARAMS["endpoint_instance_type"] in hosting


def test_image_for_every_region_and_unknown_region():
    for region in LINEAR_LEARNER_ACCOUNTS:
        assert linear_learner_image(region).split(".")[3] == region
    assert linear_learner_image("cn-north-1").endswith(".amazonaws.com.cn/linear-learner:1")
    with pytest.raises(ValueError, match="not published in region 'mars-1'"):
        linear_learner_image("mars-1")


def test_names_are_run_scoped_valid_and_stable():
    from datetime import datetime

    when = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    slug = run_slug("manual__2026-11-26T10:00:00+00:00", when)
    assert slug == run_slug("manual__2026-11-26T10:00:00+00:00", when)
    assert slug != run_slug("scheduled__2026-11-26T10:00:00+00:00", when)
    name = resource_name("x" * 80, slug)
    assert len(name) == 63 and name.endswith(slug)
    with pytest.raises(ValueError):
        resource_name("bad_name", slug)


def test_per_channel_content_types(model):
    types = {"train": "application/x-recordio-protobuf", "validation": "application/x-recordio-protobuf",
             "test": "text/csv"}
    request = config.build_training_config(
        algorithm=algorithms.get("linear-learner"), job_name="j", image=linear_learner_image("us-east-1"), role_arn="arn:aws:iam::123456789012:role/R",
        channel_uris={c: f"s3://b/p/{c}/" for c in config.CHANNELS}, output_uri="s3://b/o", params=PARAMS,
        feature_dim=12, resource_tags=TAGS, content_type=types)
    _valid(model, "CreateTrainingJob", request)
    assert {c["ChannelName"]: c["ContentType"] for c in request["InputDataConfig"]} == types


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _transform(**kwargs) -> dict:
    return config.build_transform_config(
        algorithm=algorithms.get("linear-learner"), job_name="t", model_name="m", input_uri="s3://b/test/",
        output_uri="s3://b/out/", params={**PARAMS, "transform_instance_type": "ml.m5.large"}, resource_tags=TAGS,
        **kwargs)


def _endpoint_config(**kwargs) -> dict:
    return config.build_endpoint_config_config(config_name="c", model_name="m", params=PARAMS, resource_tags=TAGS,
                                               **kwargs)


def _fields_naming(request, key: str) -> set[str]:
    """Dotted paths of every field of ``request`` whose value is ``key``."""
    if isinstance(request, dict):
        return {f"{k}.{p}" if p else k for k, v in request.items() for p in _fields_naming(v, key)}
    return {""} if request == key else set()


def test_without_a_kms_key_no_request_names_one():
    for request in (_training(), _transform(), _endpoint_config(), _transform(kms_key=""), _endpoint_config(kms_key="")):
        assert "Kms" not in str(request)


def test_a_kms_key_encrypts_the_volumes_and_outputs_of_every_create_that_spends(model):
    from offline_aws.sagemaker.authorization import spend_context  # the condition keys AWS would evaluate

    training = config.build_training_config(
        algorithm=algorithms.get("linear-learner"), job_name="j", image=linear_learner_image("us-east-1"),
        role_arn="arn:aws:iam::123456789012:role/R", channel_uris={c: f"s3://b/p/input/{c}/" for c in config.CHANNELS},
        output_uri="s3://b/p/output", params=PARAMS, feature_dim=12, resource_tags=TAGS, kms_key=KEY)
    expected = {
        "CreateTrainingJob": (training, {"ResourceConfig.VolumeKmsKeyId", "OutputDataConfig.KmsKeyId"}),
        "CreateTransformJob": (_transform(kms_key=KEY), {"TransformResources.VolumeKmsKeyId", "TransformOutput.KmsKeyId"}),
        "CreateEndpointConfig": (_endpoint_config(kms_key=KEY), {"KmsKeyId"}),
    }
    for operation, (request, fields) in expected.items():
        _valid(model, operation, request)
        assert _fields_naming(request, KEY) == fields, operation
        context = spend_context(operation, request)
        assert context["sagemaker:VolumeKmsKey"] == KEY, operation
        if operation != "CreateEndpointConfig":
            assert context["sagemaker:OutputKmsKey"] == KEY, operation
