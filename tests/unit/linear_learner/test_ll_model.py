"""The model artifact: prediction semantics and model.tar.gz round trips."""

import io
import tarfile

import numpy as np
import pytest

from offline_aws.linear_learner.model import LinearLearnerModel, read_model_tar_gz, write_model_tar_gz


def _models():
    return [
        LinearLearnerModel("regressor", [[2.0], [-1.0]], [0.5], loss="squared_loss"),
        LinearLearnerModel("binary_classifier", [[1.0], [1.0]], [0.0], loss="logistic", threshold=0.7),
        LinearLearnerModel("multiclass_classifier", [[1.0, 0, -1], [0, 2, 0]], [0, 0, 0.1], loss="softmax_loss",
                           num_classes=3),
    ]


def test_predict_regressor_binary_multiclass():
    reg, binary, multi = _models()
    X = np.array([[1.0, 1.0], [0.2, 0.3], [-3.0, 0.0]])
    np.testing.assert_allclose(reg.predict(X)["score"], [1.5, 0.6, -5.5])
    out = binary.predict(X)
    np.testing.assert_allclose(out["score"], 1 / (1 + np.exp(-np.array([2.0, 0.5, -3.0]))))
    np.testing.assert_array_equal(out["predicted_label"], [1, 0, 0])  # 0.62 < threshold 0.7
    out = multi.predict(X)
    np.testing.assert_array_equal(out["predicted_label"], [1, 1, 2])
    np.testing.assert_allclose(out["score"].sum(axis=1), 1)


def test_predict_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        _models()[0].predict(np.ones((1, 3)))


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.predictor_type)
def test_model_tar_gz_round_trip(model):
    blob = write_model_tar_gz(model)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        assert tar.getnames() == ["model_algo-1"]
    loaded = read_model_tar_gz(blob)
    assert (loaded.predictor_type, loaded.feature_dim, loaded.num_classes, loaded.loss, loaded.threshold) == (
        model.predictor_type, model.feature_dim, model.num_classes, model.loss, model.threshold)
    X = np.random.default_rng(0).normal(size=(5, 2))
    for key, value in model.predict(X).items():
        np.testing.assert_array_equal(loaded.predict(X)[key], value)


def _tar_with(name, payload):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.mark.parametrize(("blob", "message"), [
    (b"not a tarball", "not a valid gzipped tar"),
    (_tar_with("model.pkl", b"x"), "no 'model_algo-1'"),
    (_tar_with("model_algo-1", b"\x00\x01binary mxnet params"), "not an offline Linear Learner model"),
    (_tar_with("model_algo-1", b'{"format": "something-else"}'), "not an offline Linear Learner model"),
    (_tar_with("model_algo-1", b'{"format": "offline_aws.linear_learner/1", "weights": [[1]]}'), "corrupt"),
])
def test_read_rejects_corrupt_or_foreign_artifacts(blob, message):
    with pytest.raises(ValueError, match=message):
        read_model_tar_gz(blob)
