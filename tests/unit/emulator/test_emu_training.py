"""Training jobs in the backend (no HTTP): the state machine, the real training and each failure rule."""

from __future__ import annotations

import time

import boto3
import pytest
from emu_helpers import BUCKET, housing_split, training_request, wait_for, wait_job

from offline_aws.linear_learner.data import encode_recordio_protobuf
from offline_aws.sagemaker.exceptions import SageMakerError, ValidationException


def test_housing_trains_through_every_secondary_status(backend):
    started = time.monotonic()
    backend.create_training_job(training_request("housing-1"))
    desc = wait_job(backend, "housing-1")
    assert time.monotonic() - started < 3.0
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["SecondaryStatus"] == "Completed"
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    for transition in desc["SecondaryStatusTransitions"]:
        assert transition["StatusMessage"] and transition["EndTime"] >= transition["StartTime"]
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]
    assert desc["TrainingTimeInSeconds"] >= 1 and desc["BillableTimeInSeconds"] >= 1
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["validation:rmse"] <= 3.9
    assert "train:objective_loss" in metrics
    assert all("Timestamp" in m for m in desc["FinalMetricDataList"])
    artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/output/housing-1/output/model.tar.gz"
    boto3.client("s3", region_name="us-east-1").head_object(Bucket=BUCKET, Key="output/housing-1/output/model.tar.gz")


def test_training_log_goes_to_cloudwatch(backend):
    backend.create_training_job(training_request("logged"))
    assert wait_job(backend, "logged")["TrainingJobStatus"] == "Completed"
    logs = boto3.client("logs", region_name="us-east-1")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="logged/"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith("logged/algo-1-")
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams[0]["logStreamName"]
    )["events"]
    text = "\n".join(e["message"] for e in events)
    assert "Docker entrypoint called with argument(s): train" in text
    assert "validation rmse" in text


def test_sharded_prefix_and_recordio_channel(backend, aws):
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    aws.put_object(Bucket=BUCKET, Key="rio/train/a.pbr", Body=encode_recordio_protobuf(Xtr[:200], ytr[:200]))
    aws.put_object(Bucket=BUCKET, Key="rio/train/b.pbr", Body=encode_recordio_protobuf(Xtr[200:], ytr[200:]))
    req = training_request("rio", channels=("train",), content_type="application/x-recordio-protobuf")
    source = req["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    source.update(S3Uri=f"s3://{BUCKET}/rio/train", S3DataDistributionType="ShardedByS3Key")
    backend.create_training_job(req)
    desc = wait_job(backend, "rio")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert any(m["MetricName"] == "train:objective_loss" for m in desc["FinalMetricDataList"])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"content_type": "csv"}, "ClientError: No iterator has been registered for ContentType ('csv', '1.0')"),
        (
            {"hyperparameters": {"predictor_type": "regressor", "feature_dim": "12", "bogus_knob": "1"}},
            "bogus_knob",
        ),
        ({"hyperparameters": {"predictor_type": "regressor", "feature_dim": "12", "mini_batch_size": "x"}},
         "mini_batch_size"),
        ({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"}, "ClientError: The image '123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1' does not exist"),
        ({"channels": ("validation",)}, "'train' channel is required"),
        ({"channels": ("train", "extra")}, "Unexpected channel 'extra'"),
    ],
)
def test_bad_jobs_fail_with_a_reason(backend, overrides, reason):
    backend.create_training_job(training_request("bad", **overrides))
    desc = wait_job(backend, "bad")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["SecondaryStatus"] == "Failed"
    assert reason in desc["FailureReason"]
    assert desc["SecondaryStatusTransitions"][-1]["Status"] == "Failed"


def test_missing_input_prefix_fails_like_aws(backend):
    req = training_request("empty", channels=("train",))
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/nothing/here"
    backend.create_training_job(req)
    desc = wait_job(backend, "empty")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "No S3 objects found under S3 URL" in desc["FailureReason"]


def test_duplicate_training_job_name_is_resource_in_use(backend):
    backend.create_training_job(training_request("twice"))
    with pytest.raises(SageMakerError) as err:
        backend.create_training_job(training_request("TWICE"))
    assert err.value.code == "ResourceInUse"
    assert "arn:aws:sagemaker:us-east-1:123456789012:training-job/twice" in err.value.message


def test_describe_and_stop_unknown_job(backend):
    for call in (backend.describe_training_job, backend.stop_training_job):
        with pytest.raises(ValidationException, match="Requested resource not found."):
            call(TrainingJobName="ghost")


def test_stop_goes_stopping_then_stopped(backend):
    backend.clock.time_scale = 1000  # hold the job in Starting
    backend.create_training_job(training_request("halt"))
    assert backend.describe_training_job(TrainingJobName="halt")["TrainingJobStatus"] == "InProgress"
    backend.stop_training_job(TrainingJobName="halt")
    seen = backend.describe_training_job(TrainingJobName="halt")["TrainingJobStatus"]
    assert seen in ("Stopping", "Stopped")
    desc = wait_job(backend, "halt")
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "Stopping" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    with pytest.raises(ValidationException, match="in status Stopped"):
        backend.stop_training_job(TrainingJobName="halt")


def test_phases_take_scaled_time(backend):
    backend.clock.time_scale = 0.05  # Starting 2 s -> 0.1 s, Downloading -> 0.1 s, Uploading -> 0.05 s
    started = time.monotonic()
    backend.create_training_job(training_request("paced"))
    assert backend.describe_training_job(TrainingJobName="paced")["SecondaryStatus"] == "Starting"
    wait_for(lambda: backend.describe_training_job(TrainingJobName="paced")["SecondaryStatus"] != "Starting")
    assert wait_job(backend, "paced")["TrainingJobStatus"] == "Completed"
    assert time.monotonic() - started >= 0.25


def test_injected_training_failure(backend):
    backend.faults.configure({"fail_next_training_job": "InternalServerError: injected"})
    backend.create_training_job(training_request("doomed"))
    backend.create_training_job(training_request("fine"))
    assert wait_job(backend, "doomed")["FailureReason"] == "InternalServerError: injected"
    assert wait_job(backend, "fine")["TrainingJobStatus"] == "Completed"


def test_list_training_jobs_filters_sorts_and_pages(backend):
    for name in ("alpha-1", "beta-1", "alpha-2"):
        backend.create_training_job(training_request(name, content_type="csv" if name == "beta-1" else "text/csv"))
    for name in ("alpha-1", "beta-1", "alpha-2"):
        wait_job(backend, name)
    names = [s["TrainingJobName"] for s in backend.list_training_jobs()["TrainingJobSummaries"]]
    assert names == ["alpha-2", "beta-1", "alpha-1"]  # CreationTime, Descending by default
    page = backend.list_training_jobs(NameContains="ALPHA", SortBy="Name", SortOrder="Ascending", MaxResults=1)
    assert [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] == ["alpha-1"]
    rest = backend.list_training_jobs(
        NameContains="ALPHA", SortBy="Name", SortOrder="Ascending", MaxResults=1, NextToken=page["NextToken"]
    )
    assert [s["TrainingJobName"] for s in rest["TrainingJobSummaries"]] == ["alpha-2"]
    assert "NextToken" not in rest
    failed = backend.list_training_jobs(StatusEquals="Failed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in failed] == ["beta-1"]
