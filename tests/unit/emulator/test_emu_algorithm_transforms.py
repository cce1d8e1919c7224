"""Batch transform jobs for XGBoost, k-NN and script mode: each model's own container answers, line by line."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import boto3
import numpy as np
import xgboost as xgb
from algo_helpers import (
    KNN_IMAGE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    artifact_members,
    csv_rows,
    shuffled,
    train_job,
)
from emu_helpers import BUCKET, ROLE, housing_split, wait_for
from sklearn.datasets import load_iris

IRIS_SCRIPT = Path(__file__).resolve().parents[3] / "include" / "models" / "scripts" / "iris_classifier" / "train.py"


def _transform(backend, name, model, body: bytes, *, accept, join=False, strategy="MultiRecord") -> str:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"tin-{name}/rows.csv", Body=body)
    request = {
        "TransformJobName": name, "ModelName": model, "BatchStrategy": strategy,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/tin-{name}/"}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/tout/{name}", "Accept": accept, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    if join:
        request["DataProcessing"] = {"JoinSource": "Input"}
    backend.create_transform_job(request)
    desc = wait_for(lambda: (d := backend.describe_transform_job(TransformJobName=name))["TransformJobStatus"]
                    in ("Completed", "Failed", "Stopped") and d, timeout=60)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    return s3.get_object(Bucket=BUCKET, Key=f"tout/{name}/rows.csv.out")["Body"].read().decode()


def _model(backend, name, image, desc, environment=None):
    container = {"Image": image, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]}
    if environment:
        container["Environment"] = environment
    backend.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)


def test_xgboost_transform_with_csv_join(backend):
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    desc = train_job(backend, "t-xgb", XGBOOST_IMAGE, {"num_round": "10"}, {"train": csv_rows(ytr, Xtr)})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    booster = xgb.Booster()
    booster.load_model(bytearray(artifact_members(desc)["xgboost-model"]))
    expected = booster.predict(xgb.DMatrix(Xva))
    _model(backend, "t-xgb", XGBOOST_IMAGE, desc)
    body = csv_rows(None, Xva)
    out = _transform(backend, "t-xgb", "t-xgb", body, accept="text/csv", strategy="SingleRecord")
    np.testing.assert_allclose([float(v) for v in out.split()], expected, rtol=1e-6)
    joined = _transform(backend, "t-xgb-join", "t-xgb", body, accept="text/csv", join=True).splitlines()
    assert len(joined) == len(Xva)
    assert joined[0].startswith(body.decode().splitlines()[0] + ",")
    assert float(joined[0].rsplit(",", 1)[1]) == float(out.split()[0])


def test_knn_transform_answers_json_lines(backend):
    X, y = shuffled(*load_iris(return_X_y=True), seed=3)
    hps = {"k": "3", "sample_size": "200", "feature_dim": "4", "predictor_type": "classifier"}
    desc = train_job(backend, "t-knn", KNN_IMAGE, hps, {"train": csv_rows(y[:120], X[:120])})
    _model(backend, "t-knn", KNN_IMAGE, desc)
    out = _transform(backend, "t-knn", "t-knn", csv_rows(None, X[120:]), accept="application/jsonlines")
    labels = [json.loads(line)["predicted_label"] for line in out.splitlines()]
    assert len(labels) == 30
    assert np.mean(np.array(labels) == y[120:]) >= 0.9


def test_script_mode_transform_loads_model_fn_from_the_uploaded_code(backend):
    X, y = shuffled(*load_iris(return_X_y=True), seed=5)
    code = io.BytesIO()
    with tarfile.open(fileobj=code, mode="w:gz") as tar:
        tar.add(IRIS_SCRIPT, arcname="train.py")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="t-code/sourcedir.tar.gz", Body=code.getvalue())
    submit = f"s3://{BUCKET}/t-code/sourcedir.tar.gz"
    desc = train_job(backend, "t-sk", SKLEARN_IMAGE,
                     {"sagemaker_program": json.dumps("train.py"), "sagemaker_submit_directory": json.dumps(submit),
                      "n_estimators": "10"},
                     {"train": csv_rows(y[:120], X[:120])})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    _model(backend, "t-sk", SKLEARN_IMAGE, desc, {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": submit})
    out = _transform(backend, "t-sk", "t-sk", csv_rows(None, X[120:]), accept="text/csv", strategy="SingleRecord")
    predicted = [float(v) for v in out.split()]
    assert len(predicted) == 30
    assert np.mean(np.array(predicted) == y[120:]) >= 0.9


def test_an_unknown_image_fails_the_transform_naming_it(backend):
    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-pytorch:2.1"
    backend.create_model(ModelName="t-bad", ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": image, "ModelDataUrl": f"s3://{BUCKET}/none/model.tar.gz"})
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key="tin-t-bad/rows.csv", Body=b"1,2\n")
    backend.create_transform_job({
        "TransformJobName": "t-bad", "ModelName": "t-bad",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/tin-t-bad/"}},
                           "ContentType": "text/csv"},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/tout/t-bad"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    })
    desc = wait_for(lambda: (d := backend.describe_transform_job(TransformJobName="t-bad"))["TransformJobStatus"]
                    in ("Completed", "Failed") and d)
    assert desc["TransformJobStatus"] == "Failed"
    assert f"The image '{image}' does not exist" in desc["FailureReason"]
