"""Which data trained the model behind an endpoint, from the records alone (requests checked by botocore)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sagemaker_retrain import lineage

SHA = "ab" * 32
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
PACKAGE = f"{ARN}:model-package/ep/3"


def _stub_chain(sm, *, job_sha: str | None = SHA, package_meta: dict | None = None):
    stub = Stubber(sm)
    stub.add_response("describe_endpoint", {
        "EndpointName": "ep", "EndpointArn": f"{ARN}:endpoint/ep", "EndpointConfigName": "cfg-2",
        "EndpointStatus": "InService", "CreationTime": datetime.now(UTC), "LastModifiedTime": datetime.now(UTC)},
        {"EndpointName": "ep"})
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": "cfg-2", "EndpointConfigArn": f"{ARN}:endpoint-config/cfg-2",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "model-2"}],
        "CreationTime": datetime.now(UTC)}, {"EndpointConfigName": "cfg-2"})
    stub.add_response("describe_model", {
        "ModelName": "model-2", "ModelArn": f"{ARN}:model/model-2", "CreationTime": datetime.now(UTC),
        "PrimaryContainer": {"ModelPackageName": PACKAGE}}, {"ModelName": "model-2"})
    stub.add_response("list_tags", {"Tags": [{"Key": "sagemaker-retrain:training-job", "Value": "job-2"},
                                             {"Key": "sagemaker-retrain:run-id", "Value": "run-2"}]},
                      {"ResourceArn": f"{ARN}:model/model-2"})
    meta = package_meta if package_meta is not None else {
        "dataset-uri": "s3://b/incoming/d.csv", "dataset-sha256": SHA, "dataset-version-id": "v9",
        "dataset-etag": "e1", "rows-train": "400", "rows-test": "51", "split-seed": "42", "run-slug": "slug-2"}
    stub.add_response("describe_model_package", {
        "ModelPackageName": "ep", "ModelPackageArn": PACKAGE, "CreationTime": datetime.now(UTC),
        "ModelPackageStatus": "Completed", "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "CustomerMetadataProperties": meta}, {"ModelPackageName": PACKAGE})
    stub.add_response("describe_training_job", {
        "TrainingJobName": "job-2", "TrainingJobArn": f"{ARN}:training-job/job-2", "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed", "CreationTime": datetime.now(UTC),
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
        "AlgorithmSpecification": {"TrainingInputMode": "File"}, "ResourceConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60}}, {"TrainingJobName": "job-2"})
    stub.add_response("list_tags", {"Tags": [{"Key": lineage.TAG_DATA_SHA256, "Value": job_sha}] if job_sha else []},
                      {"ResourceArn": f"{ARN}:training-job/job-2"})
    return stub


@pytest.fixture
def sm():
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_endpoint_to_data_through_every_record(sm):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="pre/history/ep/slug-2.json", Body=json.dumps({
            "dataset_uri": "s3://b/incoming/d.csv", "data_source": {"sha256": SHA, "bytes": 1234}}).encode())
        with _stub_chain(sm) as stub:
            answer = lineage.data_behind_endpoint(sm, "ep", s3=s3, bucket="bkt", prefix="pre")
            stub.assert_no_pending_responses()
    assert (answer["endpoint_config"], answer["model"], answer["model_package"]) == ("cfg-2", "model-2", PACKAGE)
    assert (answer["training_job"], answer["run_id"]) == ("job-2", "run-2")
    assert answer["records"] == {"model_package": SHA, "training_job": SHA, "history": SHA}
    assert answer["consistent"] is True
    assert answer["data"] == {"uri": "s3://b/incoming/d.csv", "sha256": SHA, "etag": "e1", "version_id": "v9",
                              "split_seed": "42", "rows": {"train": 400, "test": 51}, "bytes": 1234}
    assert answer["history"] == "s3://bkt/pre/history/ep/slug-2.json"


def test_records_that_disagree_are_flagged(sm):
    with _stub_chain(sm, job_sha="cd" * 32):
        answer = lineage.data_behind_endpoint(sm, "ep")
    assert answer["consistent"] is False
    assert answer["data"]["sha256"] == SHA  # the registry's, with the disagreement shown beside it


def test_training_tags_fit_the_tag_limits():
    tags = lineage.training_tags({"sha256": SHA, "version_id": "v" * 300, "etag": None})
    assert tags == {"data_sha256": SHA, "data_version_id": "v" * 256}
