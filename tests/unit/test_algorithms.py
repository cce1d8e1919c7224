"""Algorithms as strategies: requests valid for botocore, hyperparameters refused by name, answers read.

The answer formats below are the ones AWS's containers write: Linear Learner's JSON / JSON Lines
(``{"score": …, "predicted_label": …}``), XGBoost 1.7-1's batch output (``str()`` of each prediction per
line, ``[p0, p1, …]`` for ``multi:softprob``) and its JSON (``{"predictions": [{"score": …}]}``), k-NN's
``{"predictions": [{"predicted_label": …}]}`` and JSON Lines, the scikit-learn container's default
encoders (``application/json`` of the prediction array, ``text/csv`` one row per line).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from sagemaker_retrain import algorithms, config, pipeline, smoke
from sagemaker_retrain.algorithms import accounts
from sagemaker_retrain.images import LINEAR_LEARNER_ACCOUNTS
from sagemaker_retrain.params import build_params

ROLE = "arn:aws:iam::123456789012:role/R"
TAGS = config.tags("ep", "manual__2026-12-06T00:00:00+00:00")
CODE = {"uri": "s3://b/p/models/slug/source/sourcedir.tar.gz", "sha256": "ab" * 32, "entry_point": "train.py",
        "source_dir": "scripts/demo"}


def defaults(**overrides) -> dict:
    return {**{n: p.value for n, p in build_params().items()}, **overrides}


PER_ALGORITHM = {
    "linear-learner": {},
    "xgboost": {"xgboost_num_round": 50, "xgboost_eta": 0.2, "xgboost_max_depth": 4},
    "knn": {"knn_k": 5, "knn_sample_size": 300},
    "sklearn": {"sklearn_source_dir": "scripts/demo", "sklearn_hyperparameters": {"n_estimators": 20, "tag": "x"}},
}


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("sagemaker")


def _valid(model, operation: str, request: dict) -> None:
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def _training(name: str, **overrides) -> dict:
    algorithm = algorithms.get(name)
    params = defaults(algorithm=name, **PER_ALGORITHM[name], **overrides)
    return config.build_training_config(
        algorithm=algorithm, job_name="ep-20261206-000000-abcdef", image=algorithm.image("us-east-1"),
        role_arn=ROLE, channel_uris={c: f"s3://b/p/input/{c}/" for c in config.CHANNELS},
        output_uri="s3://b/p/models/slug", params=params, feature_dim=13, resource_tags=TAGS,
        code=CODE if name == "sklearn" else None, region="us-east-1")


@pytest.mark.parametrize("name", list(algorithms.ALGORITHMS))
def test_every_algorithms_requests_are_valid_for_botocore(model, name):
    algorithm = algorithms.get(name)
    params = defaults(algorithm=name, **PER_ALGORITHM[name])
    request = _training(name)
    _valid(model, "CreateTrainingJob", request)
    assert request["AlgorithmSpecification"]["TrainingImage"] == algorithm.image("us-east-1")
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == list(algorithm.channels)
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    image, artifact = algorithm.image("eu-west-1"), "s3://b/p/models/slug/job/output/model.tar.gz"
    _valid(model, "CreateModel", config.build_model_config(
        algorithm=algorithm, model_name="m", image=image, model_data_url=artifact, role_arn=ROLE,
        resource_tags=TAGS, code=CODE, region="eu-west-1"))
    package = config.build_model_package_config(
        algorithm=algorithm, group_name="g", image=image, model_data_url=artifact, params=params,
        metrics_uri="s3://b/m.json", customer_metadata={"run-id": "r"}, client_token="t", description="d",
        code=CODE, region="eu-west-1")
    _valid(model, "CreateModelPackage", package)
    spec = package["InferenceSpecification"]
    assert spec["Containers"][0]["Image"] == image and spec["Containers"][0]["ModelDataUrl"] == artifact
    assert algorithm.inference_content_type in spec["SupportedContentTypes"]
    assert algorithm.endpoint_accept in spec["SupportedResponseMIMETypes"]
    transform = config.build_transform_config(
        algorithm=algorithm, job_name="t", model_name="m", input_uri="s3://b/test/", output_uri="s3://b/out/",
        params=params, resource_tags=TAGS)
    _valid(model, "CreateTransformJob", transform)
    assert transform["TransformOutput"]["Accept"] == algorithm.transform_accept
    assert transform["DataProcessing"]["InputFilter"] == "$[1:]"  # label-first test split, features only


def test_linear_learner_request_is_unchanged():
    """Exactly what the pipeline sent before algorithms were strategies (nothing may get worse)."""
    request = _training("linear-learner", wd=0.01)
    assert request["HyperParameters"] == {
        "feature_dim": "13", "predictor_type": "regressor", "mini_batch_size": "30", "epochs": "15",
        "wd": "0.01", "normalize_data": "true", "use_bias": "true", "early_stopping_patience": "3",
    }
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1", "TrainingInputMode": "File"}
    transform = config.build_transform_config(
        algorithm=algorithms.get("linear-learner"), job_name="t", model_name="m", input_uri="s3://b/test/",
        output_uri="s3://b/out/", params=defaults(), resource_tags=TAGS)
    assert transform["TransformInput"]["ContentType"] == "text/csv"
    assert transform["TransformOutput"]["Accept"] == "application/jsonlines"
    spec = algorithms.get("linear-learner").inference_specification("img", "s3://b/m.tar.gz", defaults())
    assert spec["SupportedContentTypes"] == ["text/csv", "application/json", "application/x-recordio-protobuf"]
    assert spec["SupportedResponseMIMETypes"] == ["application/json", "application/jsonlines"]
    assert spec["Containers"] == [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}]


def test_script_mode_model_from_its_package_names_the_code_that_serves(model):
    plan = {"algorithm": "sklearn", "image": algorithms.get("sklearn").image("us-east-1"), "code": CODE,
            "run_id": "r", "names": {"model": "m", "endpoint": "ep", "training_job": "j"}}
    settings = type("S", (), {"role_arn": ROLE, "region": "us-east-1"})()
    request = pipeline.challenger_model_request(plan, settings, {"arn": "arn:aws:sagemaker:us-east-1:1:model-package/g/1"})
    _valid(model, "CreateModel", request)
    assert request["Containers"][0]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == CODE["uri"]
    plan_ll = {**plan, "algorithm": "linear-learner", "code": None}
    assert "Environment" not in pipeline.challenger_model_request(
        plan_ll, settings, {"arn": "arn:aws:sagemaker:us-east-1:1:model-package/g/1"})["Containers"][0]


def test_xgboost_objective_follows_the_predictor_type():
    hps = _training("xgboost")["HyperParameters"]
    assert hps == {"objective": "reg:squarederror", "num_round": "50", "eta": "0.2", "max_depth": "4"}
    binary = _training("xgboost", predictor_type="binary_classifier")["HyperParameters"]
    assert binary["objective"] == "binary:logistic" and "num_class" not in binary
    multi = _training("xgboost", predictor_type="multiclass_classifier", num_classes=3)["HyperParameters"]
    assert multi["objective"] == "multi:softprob" and multi["num_class"] == "3"
    request = _training("xgboost")
    assert {c["ContentType"] for c in request["InputDataConfig"]} == {"text/csv"}


def test_knn_required_hyperparameters_and_channels():
    request = _training("knn")
    assert request["HyperParameters"] == {"feature_dim": "13", "predictor_type": "regressor", "k": "5",
                                          "sample_size": "300"}
    assert _training("knn", predictor_type="multiclass_classifier", num_classes=3)["HyperParameters"][
        "predictor_type"] == "classifier"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "test"]  # k-NN has no validation
    recordio = _training("knn", training_content_type="application/x-recordio-protobuf")
    assert {c["ChannelName"]: c["ContentType"] for c in recordio["InputDataConfig"]} == {
        "train": "application/x-recordio-protobuf", "test": "text/csv"}


def test_sklearn_hyperparameters_are_json_encoded_as_the_sdk_sends_them():
    hps = _training("sklearn")["HyperParameters"]
    assert hps == {
        "sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(CODE["uri"]),
        "sagemaker_container_log_level": "20", "sagemaker_region": '"us-east-1"',
        "n_estimators": "20", "tag": '"x"',
    }
    container = algorithms.get("sklearn").container("img", "s3://b/model.tar.gz", CODE, "us-east-1")
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": CODE["uri"],
                                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": "us-east-1"}
    with pytest.raises(ValueError, match="not been uploaded"):
        algorithms.get("sklearn").build_hyperparameters(defaults(algorithm="sklearn"), 3)


@pytest.mark.parametrize(("change", "words"), [
    ({"algorithm": "xgboost"}, re.escape("Param xgboost_num_round (Boosting rounds (num_round): hyperparameter "
                                         "num_round of XGBoost) is required")),
    ({"algorithm": "xgboost", "xgboost_num_round": 10, "xgboost_eta": 1.5}, "Param xgboost_eta .* at most 1"),
    ({"algorithm": "xgboost", "xgboost_num_round": 10, "training_content_type": "application/x-recordio-protobuf"},
     "Param training_content_type 'application/x-recordio-protobuf' is not a training format of XGBoost"),
    ({"algorithm": "xgboost", "xgboost_num_round": 2.5}, "Param xgboost_num_round .* whole number"),
    ({"algorithm": "xgboost", "xgboost_num_round": 10, "xgboost_eval_metric": "auc"},
     "Param xgboost_eval_metric 'auc' is a binary metric"),
    ({"algorithm": "knn"}, "Param knn_k .* is required"),
    ({"algorithm": "knn", "knn_k": 3}, "Param knn_sample_size .* is required"),
    ({"algorithm": "knn", "knn_k": 3, "knn_sample_size": 10, "knn_dimension_reduction_type": "sign"},
     "Param knn_dimension_reduction_target"),
    ({"algorithm": "knn", "knn_k": 3, "knn_sample_size": 10, "knn_index_metric": "L1"},
     "Param knn_index_metric .* one of L2, INNER_PRODUCT, COSINE"),
    ({"algorithm": "sklearn"}, "Param sklearn_source_dir .* is required"),
    ({"algorithm": "sklearn", "sklearn_source_dir": "../outside"}, "outside the project"),
    ({"algorithm": "sklearn", "sklearn_source_dir": "scripts/demo", "sklearn_entry_point": "missing.py"},
     "Param sklearn_entry_point 'missing.py' is not a file"),
    ({"algorithm": "sklearn", "sklearn_source_dir": "scripts/demo",
      "sklearn_hyperparameters": {"sagemaker_program": "x"}}, "sagemaker_\\* names are the container's own"),
    ({"algorithm": "random-forest"}, "Param algorithm 'random-forest' is not one of"),
    ({"learning_rate": 0}, "Param learning_rate .* above 0"),
])
def test_hyperparameters_are_refused_before_anything_is_spent(tmp_path, change, words):
    (tmp_path / "scripts" / "demo").mkdir(parents=True)
    (tmp_path / "scripts" / "demo" / "train.py").write_text("print('hi')\n")
    with pytest.raises(ValueError, match=words):
        pipeline._check_params(defaults(**change), tmp_path)


def test_every_algorithm_accepts_its_valid_params(tmp_path):
    (tmp_path / "scripts" / "demo").mkdir(parents=True)
    (tmp_path / "scripts" / "demo" / "train.py").write_text("print('hi')\n")
    for name, extra in PER_ALGORITHM.items():
        pipeline._check_params(defaults(algorithm=name, **extra), tmp_path)


def test_sourcedir_is_packaged_at_the_root_reproducibly(tmp_path):
    folder = tmp_path / "scripts" / "demo"
    (folder / "lib").mkdir(parents=True)
    (folder / "__pycache__").mkdir()
    (folder / "train.py").write_text("import lib.util\n")
    (folder / "lib" / "util.py").write_text("X = 1\n")
    (folder / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    params = defaults(algorithm="sklearn", sklearn_source_dir="scripts/demo")
    sklearn = algorithms.get("sklearn")
    blob, sha, facts = sklearn.package(params, tmp_path)
    assert facts == {"entry_point": "train.py", "source_dir": "scripts/demo"}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["lib/util.py", "train.py"]
    assert sklearn.package(params, tmp_path)[1] == sha  # same code, same digest
    (folder / "train.py").write_text("import lib.util  # changed\n")
    assert sklearn.package(params, tmp_path)[1] != sha
    assert gzip.decompress(blob)  # a real gzip stream


def test_upload_code_puts_the_tarball_beside_the_model(tmp_path):
    folder = tmp_path / "scripts" / "demo"
    folder.mkdir(parents=True)
    (folder / "train.py").write_text("print(1)\n")
    puts = []

    class S3:
        def put_object(self, **kwargs):
            puts.append(kwargs)

    params = defaults(algorithm="sklearn", sklearn_source_dir="scripts/demo")
    code = pipeline.upload_code(algorithms.get("sklearn"), params, tmp_path, S3(), "bkt", "p/models/slug")
    assert code["uri"] == "s3://bkt/p/models/slug/source/sourcedir.tar.gz"
    assert puts[0]["Key"] == "p/models/slug/source/sourcedir.tar.gz"
    import hashlib

    assert code["sha256"] == hashlib.sha256(puts[0]["Body"]).hexdigest() == puts[0]["Metadata"]["sha256"]
    assert pipeline.upload_code(algorithms.get("xgboost"), defaults(), tmp_path, S3(), "bkt", "p") is None
    assert len(puts) == 1


# --- images ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "table", "suffix"), [
    ("linear-learner", LINEAR_LEARNER_ACCOUNTS, "linear-learner:1"),
    ("xgboost", accounts.FRAMEWORK, "sagemaker-xgboost:1.7-1"),
    ("knn", accounts.FIRST_PARTY, "knn:1"),
    ("sklearn", accounts.FRAMEWORK, "sagemaker-scikit-learn:1.2-1-cpu-py3"),
])
def test_image_for_every_region(name, table, suffix):
    algorithm = algorithms.get(name)
    for region, account in table.items():
        image = algorithm.image(region)
        assert image.startswith(f"{account}.dkr.ecr.{region}.") and image.endswith(f"/{suffix}")
        assert algorithms.of_image(image) is algorithm
    assert algorithm.image("cn-north-1").endswith(f".amazonaws.com.cn/{suffix}")
    with pytest.raises(ValueError, match="not published in region 'mars-1'"):
        algorithm.image("mars-1")


def test_images_match_the_sdk_examples():
    # image_uris.retrieve(...) of the SageMaker Python SDK, us-west-2 (its documented examples' region)
    assert algorithms.get("xgboost").image("us-west-2") == (
        "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1")
    assert algorithms.get("sklearn").image("us-west-2") == (
        "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert algorithms.get("knn").image("us-west-2") == "174872318107.dkr.ecr.us-west-2.amazonaws.com/knn:1"
    assert algorithms.get("knn").image("us-iso-east-1").endswith(".c2s.ic.gov/knn:1")


def test_unknown_images_are_named():
    with pytest.raises(ValueError, match="'123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:1' is not the image"):
        algorithms.of_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:1")
    with pytest.raises(ValueError, match="is not the image"):
        algorithms.of_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:0.90-2")


def test_champion_algorithm_is_read_from_what_serves():
    xgb_image = algorithms.get("xgboost").image("us-east-1")
    knn_image = algorithms.get("knn").image("us-east-1")

    class SM:
        def describe_model(self, ModelName):
            if ModelName == "direct":
                return {"PrimaryContainer": {"Image": xgb_image, "ModelDataUrl": "s3://b/m"}}
            return {"Containers": [{"ModelPackageName": "arn:pkg/1"}]}

        def describe_model_package(self, ModelPackageName):
            assert ModelPackageName == "arn:pkg/1"
            return {"InferenceSpecification": {"Containers": [{"Image": knn_image}]}}

    assert pipeline.algorithm_of_model(SM(), "direct").name == "xgboost"
    assert pipeline.algorithm_of_model(SM(), "from-package").name == "knn"


# --- answers --------------------------------------------------------------------------------------
def test_linear_learner_answers_as_before():
    ll = algorithms.get("linear-learner")
    out = ll.parse_transform_output(b'{"score": 1.5}\n{"score": 2.0}\n', "regressor")
    assert out == [{"score": 1.5}, {"score": 2.0}]
    answer = b'{"predictions": [{"score": 0.8, "predicted_label": 1.0}]}'
    assert ll.parse_endpoint_answer(answer, "binary_classifier") == [{"score": 0.8, "predicted_label": 1.0}]


def test_xgboost_answers():
    xgb = algorithms.get("xgboost")
    # batch transform: str() of each prediction per line (SAGEMAKER_BATCH)
    assert xgb.parse_transform_output(b"24.5\n31.25\n", "regressor") == [{"score": 24.5}, {"score": 31.25}]
    assert xgb.parse_transform_output(b"0.9\n0.2\n", "binary_classifier") == [
        {"score": 0.9, "predicted_label": 1.0}, {"score": 0.2, "predicted_label": 0.0}]
    softprob = xgb.parse_transform_output(b"[0.1, 0.7, 0.2]\n[0.8, 0.1, 0.1]\n", "multiclass_classifier")
    assert [p["predicted_label"] for p in softprob] == [1.0, 0.0] and softprob[0]["score"] == [0.1, 0.7, 0.2]
    # text/csv answers of several classes: comma-separated
    assert xgb.parse_transform_output(b"0.1,0.7,0.2\n", "multiclass_classifier")[0]["predicted_label"] == 1.0
    answer = b'{"predictions": [{"score": 22.1}, {"score": 19.0}]}'
    assert xgb.parse_endpoint_answer(answer, "regressor") == [{"score": 22.1}, {"score": 19.0}]
    with pytest.raises(algorithms.AnswerError, match="line 2 is not a number"):
        xgb.parse_transform_output(b"1.0\nnot-a-number\n", "regressor")
    with pytest.raises(algorithms.AnswerError, match="not a finite number"):
        xgb.parse_transform_output(b"nan\n", "regressor")
    with pytest.raises(algorithms.AnswerError, match="not XGBoost JSON"):
        xgb.parse_endpoint_answer(b'{"predictions": [{"predicted_label": 1}]}', "regressor")


FOREIGN_ANSWERS = [b"[1, 2]", b"not json", b'{"scores": []}']


# Linear Learner's items are the records as they come (smoke.check_predictions checks each has a finite score).
@pytest.mark.parametrize(("name", "title", "answer"), [
    *(("linear-learner", "Linear Learner", a) for a in FOREIGN_ANSWERS),
    *(("xgboost", "XGBoost", a) for a in [*FOREIGN_ANSWERS, b'{"predictions": [{}]}']),
    *(("knn", "k-NN", a) for a in [*FOREIGN_ANSWERS, b'{"predictions": [{"score": 1}]}']),
])
def test_a_builtins_endpoint_answer_of_another_shape_is_refused_naming_the_algorithm(name, title, answer):
    with pytest.raises(algorithms.AnswerError, match=f"Endpoint answer is not {title} JSON"):
        algorithms.get(name).parse_endpoint_answer(answer, "regressor")


def test_knn_answers():
    knn = algorithms.get("knn")
    lines = b'{"predicted_label": 2.0}\n{"predicted_label": 0.0}\n'
    assert knn.parse_transform_output(lines, "multiclass_classifier") == [
        {"score": 2.0, "predicted_label": 2.0}, {"score": 0.0, "predicted_label": 0.0}]
    assert knn.parse_transform_output(b'{"predicted_label": 23.4}\n', "regressor") == [{"score": 23.4}]
    answer = b'{"predictions": [{"predicted_label": 1.0}, {"predicted_label": 0.0}]}'
    assert [p["predicted_label"] for p in knn.parse_endpoint_answer(answer, "binary_classifier")] == [1.0, 0.0]
    verbose = b'{"predictions": [{"predicted_label": 1.0, "distances": [0.1, 0.2], "labels": [1.0, 1.0]}]}'
    assert knn.parse_endpoint_answer(verbose, "binary_classifier")[0]["predicted_label"] == 1.0
    with pytest.raises(algorithms.AnswerError, match="predicted_label"):
        knn.parse_transform_output(b'{"score": 1.0}\n', "regressor")


def test_sklearn_answers():
    sk = algorithms.get("sklearn")
    assert sk.parse_endpoint_answer(b"[21.5, 30.0]", "regressor") == [{"score": 21.5}, {"score": 30.0}]
    assert sk.parse_endpoint_answer(b"[2, 0]", "multiclass_classifier") == [
        {"score": 2.0, "predicted_label": 2.0}, {"score": 0.0, "predicted_label": 0.0}]
    proba = sk.parse_endpoint_answer(b"[[0.2, 0.8], [0.9, 0.1]]", "binary_classifier")
    assert proba == [{"score": 0.8, "predicted_label": 1.0}, {"score": 0.1, "predicted_label": 0.0}]
    # text/csv of the container's default encoder: one row of the array per line
    assert sk.parse_transform_output(b"2.0\n1.0\n", "multiclass_classifier")[0]["predicted_label"] == 2.0
    assert sk.parse_transform_output(b"24.0\n", "regressor") == [{"score": 24.0}]
    with pytest.raises(algorithms.AnswerError, match="not a JSON array"):
        sk.parse_endpoint_answer(b'{"error": "model_fn failed"}', "regressor")


@pytest.mark.parametrize(("body", "scores"), [
    (b'{"predictions": [{"score": 1.5}, {"score": 2.0}]}', [1.5, 2.0]),  # Linear Learner, XGBoost
    (b'{"predictions": [{"predicted_label": 3.0}, {"predicted_label": 4.0}]}', [3.0, 4.0]),  # k-NN
    (b"[5.0, 6.0]", [5.0, 6.0]),  # scikit-learn container
])
def test_smoke_reads_any_algorithms_answer(body, scores):
    class Runtime:
        def invoke_endpoint(self, **kwargs):
            self.sent = kwargs
            return {"Body": io.BytesIO(body)}

    runtime = Runtime()
    assert smoke.smoke_test(runtime, "ep", [[1.0, 2.0], [3.0, 4.0]]) == scores
    assert runtime.sent["ContentType"] == "text/csv"


def test_smoke_with_the_serving_algorithm_is_strict():
    class Runtime:
        def invoke_endpoint(self, **kwargs):
            self.sent = kwargs
            return {"Body": io.BytesIO(b"[5.0, 6.0]")}

    runtime = Runtime()
    with pytest.raises(smoke.SmokeTestError, match="not k-NN JSON"):
        smoke.smoke_test(runtime, "ep", [[1.0], [2.0]], algorithms.get("knn"), "regressor")
    assert runtime.sent["Accept"] == "application/json"
    with pytest.raises(smoke.SmokeTestError, match="Sent 3 rows, got 2"):
        smoke.smoke_test(runtime, "ep", [[1.0], [2.0], [3.0]], algorithms.get("sklearn"), "regressor")
    with pytest.raises(smoke.SmokeTestError, match="any known algorithm"):
        smoke.smoke_test(Runtime(), "ep", [[1.0]])


def test_form_offers_every_algorithm_with_its_section():
    params = build_params()
    assert params["algorithm"].value == "linear-learner"
    assert params["algorithm"].schema["enum"] == list(algorithms.ALGORITHMS)
    for algorithm in algorithms.ALGORITHMS.values():
        for hp in algorithm.hyperparameters:
            assert params[hp.param].schema["section"] == algorithm.section
    assert params["mini_batch_size"].schema["section"] == "Training (Linear Learner hyperparameters)"


def test_pipeline_modules_name_no_algorithm():
    """Only ``algorithms/`` knows an algorithm: the pipeline calls the interface."""
    root = Path(pipeline.__file__).parent
    for module in ("pipeline.py", "config.py", "scoring.py", "smoke.py"):
        text = (root / module).read_text().lower()
        for word in ("linear learner", "linear-learner", "linear_learner", "xgboost", "knn", "k-nn", "scikit",
                     "sklearn"):
            assert word not in text, (module, word)


def test_history_page_shows_the_algorithm_and_the_codes_sha256():
    from sagemaker_retrain.history_view import _data_cell

    record = {"dataset_uri": "include/data/housing.csv", "data_source": {"sha256": "cd" * 32},
              "rows": {"train": 400}, "algorithm": "sklearn", "code": CODE}
    cell = _data_cell(record)
    assert "sklearn" in cell and CODE["sha256"][:12] in cell and "cdcdcdcdcdcd" in cell
    assert "code sha256" not in _data_cell({**record, "algorithm": "xgboost", "code": None})


def test_a_run_choosing_another_algorithm_than_its_dags_gets_that_ones_defaults(tmp_path):
    """A model's form has its own algorithm's section only; a run naming another algorithm gives its
    hyperparameters in the conf, and the rest take the values that algorithm's section would have had."""
    (tmp_path / "scripts" / "demo").mkdir(parents=True)
    (tmp_path / "scripts" / "demo" / "train.py").write_text("print('hi')\n")
    xgboost_form = {n: p.value for n, p in build_params(algorithm="xgboost").items()}
    assert "epochs" not in xgboost_form and "xgboost_num_round" in xgboost_form
    run = algorithms.run_params({**xgboost_form, "algorithm": "linear-learner", "epochs": 7})
    assert run["epochs"] == 7  # given in the conf
    assert run["mini_batch_size"] == build_params()["mini_batch_size"].value  # the section's default
    pipeline._check_params(run, tmp_path)
    # A required hyperparameter of the chosen algorithm is still refused before anything is spent.
    ll_form = {n: p.value for n, p in build_params(algorithm="linear-learner").items()}
    with pytest.raises(ValueError, match="Param xgboost_num_round .* is required"):
        pipeline._check_params(algorithms.run_params({**ll_form, "algorithm": "xgboost"}), tmp_path)
    assert algorithms.run_params(ll_form) == ll_form  # the DAG's own algorithm: nothing to fill in
