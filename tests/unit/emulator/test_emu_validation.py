"""Request validation against botocore's input shapes, and response shapes against its output shapes."""

from __future__ import annotations

import pytest
from emu_helpers import IMAGE, ROLE, shape_problems, training_request, wait_endpoint, wait_job

from offline_aws.sagemaker.exceptions import SageMakerError, ValidationException
from offline_aws.sagemaker.validation import enum_values


def test_training_instance_type_outside_the_enum_uses_aws_message(backend):
    req = training_request("x")
    req["ResourceConfig"]["InstanceType"] = "ml.banana.large"
    with pytest.raises(ValidationException) as err:
        backend.create_training_job(req)
    expected = (
        "1 validation error detected: Value 'ml.banana.large' at 'resourceConfig.instanceType' failed to "
        "satisfy constraint: Member must satisfy enum value set: [" + ", ".join(enum_values("TrainingInstanceType")) + "]"
    )
    assert err.value.message == expected
    assert backend.list_training_jobs()["TrainingJobSummaries"] == []


def test_endpoint_config_instance_type_uses_the_production_variant_enum(backend, trained_model):
    with pytest.raises(ValidationException) as err:
        backend.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {"VariantName": "v", "ModelName": trained_model, "InstanceType": "ml.p9.huge", "InitialInstanceCount": 1}
            ],
        )
    assert "Value 'ml.p9.huge' at 'productionVariants.1.member.instanceType'" in err.value.message
    assert "Member must satisfy enum value set: [" in err.value.message
    assert "ml.t2.medium" in err.value.message  # a ProductionVariantInstanceType, not a training one


@pytest.mark.parametrize(
    ("name", "constraint"),
    [
        ("has space", "Member must satisfy regular expression pattern"),
        ("x" * 64, "Member must have length less than or equal to 63"),
        ("-leading", "Member must satisfy regular expression pattern"),
    ],
)
def test_bad_names_are_rejected(backend, name, constraint):
    with pytest.raises(ValidationException, match=constraint):
        backend.create_training_job(training_request(name))
    with pytest.raises(ValidationException, match=constraint):
        backend.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})


def test_required_members_and_types(backend):
    with pytest.raises(ValidationException, match="Value null at 'roleArn' failed to satisfy constraint: Member must not be null"):
        req = training_request("x")
        del req["RoleArn"]
        backend.create_training_job(req)
    with pytest.raises(SageMakerError) as err:
        backend.create_training_job(training_request("x", ResourceConfig={"InstanceType": 5, "InstanceCount": 1}))
    assert err.value.code == "SerializationException"
    with pytest.raises(ValidationException, match="Member must have value greater than or equal to 1"):
        req = training_request("x")
        req["StoppingCondition"]["MaxRuntimeInSeconds"] = 0
        backend.create_training_job(req)


def test_list_sort_by_is_checked_against_the_enum(backend):
    with pytest.raises(ValidationException, match="at 'sortBy'"):
        backend.list_training_jobs(SortBy="Size")


@pytest.fixture
def trained_model(backend):
    backend.create_training_job(training_request("ll"))
    url = wait_job(backend, "ll")["ModelArtifacts"]["S3ModelArtifacts"]
    backend.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url})
    return "m"


def test_every_output_matches_botocore_output_shape(backend, trained_model):
    backend.create_training_job(training_request("failing", content_type="csv"))
    wait_job(backend, "failing")
    backend.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    backend.create_endpoint(EndpointName="e", EndpointConfigName="c")
    wait_endpoint(backend, "e")
    arn = backend.describe_model(ModelName="m")["ModelArn"]
    calls = {
        "DescribeTrainingJob": {"TrainingJobName": "ll"},
        "ListTrainingJobs": {},
        "DescribeModel": {"ModelName": "m"},
        "ListModels": {},
        "DescribeEndpointConfig": {"EndpointConfigName": "c"},
        "ListEndpointConfigs": {},
        "DescribeEndpoint": {"EndpointName": "e"},
        "ListEndpoints": {},
        "ListTags": {"ResourceArn": arn},
    }
    for operation, params in calls.items():
        assert shape_problems(operation, backend.call(operation, params)) == [], operation
    assert shape_problems("DescribeTrainingJob", backend.describe_training_job(TrainingJobName="failing")) == []
