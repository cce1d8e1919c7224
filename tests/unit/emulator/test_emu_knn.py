"""Built-in k-NN through the backend: the documented algorithm, checked against scikit-learn's neighbours."""

from __future__ import annotations

import json

import numpy as np
import pytest
from algo_helpers import (
    KNN_IMAGE,
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
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from offline_aws.linear_learner.data import encode_recordio_protobuf


def test_classifier_on_iris_matches_scikit_learn_and_serves_json(backend):
    X, y = shuffled(*load_iris(return_X_y=True), seed=3)
    hps = {"k": "5", "sample_size": "500", "feature_dim": "4", "predictor_type": "classifier"}
    desc = train_job(backend, "knn-iris", KNN_IMAGE, hps,
                     {"train": csv_rows(y[:110], X[:110]), "test": csv_rows(y[110:], X[110:])})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    reference = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X[:110], y[:110])
    expected = reference.predict(X[110:])
    assert metrics(desc) == {"test:accuracy": pytest.approx(float(np.mean(expected == y[110:])))}
    assert any(line.startswith("#test_score (algo-1) : ('accuracy', ") for line in log_lines("knn-iris"))
    assert list(artifact_members(desc)) == ["model_algo-1"]

    deploy(backend, "knn-iris", KNN_IMAGE, desc["ModelArtifacts"]["S3ModelArtifacts"])
    answer, out_type = invoke(backend, "knn-iris", csv_rows(None, X[110:]), "text/csv", "application/json")
    assert out_type == "application/json"
    labels = [p["predicted_label"] for p in json.loads(answer)["predictions"]]
    assert labels == expected.astype(float).tolist()
    request = json.dumps({"instances": [{"features": X[110].tolist()}, {"features": X[111].tolist()}]}).encode()
    answer, _ = invoke(backend, "knn-iris", request, "application/json", "application/jsonlines")
    assert [json.loads(line) for line in answer.decode().splitlines()] == [
        {"predicted_label": float(expected[0])}, {"predicted_label": float(expected[1])}]
    answer, _ = invoke(backend, "knn-iris", csv_rows(None, X[110:111]), "text/csv", "application/json; verbose=true")
    verbose = json.loads(answer)["predictions"][0]
    distances, neighbours = reference.kneighbors(X[110:111])
    np.testing.assert_allclose(verbose["distances"], distances[0] ** 2, rtol=1e-9, atol=1e-12)  # L2: squared, as faiss
    assert sorted(verbose["labels"]) == sorted(y[:110][neighbours[0]].astype(float).tolist())
    with pytest.raises(Exception, match="feature_dim=4"):
        invoke(backend, "knn-iris", csv_rows(None, X[:2, :3]), "text/csv")


def test_regressor_on_housing_from_recordio_protobuf(backend):
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    hps = {"k": "7", "sample_size": "100000", "feature_dim": "12", "predictor_type": "regressor"}
    desc = train_job(backend, "knn-housing", KNN_IMAGE, hps,
                     {"train": encode_recordio_protobuf(Xtr, ytr), "test": encode_recordio_protobuf(Xva, yva)},
                     content_type=None)  # RecordIO-protobuf is the default, as record_set() sends it
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    reference = KNeighborsRegressor(n_neighbors=7, algorithm="brute").fit(Xtr.astype(np.float32), ytr.astype(np.float32))
    expected = reference.predict(Xva.astype(np.float32))
    assert metrics(desc)["test:mse"] == pytest.approx(float(np.mean((expected - yva.astype(np.float32)) ** 2)), rel=1e-4)
    deploy(backend, "knn-housing", KNN_IMAGE, desc["ModelArtifacts"]["S3ModelArtifacts"])
    answer, _ = invoke(backend, "knn-housing", csv_rows(None, Xva[:10].astype(np.float32)), "text/csv", "application/json")
    served = [p["predicted_label"] for p in json.loads(answer)["predictions"]]
    np.testing.assert_allclose(served, expected[:10], rtol=1e-5)


def test_sample_size_limits_the_index(backend):
    X, y = shuffled(*load_iris(return_X_y=True), seed=3)
    hps = {"k": "1", "sample_size": "10", "feature_dim": "4", "predictor_type": "classifier"}
    desc = train_job(backend, "knn-sample", KNN_IMAGE, hps, {"train": csv_rows(y, X)})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    with np.load(__import__("io").BytesIO(artifact_members(desc)["model_algo-1"]), allow_pickle=False) as npz:
        assert npz["X"].shape == (10, 4)
    assert "FinalMetricDataList" not in desc or metrics(desc) == {}  # no test channel, no metric


@pytest.mark.parametrize(
    ("hps", "content_type", "reason"),
    [
        ({"sample_size": "100", "feature_dim": "4", "predictor_type": "classifier"}, "text/csv", "'k' is a required property"),
        ({"k": "3", "feature_dim": "4", "predictor_type": "classifier"}, "text/csv", "'sample_size' is a required property"),
        ({"k": "3", "sample_size": "100", "feature_dim": "4", "predictor_type": "ranker"}, "text/csv", "'ranker' is not one of"),
        ({"k": "3", "sample_size": "100", "feature_dim": "4", "predictor_type": "classifier", "bogus": "1"}, "text/csv",
         "'bogus' was unexpected"),
        ({"k": "3", "sample_size": "100", "feature_dim": "5", "predictor_type": "classifier"}, "text/csv",
         "feature_dim hyperparameter (5) does not match"),
        ({"k": "3", "sample_size": "100", "feature_dim": "4", "predictor_type": "classifier"}, "csv",
         "ClientError: No iterator has been registered for ContentType ('csv', '1.0')"),
    ],
)
def test_bad_jobs_fail_naming_what_is_wrong(backend, hps, content_type, reason):
    X, y = load_iris(return_X_y=True)
    desc = train_job(backend, "knn-bad", KNN_IMAGE, hps, {"train": csv_rows(y, X)}, content_type=content_type)
    assert desc["TrainingJobStatus"] == "Failed"
    assert reason in desc["FailureReason"]
    assert desc["FailureReason"].startswith("ClientError: ")
