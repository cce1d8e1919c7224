"""Built-in XGBoost through the backend: real xgboost training, AWS's logs and metric names, the artifact, serving."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import xgboost as xgb
from algo_helpers import (
    XGBOOST_IMAGE,
    artifact_members,
    csv_rows,
    deploy,
    invoke,
    log_lines,
    metrics,
    shuffled,
    train_job,
)
from emu_helpers import housing_split
from sklearn.datasets import load_breast_cancer, load_iris

from offline_aws.sagemaker.batching import Plan, transform_object
from offline_aws.sagemaker.transform import load_model

REGRESSION_HPS = {"num_round": "40", "max_depth": "4", "eta": "0.2", "objective": "reg:squarederror", "seed": "1"}


def _booster(desc) -> xgb.Booster:
    members = artifact_members(desc)
    assert list(members) == ["xgboost-model"]
    booster = xgb.Booster()
    booster.load_model(bytearray(members["xgboost-model"]))
    return booster


def test_housing_regression_trains_logs_reports_and_serves_what_the_artifact_predicts(backend):
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    desc = train_job(backend, "xgb-housing", XGBOOST_IMAGE, REGRESSION_HPS,
                     {"train": csv_rows(ytr, Xtr), "validation": csv_rows(yva, Xva)})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    found = metrics(desc)
    assert list(found) == ["train:rmse", "validation:rmse"]

    lines = log_lines("xgb-housing")
    rounds = [line for line in lines if re.match(r"^\[\d+\]#011", line)]
    assert len(rounds) == 40
    assert rounds[0].startswith("[0]#011train-rmse:") and "#011validation-rmse:" in rounds[0]
    last = rounds[-1]
    assert last.startswith("[39]#011train-rmse:")
    assert found["validation:rmse"] == pytest.approx(float(last.split("#011validation-rmse:")[1]))

    booster = _booster(desc)  # the artifact, loaded by xgboost itself
    preds = booster.predict(xgb.DMatrix(Xva))
    rmse = float(np.sqrt(np.mean((preds - yva) ** 2)))
    assert found["validation:rmse"] == pytest.approx(rmse, abs=1e-4)
    assert rmse < 4.0  # Linear Learner: 3.63 on the same split; boosted trees do better

    deploy(backend, "xgb-housing", XGBOOST_IMAGE, desc["ModelArtifacts"]["S3ModelArtifacts"])
    body = csv_rows(None, Xva[:25])
    answer, out_type = invoke(backend, "xgb-housing", body, "text/csv", "text/csv")
    assert out_type == "text/csv"
    served = np.array([float(v) for v in answer.decode().splitlines()])
    np.testing.assert_allclose(served, preds[:25], rtol=1e-6)
    answer, out_type = invoke(backend, "xgb-housing", body, "text/csv", "application/json")
    assert [p["score"] for p in json.loads(answer)["predictions"]] == pytest.approx(served.tolist(), rel=1e-6)
    libsvm = "\n".join(" ".join(f"{j}:{float(v)!r}" for j, v in enumerate(row)) for row in Xva[:3]).encode()
    answer, _ = invoke(backend, "xgb-housing", libsvm, "text/libsvm", "text/csv")
    np.testing.assert_allclose([float(v) for v in answer.decode().split()], preds[:3], rtol=1e-6)

    with pytest.raises(Exception, match="Feature shape mismatch"):
        invoke(backend, "xgb-housing", csv_rows(None, Xva[:2, :5]), "text/csv")
    with pytest.raises(Exception, match="application/x-foo is not supported"):
        invoke(backend, "xgb-housing", body, "application/x-foo")

    # batch transform: the same answers, one per line
    predictor = load_model(backend, _model_of(backend, "xgb-housing"))
    out = transform_object(predictor, Plan(content_type="text/csv", split_type="Line"), body, "s3://b/k")
    np.testing.assert_allclose([float(v) for v in out.decode().split()], preds[:25], rtol=1e-6)


def _model_of(backend, name):
    return backend.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]["ModelName"]


def test_binary_logistic_with_auc_on_breast_cancer(backend):
    X, y = shuffled(*load_breast_cancer(return_X_y=True))
    hps = {"num_round": "30", "objective": "binary:logistic", "eval_metric": "auc,error", "max_depth": "3"}
    desc = train_job(backend, "xgb-cancer", XGBOOST_IMAGE, hps,
                     {"train": csv_rows(y[:450], X[:450]), "validation": csv_rows(y[450:], X[450:])})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    found = metrics(desc)
    assert {"validation:auc", "validation:error", "train:auc", "train:error"} == set(found)
    assert found["validation:auc"] > 0.95
    preds = _booster(desc).predict(xgb.DMatrix(X[450:]))
    assert found["validation:error"] == pytest.approx(float(np.mean((preds > 0.5) != y[450:])), abs=1e-5)
    deploy(backend, "xgb-cancer", XGBOOST_IMAGE, desc["ModelArtifacts"]["S3ModelArtifacts"])
    answer, _ = invoke(backend, "xgb-cancer", csv_rows(None, X[450:460]), "text/csv", "text/csv")
    probs = np.array([float(v) for v in answer.decode().split()])
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs, preds[:10], rtol=1e-6)


def test_multiclass_softprob_answers_the_probability_vector(backend):
    X, y = shuffled(*load_iris(return_X_y=True))
    hps = {"num_round": "20", "objective": "multi:softprob", "num_class": "3", "eval_metric": "mlogloss,accuracy"}
    desc = train_job(backend, "xgb-iris", XGBOOST_IMAGE, hps,
                     {"train": csv_rows(y[:120], X[:120]), "validation": csv_rows(y[120:], X[120:])})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    found = metrics(desc)
    assert found["validation:accuracy"] >= 0.9
    preds = _booster(desc).predict(xgb.DMatrix(X[120:]))
    assert found["validation:accuracy"] == pytest.approx(float(np.mean(preds.argmax(axis=1) == y[120:])), abs=1e-5)
    deploy(backend, "xgb-iris", XGBOOST_IMAGE, desc["ModelArtifacts"]["S3ModelArtifacts"])
    answer, _ = invoke(backend, "xgb-iris", csv_rows(None, X[120:125]), "text/csv", "text/csv")
    rows = np.loadtxt(io.StringIO(answer.decode()), delimiter=",")
    assert rows.shape == (5, 3)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(rows, preds[:5], rtol=1e-6)


def test_libsvm_is_the_default_channel_content_type(backend):
    X, y = shuffled(*load_iris(return_X_y=True))
    libsvm = "\n".join(f"{int(label)} " + " ".join(f"{j}:{v}" for j, v in enumerate(row))
                       for label, row in zip(y, X, strict=True)).encode()
    hps = {"num_round": "5", "objective": "multi:softprob", "num_class": "3"}
    desc = train_job(backend, "xgb-libsvm", XGBOOST_IMAGE, hps, {"train": libsvm}, content_type=None)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert list(metrics(desc)) == ["train:mlogloss"]


@pytest.mark.parametrize(
    ("hps", "content_type", "reason"),
    [
        ({"objective": "reg:squarederror"}, "text/csv", "ClientError: Missing required hyperparameter: num_round"),
        ({"num_round": "5", "bogus_knob": "1"}, "text/csv", "ClientError: Extraneous hyperparameter found: bogus_knob"),
        ({"num_round": "0"}, "text/csv", "Hyperparameter num_round: value 0 not in range"),
        ({"num_round": "5", "objective": "multi:softprob"}, "text/csv", "Require input for parameter 'num_class'"),
        ({"num_round": "5", "eval_metric": "auc"}, "text/csv", "Metric 'auc' can only be applied for classification"),
        ({"num_round": "5"}, "application/json", "application/json is not an accepted ContentType"),
        ({"num_round": "5", "objective": "binary:logistic"}, "text/csv",
         "must be in (0,1) for the logistic loss"),  # xgboost 3 checks base_score first (1.7: the label)
    ],
)
def test_bad_jobs_fail_as_the_container_fails(backend, hps, content_type, reason):
    (ytr, Xtr), _, _ = housing_split()
    desc = train_job(backend, "xgb-bad", XGBOOST_IMAGE, hps, {"train": csv_rows(ytr[:200], Xtr[:200])},
                     content_type=content_type)
    assert desc["TrainingJobStatus"] == "Failed"
    assert reason in desc["FailureReason"]


@pytest.mark.parametrize(
    "image",
    [
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:0.90-1",  # a tag the emulator does not run
        "246618743249.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",  # us-west-2's account in us-east-1
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/my-own-image:latest",
    ],
)
def test_unknown_images_fail_naming_the_image(backend, image):
    (ytr, Xtr), _, _ = housing_split()
    desc = train_job(backend, "xgb-image", image, {"num_round": "5"}, {"train": csv_rows(ytr[:50], Xtr[:50])})
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(f"ClientError: The image '{image}' does not exist")


def test_a_csv_header_fails_naming_the_line(backend):
    (ytr, Xtr), _, _ = housing_split()
    body = b"medv," + b",".join(f"f{i}".encode() for i in range(12)) + b"\n" + csv_rows(ytr[:50], Xtr[:50])
    desc = train_job(backend, "xgb-header", XGBOOST_IMAGE, {"num_round": "3"}, {"train": body})
    assert desc["TrainingJobStatus"] == "Failed"
    assert "line 1, column 1: could not convert 'medv' to float (text/csv must not have a header line)" in (
        desc["FailureReason"])
