"""Batch Transform in the backend: create rules, the state machine, formats, filters, joins, faults."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from emu_helpers import BUCKET, IMAGE, ROLE, training_request, wait_for, wait_job

from offline_aws.linear_learner.data import encode_recordio_protobuf
from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
from offline_aws.sagemaker.exceptions import ValidationException

# score = 1*x0 + 2*x1 + 0.5: every expected number below is exact.
WEIGHTS = np.array([1.0, 2.0])
ROWS = [[1.0, 2.0], [3.0, 4.0], [0.5, 0.25]]
SCORES = [5.5, 11.5, 1.5]


@pytest.fixture
def model(backend, aws):
    ll = LinearLearnerModel("regressor", WEIGHTS, np.array([0.5]), loss="squared_loss")
    aws.put_object(Bucket=BUCKET, Key="models/ll/model.tar.gz", Body=write_model_tar_gz(ll))
    backend.create_model(ModelName="m", ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/ll/model.tar.gz"})
    return "m"


def _csv(rows) -> bytes:
    return "".join(",".join(repr(v) for v in row) + "\n" for row in rows).encode()


def _request(name: str, model: str = "m", *, prefix: str = "in/", content_type: str = "text/csv",
             split: str = "Line", accept: str = "text/csv", assemble: str = "Line", **extra) -> dict:
    req = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}"}},
            "ContentType": content_type,
            "SplitType": split,
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/out/{name}", "Accept": accept, "AssembleWith": assemble},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    req.update(extra)
    return req


def _wait(backend, name: str) -> dict:
    return wait_for(
        lambda: (d := backend.describe_transform_job(TransformJobName=name))["TransformJobStatus"]
        in ("Completed", "Failed", "Stopped") and d
    )


def _out(aws, key: str) -> str:
    return aws.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def _run(backend, aws, name, body=None, **kw) -> dict:
    if body is not None:
        aws.put_object(Bucket=BUCKET, Key=f"in-{name}/data.csv", Body=body)
        kw.setdefault("prefix", f"in-{name}/")
    backend.create_transform_job(_request(name, **kw))
    return _wait(backend, name)


# --- create rules ---------------------------------------------------------------------------
def test_create_describe_list_tags(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="in/a.csv", Body=_csv(ROWS))
    arn = backend.create_transform_job(
        _request("t1", Tags=[{"Key": "team", "Value": "ml"}], BatchStrategy="MultiRecord", MaxPayloadInMB=1)
    )["TransformJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:transform-job/t1"
    desc = _wait(backend, "t1")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ModelName"] == "m" and desc["BatchStrategy"] == "MultiRecord" and desc["MaxPayloadInMB"] == 1
    assert desc["TransformInput"]["CompressionType"] == "None"
    assert desc["DataProcessing"] == {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"}
    assert desc["TransformStartTime"] <= desc["TransformEndTime"]
    assert "LastModifiedTime" not in desc and "FailureReason" not in desc
    assert backend.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    backend.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "test"}])
    assert len(backend.list_tags(ResourceArn=arn)["Tags"]) == 2
    summaries = backend.list_transform_jobs(NameContains="T1", StatusEquals="Completed")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in summaries] == ["t1"]
    assert "LastModifiedTime" in summaries[0] and "TransformEndTime" in summaries[0]
    assert backend.list_transform_jobs(StatusEquals="Failed")["TransformJobSummaries"] == []


def test_list_sorts_and_paginates(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="in/a.csv", Body=_csv(ROWS))
    for name in ("p1", "p2", "p3"):
        backend.create_transform_job(_request(name))
        _wait(backend, name)
    page = backend.list_transform_jobs(SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [s["TransformJobName"] for s in page["TransformJobSummaries"]] == ["p1", "p2"]
    rest = backend.list_transform_jobs(SortBy="Name", SortOrder="Ascending", MaxResults=2, NextToken=page["NextToken"])
    assert [s["TransformJobName"] for s in rest["TransformJobSummaries"]] == ["p3"]
    assert "NextToken" not in rest


def test_duplicate_name_is_refused(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="in/a.csv", Body=_csv(ROWS))
    backend.create_transform_job(_request("dup"))
    with pytest.raises(ValidationException, match=r"a job with this name already exists \(arn:aws:sagemaker:"
                                                  r"us-east-1:123456789012:transform-job/dup\)"):
        backend.create_transform_job(_request("DUP"))


def test_missing_model_and_unknown_job(backend, model):
    with pytest.raises(ValidationException, match='Could not find model "arn:aws:sagemaker:us-east-1:123456789012:'
                                                  'model/nope"'):
        backend.create_transform_job(_request("t-missing", model="nope"))
    assert backend.transform_jobs == {}
    with pytest.raises(ValidationException, match="Could not find requested job with name ghost"):
        backend.describe_transform_job(TransformJobName="ghost")


def test_botocore_shapes_are_enforced(backend, model):
    bad = _request("t-bad")
    bad["TransformResources"]["InstanceType"] = "ml.m5.nope"
    with pytest.raises(ValidationException, match="at 'transformResources.instanceType' failed to satisfy"):
        backend.create_transform_job(bad)
    with pytest.raises(ValidationException, match="at 'transformInput.splitType' failed to satisfy"):
        backend.create_transform_job(_request("t-bad", split="Lines"))
    with pytest.raises(ValidationException, match="MaxPayloadInMB must be less than or equal to 100"):
        backend.create_transform_job(_request("t-bad", MaxPayloadInMB=101))
    with pytest.raises(ValidationException, match=r"MaxConcurrentTransforms \* MaxPayloadInMB"):
        backend.create_transform_job(_request("t-bad", MaxPayloadInMB=60, MaxConcurrentTransforms=2))


# --- predictions and formats ----------------------------------------------------------------
def test_csv_line_multirecord_one_out_per_input_object(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="in2/a.csv", Body=_csv(ROWS))
    aws.put_object(Bucket=BUCKET, Key="in2/sub/b.csv", Body=_csv(ROWS[:1]))
    desc = _run(backend, aws, "multi", prefix="in2/", BatchStrategy="MultiRecord")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert [float(v) for v in _out(aws, "out/multi/a.csv.out").split()] == SCORES
    assert _out(aws, "out/multi/sub/b.csv.out") == "5.5\n"


def test_single_record_json_accept_and_assemble_none(backend, model, aws):
    desc = _run(backend, aws, "single", _csv(ROWS), BatchStrategy="SingleRecord", accept="application/json",
                assemble="None")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    body = _out(aws, "out/single/data.csv.out")
    assert body == "".join(json.dumps({"predictions": [{"score": s}]}) for s in SCORES)


@pytest.mark.parametrize("content_type, payload", [
    ("application/jsonlines", "".join(json.dumps({"features": r}) + "\n" for r in ROWS).encode()),
    ("application/json", json.dumps({"instances": [{"features": r} for r in ROWS]}).encode()),
])
def test_json_inputs(backend, model, aws, content_type, payload):
    split = "Line" if content_type.endswith("lines") else "None"
    desc = _run(backend, aws, f"j{split.lower()}", payload, content_type=content_type, split=split,
                accept="application/jsonlines")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    lines = _out(aws, f"out/j{split.lower()}/data.csv.out").splitlines()
    assert [json.loads(line)["score"] for line in lines] == SCORES


def test_recordio_split_and_gzip_and_manifest(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="rio/x.rec", Body=gzip.compress(encode_recordio_protobuf(np.array(ROWS))))
    aws.put_object(Bucket=BUCKET, Key="rio/y.rec", Body=gzip.compress(encode_recordio_protobuf(np.array(ROWS[1:]))))
    aws.put_object(Bucket=BUCKET, Key="manifests/m.json",
                   Body=json.dumps([{"prefix": f"s3://{BUCKET}/rio/"}, "y.rec"]).encode())
    req = _request("rio", prefix="rio/", content_type="application/x-recordio-protobuf", split="RecordIO",
                   BatchStrategy="SingleRecord")
    req["TransformInput"]["CompressionType"] = "Gzip"
    backend.create_transform_job(req)
    desc = _wait(backend, "rio")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert [float(v) for v in _out(aws, "out/rio/x.rec.out").split()] == SCORES
    req = dict(req, TransformJobName="rio-manifest")
    req["TransformInput"] = dict(req["TransformInput"], DataSource={
        "S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": f"s3://{BUCKET}/manifests/m.json"}})
    req["TransformOutput"] = dict(req["TransformOutput"], S3OutputPath=f"s3://{BUCKET}/out/manifest/")
    backend.create_transform_job(req)
    assert _wait(backend, "rio-manifest")["TransformJobStatus"] == "Completed"
    assert [float(v) for v in _out(aws, "out/manifest/y.rec.out").split()] == SCORES[1:]


# --- MaxPayloadInMB ---------------------------------------------------------------------------
def test_record_over_max_payload_fails_the_job(backend, model, aws):
    big = _csv(ROWS * 60_000)  # ~1.2 MB, one record with SplitType None
    desc = _run(backend, aws, "big", big, split="None", MaxPayloadInMB=1)
    assert desc["TransformJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: Too much data for max payload size: record 1 of "
                                            f"s3://{BUCKET}/in-big/data.csv is")
    desc = _run(backend, aws, "big-lines", split="Line", prefix="in-big/", MaxPayloadInMB=1)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert len(_out(aws, "out/big-lines/data.csv.out").splitlines()) == 180_000


# --- DataProcessing ---------------------------------------------------------------------------
def test_csv_input_filter_join_and_output_filter(backend, model, aws):
    with_ids = "".join(f"id{i},{r[0]!r},{r[1]!r}\n" for i, r in enumerate(ROWS)).encode()
    desc = _run(backend, aws, "join", with_ids, DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"})
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert _out(aws, "out/join/data.csv.out").splitlines() == [
        f"id{i},{r[0]!r},{r[1]!r},{s!r}" for i, (r, s) in enumerate(zip(ROWS, SCORES, strict=True))
    ]
    desc = _run(backend, aws, "join-f", prefix="in-join/",
                DataProcessing={"InputFilter": "$[1,2]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert _out(aws, "out/join-f/data.csv.out").splitlines() == [f"id{i},{s!r}" for i, s in enumerate(SCORES)]


def test_jsonlines_join_under_sagemaker_output(backend, model, aws):
    payload = "".join(json.dumps({"id": i, "features": r}) + "\n" for i, r in enumerate(ROWS)).encode()
    desc = _run(backend, aws, "jl", payload, content_type="application/jsonlines", accept="application/jsonlines",
                DataProcessing={"InputFilter": "$['features']", "JoinSource": "Input",
                                "OutputFilter": "$['id','SageMakerOutput']"})
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    got = [json.loads(line) for line in _out(aws, "out/jl/data.csv.out").splitlines()]
    assert got == [{"id": i, "SageMakerOutput": {"score": s}} for i, s in enumerate(SCORES)]


def test_jsonlines_input_filter_must_send_features(backend, model, aws):
    payload = "".join(json.dumps({"id": i, "x": {"features": r}}) + "\n" for i, r in enumerate(ROWS)).encode()
    desc = _run(backend, aws, "jl2", payload, content_type="application/jsonlines", accept="application/jsonlines",
                DataProcessing={"InputFilter": "$.x", "OutputFilter": "$.score"})
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert [float(v) for v in _out(aws, "out/jl2/data.csv.out").split()] == SCORES


@pytest.mark.parametrize("path", ["$..features", "$[?(@.a)]", "features", "$.a..b"])
def test_unsupported_jsonpath_is_refused(backend, model, aws, path):
    desc = _run(backend, aws, "badpath", _csv(ROWS), DataProcessing={"InputFilter": path})
    assert desc["TransformJobStatus"] == "Failed"
    assert "JSONPath" in desc["FailureReason"]


def test_csv_join_needs_csv_accept_and_line_split(backend, model, aws):
    desc = _run(backend, aws, "jj", _csv(ROWS), accept="application/json", DataProcessing={"JoinSource": "Input"})
    assert (desc["TransformJobStatus"], "set TransformOutput Accept to text/csv" in desc["FailureReason"]) == (
        "Failed", True)
    desc = _run(backend, aws, "jn", split="None", prefix="in-jj/", DataProcessing={"JoinSource": "Input"})
    assert "needs SplitType Line" in desc["FailureReason"]


# --- failures, stop, faults -------------------------------------------------------------------
def test_wrong_feature_count_and_missing_input_fail_the_job(backend, model, aws):
    desc = _run(backend, aws, "wrong", b"1,2,3\n")
    assert desc["TransformJobStatus"] == "Failed"
    assert "Bad HTTP status received from algorithm: 400" in desc["FailureReason"]
    assert "feature_dim=2" in desc["FailureReason"]
    desc = _run(backend, aws, "empty", prefix="nothing-here/")
    assert desc["FailureReason"].startswith('ClientError: No S3 objects found under S3 URL "s3://offline-bucket/'
                                            'nothing-here/"')


def test_stop_goes_stopping_then_stopped_without_output(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="in/a.csv", Body=_csv(ROWS))
    backend.clock.time_scale = 1000  # hold the launch phase open
    backend.create_transform_job(_request("stopme"))
    backend.stop_transform_job(TransformJobName="stopme")
    assert backend.list_transform_jobs()["TransformJobSummaries"][0]["TransformJobStatus"] in ("Stopping", "Stopped")
    desc = _wait(backend, "stopme")
    assert desc["TransformJobStatus"] == "Stopped" and "FailureReason" not in desc
    assert "Contents" not in aws.list_objects_v2(Bucket=BUCKET, Prefix="out/stopme/")
    with pytest.raises(ValidationException, match="transform job is in status Stopped"):
        backend.stop_transform_job(TransformJobName="stopme")


def test_fail_next_transform_job_fault(backend, model, aws):
    aws.put_object(Bucket=BUCKET, Key="in/a.csv", Body=_csv(ROWS))
    backend.faults.configure({"fail_next_transform_job": "CapacityError: injected"})
    assert backend.faults.snapshot()["fail_next_transform_job"] == ["CapacityError: injected"]
    backend.create_transform_job(_request("f1"))
    desc = _wait(backend, "f1")
    assert (desc["TransformJobStatus"], desc["FailureReason"]) == ("Failed", "CapacityError: injected")
    backend.create_transform_job(_request("f2"))  # one-shot
    assert _wait(backend, "f2")["TransformJobStatus"] == "Completed"
    assert backend.summary()["transform_jobs"]["f1"] == {"status": "Failed", "failure_reason": "CapacityError: injected"}


def test_nan_weights_model_writes_nan_predictions(backend, aws):
    backend.faults.configure({"nan_weights_next_training_job": 1})
    backend.create_training_job(training_request("nan-ll"))
    artifact = wait_job(backend, "nan-ll")["ModelArtifacts"]["S3ModelArtifacts"]
    backend.create_model(ModelName="nan-m", ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact})
    rows = [[float(i)] * 12 for i in range(3)]
    desc = _run(backend, aws, "nan", _csv(rows), model="nan-m")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert _out(aws, "out/nan/data.csv.out").splitlines() == ["nan", "nan", "nan"]


def test_jsonpath_subset():
    from offline_aws.sagemaker.data_processing import FilterError, apply, join

    row = ["id", "1", "2", "3"]
    assert apply("$", row) == row
    assert apply("$[1:]", row) == ["1", "2", "3"]
    assert apply("$[:-1]", row) == ["id", "1", "2"]
    assert apply("$[0,-1]", row) == ["id", "3"]
    assert apply("$[2]", row) == "2"
    doc = {"id": 7, "features": [1, 2], "meta": {"a": 1}}
    assert apply("$.features", doc) == [1, 2]
    assert apply("$.meta.a", doc) == 1
    assert apply("$['id','features']", doc) == {"id": 7, "features": [1, 2]}
    assert apply("$.*", {"a": 1, "b": 2}) == [1, 2]
    assert join(["a", "1"], ["9.5"], csv=True) == ["a", "1", "9.5"]
    assert join({"id": 1}, {"score": 2}, csv=False) == {"id": 1, "SageMakerOutput": {"score": 2}}
    assert join([1, 2], {"score": 2}, csv=False) == {"SageMakerInput": [1, 2], "SageMakerOutput": {"score": 2}}
    for bad, doc_ in (("$.missing", doc), ("$[9]", row), ("$[0]", doc), ("$..a", doc), ("x", doc)):
        with pytest.raises(FilterError):
            apply(bad, doc_)
