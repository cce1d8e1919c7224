"""The inference container's request decoding and response encoding."""

import json

import numpy as np
import pytest

from offline_aws.linear_learner.data import encode_recordio_protobuf
from offline_aws.linear_learner.model import LinearLearnerModel, read_model_tar_gz, write_model_tar_gz
from offline_aws.linear_learner.serving import ModelError, decode_request, encode_response


def test_csv_request():
    X = decode_request(b"1,2,3\n4,5.5,-6e-1\n", "text/csv", 3)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5.5, -0.6]])
    assert decode_request(b"1,2,3", "text/csv; charset=utf-8", 3).shape == (1, 3)


def test_json_requests_both_shapes():
    body = json.dumps({"instances": [{"features": [1, 2]}, {"features": [3, 4]}]}).encode()
    np.testing.assert_array_equal(decode_request(body, "application/json", 2), [[1, 2], [3, 4]])
    body = json.dumps({"instances": [{"data": {"features": {"values": [5, 6]}}}]}).encode()
    np.testing.assert_array_equal(decode_request(body, "application/json", 2), [[5, 6]])


def test_jsonlines_and_recordio_requests():
    body = b'{"features": [1, 2]}\n{"features": [3, 4]}\n'
    np.testing.assert_array_equal(decode_request(body, "application/jsonlines", 2), [[1, 2], [3, 4]])
    blob = encode_recordio_protobuf(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(decode_request(blob, "application/x-recordio-protobuf", 2), [[1, 2], [3, 4]])


@pytest.mark.parametrize(("body", "ctype", "match"), [
    (b"1,2,3\n1,2\n", "text/csv", "record 2 has 2 features but the model expects feature_dim=3"),
    (b"1,2,3,4", "text/csv", "record 1 has 4 features"),
    (b"1,abc,3", "text/csv", "'abc' is not a number"),
    (b"1,nan,3", "text/csv", "not a finite number"),
    (b"", "text/csv", "empty"),
    (b"  \n", "text/csv", "empty"),
    (b'{"instances": [{"features": [1, 2]}]}', "application/json", "has 2 features"),
    (b'{"instances": [{"features": [1, "x", 3]}]}', "application/json", "'x' is not a number"),
    (b'{"instances": [{"feat": [1, 2, 3]}]}', "application/json", "expected"),
    (b"{not json", "application/json", "invalid JSON"),
])
def test_bad_payloads_are_model_errors(body, ctype, match):
    with pytest.raises(ModelError, match=match) as err:
        decode_request(body, ctype, 3)
    assert err.value.status == 400
    assert str(err.value).startswith("unable to evaluate payload provided")


@pytest.mark.parametrize("ctype", ["csv", "text/plain", "application/x-image", ""])
def test_unsupported_content_type_is_415(ctype):
    with pytest.raises(ModelError, match="not supported") as err:
        decode_request(b"1,2,3", ctype, 3)
    assert err.value.status == 415


REG = {"score": np.array([1.5, -2.0])}
BIN = {"score": np.array([0.9, 0.2]), "predicted_label": np.array([1, 0])}
MULTI = {"score": np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), "predicted_label": np.array([0, 2])}


@pytest.mark.parametrize("accept", ["application/json", "*/*", None, "", "application/json; verbose=true"])
def test_json_response_and_default_accept(accept):
    body, ctype = encode_response(REG, accept, "regressor")
    assert ctype == "application/json"
    assert json.loads(body) == {"predictions": [{"score": 1.5}, {"score": -2.0}]}


def test_classifier_json_responses():
    body, _ = encode_response(BIN, "application/json", "binary_classifier")
    assert json.loads(body) == {"predictions": [{"score": 0.9, "predicted_label": 1},
                                                {"score": 0.2, "predicted_label": 0}]}
    body, _ = encode_response(MULTI, "application/json", "multiclass_classifier")
    assert json.loads(body)["predictions"][1] == {"score": [0.1, 0.1, 0.8], "predicted_label": 2}


def test_jsonlines_response():
    body, ctype = encode_response(BIN, "application/jsonlines", "binary_classifier")
    assert ctype == "application/jsonlines"
    assert [json.loads(line) for line in body.decode().splitlines()] == [
        {"score": 0.9, "predicted_label": 1}, {"score": 0.2, "predicted_label": 0}]


def test_csv_responses():
    assert encode_response(REG, "text/csv", "regressor") == (b"1.5\n-2.0\n", "text/csv")
    assert encode_response(BIN, "text/csv", "binary_classifier")[0] == b"1,0.9\n0,0.2\n"
    assert encode_response(MULTI, "text/csv", "multiclass_classifier")[0] == b"0,0.7,0.2,0.1\n2,0.1,0.1,0.8\n"


def test_unsupported_accept_is_406():
    with pytest.raises(ModelError, match="Accept type 'application/xml' is not supported") as err:
        encode_response(REG, "application/xml", "regressor")
    assert err.value.status == 406
    assert encode_response(REG, "application/xml, text/csv", "regressor")[1] == "text/csv"


def test_end_to_end_through_the_artifact():
    model = LinearLearnerModel("regressor", [[1.0], [2.0]], [3.0], loss="squared_loss")
    served = read_model_tar_gz(write_model_tar_gz(model))
    X = decode_request(b"1,1\n0,0\n", "text/csv", served.feature_dim)
    body, _ = encode_response(served.predict(X), "application/json", served.predictor_type)
    assert json.loads(body) == {"predictions": [{"score": 6.0}, {"score": 3.0}]}


def test_csv_fast_and_per_cell_paths_agree():
    """Whole-payload conversion gives what the per-cell path gives; anything odd still gets its message."""
    from offline_aws.linear_learner.serving import _csv_matrix

    text = " 1, 2.5\n\n-3e2,4_0 \n"
    assert _csv_matrix(text).tolist() == [[1.0, 2.5], [-300.0, 40.0]]
    assert _csv_matrix(text).tolist() == [[float(c) for c in line.split(",")] for line in text.split("\n") if line.strip()]
    for odd, words in (("1,2\n3\n", "record 2 has 1 features"), ("1,nan\n", "line 1: 'nan' is not a finite"),
                       ("1,x\n", "line 1: 'x' is not a number"), ("2,1\n1,inf\n", "line 2: 'inf' is not a finite")):
        assert _csv_matrix(odd) is None
        with pytest.raises(ModelError, match=words):
            decode_request(odd.encode(), "text/csv", 2)
