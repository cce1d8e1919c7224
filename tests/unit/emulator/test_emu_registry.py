"""Model Registry in the backend: groups, versioned packages, approval, listing, models from packages."""

from __future__ import annotations

import json

import pytest
from emu_helpers import IMAGE, ROLE, housing_split, training_request, wait_endpoint, wait_job

from offline_aws.sagemaker.exceptions import ValidationException

GROUP = "housing"


def _spec(url: str = "s3://offline-bucket/output/ll/output/model.tar.gz", image: str = IMAGE) -> dict:
    return {"Containers": [{"Image": image, "ModelDataUrl": url}], "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"]}


def _package(backend, **extra) -> str:
    return backend.create_model_package(ModelPackageGroupName=GROUP, InferenceSpecification=_spec(),
                                        **extra)["ModelPackageArn"]


@pytest.fixture
def group(backend):
    backend.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="d",
                                       Tags=[{"Key": "sagemaker-retrain:endpoint", "Value": GROUP}])
    return GROUP


def test_group_create_describe_tags_and_duplicate(backend, group):
    desc = backend.describe_model_package_group(ModelPackageGroupName=GROUP)
    arn = f"arn:aws:sagemaker:us-east-1:{backend.account_id}:model-package-group/housing"
    assert desc["ModelPackageGroupArn"] == arn and desc["ModelPackageGroupStatus"] == "Completed"
    assert backend.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "sagemaker-retrain:endpoint", "Value": GROUP}]
    with pytest.raises(ValidationException, match="already exists"):
        backend.create_model_package_group(ModelPackageGroupName=GROUP)
    with pytest.raises(ValidationException, match="does not exist"):
        backend.describe_model_package_group(ModelPackageGroupName="nope")
    with pytest.raises(ValidationException, match="failed to satisfy constraint"):
        backend.create_model_package_group(ModelPackageGroupName="bad_name!")


def test_versions_arns_defaults_and_client_token(backend, group):
    arns = [_package(backend, ClientToken=f"token-{i}") for i in range(3)]
    base = f"arn:aws:sagemaker:us-east-1:{backend.account_id}:model-package/housing"
    assert arns == [f"{base}/1", f"{base}/2", f"{base}/3"]
    assert _package(backend, ClientToken="token-1") == f"{base}/2"  # idempotent: no version 4
    desc = backend.describe_model_package(ModelPackageName=arns[0])
    assert desc["ModelPackageVersion"] == 1 and desc["ModelPackageGroupName"] == GROUP
    assert desc["ModelApprovalStatus"] == "PendingManualApproval" and desc["ModelPackageStatus"] == "Completed"
    assert backend.describe_model_package(ModelPackageName="housing/3")["ModelPackageArn"] == arns[2]
    backend.delete_model_package(ModelPackageName=arns[2])
    assert _package(backend) == f"{base}/4"  # a version number is never reused


def test_create_package_validation(backend, group):
    with pytest.raises(ValidationException, match="Exactly one"):
        backend.create_model_package(InferenceSpecification=_spec())
    with pytest.raises(ValidationException, match="does not exist"):
        backend.create_model_package(ModelPackageGroupName="missing", InferenceSpecification=_spec())
    with pytest.raises(ValidationException, match="enum value set"):
        _package(backend, ModelApprovalStatus="Maybe")
    with pytest.raises(ValidationException, match="inferenceSpecification.containers"):
        backend.create_model_package(ModelPackageGroupName=GROUP, InferenceSpecification={})
    with pytest.raises(ValidationException, match="modelMetrics.modelQuality.statistics.s3Uri"):
        _package(backend, ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json"}}})
    with pytest.raises(ValidationException, match="regular expression"):  # metadata values: no parentheses
        _package(backend, CustomerMetadataProperties={"gate": "rmse (3.1)"})


def test_approval_transitions_and_metadata(backend, group):
    arn = _package(backend, CustomerMetadataProperties={"run-id": "r1"})
    backend.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"gate-decision": "promote"})
    backend.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                 ApprovalDescription="approved by admin: looks good")
    desc = backend.describe_model_package(ModelPackageName=arn)
    assert desc["ModelApprovalStatus"] == "Approved"
    assert desc["ApprovalDescription"] == "approved by admin: looks good"
    assert desc["CustomerMetadataProperties"] == {"run-id": "r1", "gate-decision": "promote"}
    assert "LastModifiedTime" in desc
    with pytest.raises(ValidationException, match="cannot go back"):
        backend.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval")
    with pytest.raises(ValidationException, match="only be updated with ModelApprovalStatus"):
        backend.update_model_package(ModelPackageArn=arn, ApprovalDescription="x")
    backend.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="no")
    backend.update_model_package(ModelPackageArn=arn, CustomerMetadataPropertiesToRemove=["run-id"])
    desc = backend.describe_model_package(ModelPackageName=arn)
    assert desc["ModelApprovalStatus"] == "Rejected" and desc["CustomerMetadataProperties"] == {
        "gate-decision": "promote"}


def test_list_packages_filters_sort_pagination(backend, group):
    arns = [_package(backend) for _ in range(5)]
    backend.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved")
    backend.update_model_package(ModelPackageArn=arns[3], ModelApprovalStatus="Approved")
    listed = backend.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert [p["ModelPackageVersion"] for p in listed] == [5, 4, 3, 2, 1]  # newest first, as AWS
    approved = backend.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved",
                                           SortOrder="Ascending")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in approved] == [arns[1], arns[3]]
    page = backend.list_model_packages(ModelPackageGroupName=GROUP, MaxResults=2, SortOrder="Ascending")
    seen = [p["ModelPackageVersion"] for p in page["ModelPackageSummaryList"]]
    while page.get("NextToken"):
        page = backend.list_model_packages(ModelPackageGroupName=GROUP, MaxResults=2, SortOrder="Ascending",
                                           NextToken=page["NextToken"])
        seen += [p["ModelPackageVersion"] for p in page["ModelPackageSummaryList"]]
    assert seen == [1, 2, 3, 4, 5]
    assert backend.list_model_packages(ModelPackageType="Unversioned")["ModelPackageSummaryList"] == []
    groups = backend.list_model_package_groups(NameContains="HOUS")["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == [GROUP]
    with pytest.raises(ValidationException, match="contains model packages"):
        backend.delete_model_package_group(ModelPackageGroupName=GROUP)
    for arn in arns:
        backend.delete_model_package(ModelPackageName=arn)
    backend.delete_model_package_group(ModelPackageGroupName=GROUP)
    assert backend.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_model_from_package_serves_the_package_artifact(backend, group):
    backend.create_training_job(training_request("ll"))
    artifact = wait_job(backend, "ll")["ModelArtifacts"]["S3ModelArtifacts"]
    group_arn = backend.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupArn"]
    backend.add_tags(ResourceArn=group_arn, Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(ValidationException, match="uses the tags associated with its group"):
        backend.create_model_package(ModelPackageGroupName=GROUP, InferenceSpecification=_spec(artifact),
                                     Tags=[{"Key": "own", "Value": "x"}])  # botocore: "you cannot supply a tag"
    arn = backend.create_model_package(ModelPackageGroupName=GROUP, InferenceSpecification=_spec(artifact))[
        "ModelPackageArn"]
    tags = backend.list_tags(ResourceArn=arn)["Tags"]
    assert {"Key": "k", "Value": "v"} in tags and tags == backend.list_tags(ResourceArn=group_arn)["Tags"]
    with pytest.raises(ValidationException, match="does not exist"):
        backend.create_model(ModelName="m0", ExecutionRoleArn=ROLE, Containers=[{"ModelPackageName": f"{arn}0"}])
    backend.create_model(ModelName="m1", ExecutionRoleArn=ROLE, Containers=[{"ModelPackageName": arn}])
    assert backend.describe_model(ModelName="m1")["Containers"][0]["ModelPackageName"] == arn
    backend.create_endpoint_config(EndpointConfigName="c1", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "m1", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    backend.create_endpoint(EndpointName="e1", EndpointConfigName="c1")
    assert wait_endpoint(backend, "e1")["EndpointStatus"] == "InService"
    _, _, (_, X) = housing_split()
    body, _, _ = backend.invoke_endpoint("e1", ",".join(repr(float(v)) for v in X[0]).encode(), "text/csv",
                                         "application/json")
    assert isinstance(json.loads(body)["predictions"][0]["score"], float)
