"""End to end on the emulator: the retraining DAG with algorithm=xgboost, against a champion of another algorithm.

A weak Linear Learner serves first; an XGBoost challenger beats it on the same test rows and
replaces it (the champion's answers were read as Linear Learner's, from what served); then a weak
XGBoost challenger loses to the serving XGBoost model and the champion is kept.
"""

from __future__ import annotations

import json

import pytest

from offline_aws.airflow_run import dags_test
from sagemaker_retrain import algorithms

pytestmark = pytest.mark.slow
ENDPOINT = "algos-housing"
ROW = "0.00632,18.0,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,4.98"
WEAK_LL = {"endpoint_name": ENDPOINT, "epochs": 1, "learning_rate": 0.0005, "gate_threshold": 1000.0,
           "bake_seconds": 0, "termination_wait_seconds": 0}
XGB = {"endpoint_name": ENDPOINT, "algorithm": "xgboost", "xgboost_num_round": 60, "xgboost_max_depth": 4,
       "xgboost_eta": 0.2, "bake_seconds": 0, "termination_wait_seconds": 0}
WEAK_XGB = {**XGB, "xgboost_num_round": 1, "xgboost_eta": 0.01, "gate_threshold": 1000.0}


def _ok(result):
    assert result.state == "success", result.output[-6000:]


def _plan(result) -> dict:
    return result.xcoms["prepare"]


def _serving_image(aws) -> str:
    config = aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    model = aws.sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    container = aws.sm.describe_model(ModelName=model)
    container = container.get("PrimaryContainer") or container["Containers"][0]
    if "Image" in container:
        return container["Image"]
    package = aws.sm.describe_model_package(ModelPackageName=container["ModelPackageName"])
    return package["InferenceSpecification"]["Containers"][0]["Image"]


@pytest.fixture(scope="module")
def linear_learner_champion(offline_aws):
    result = dags_test(offline_aws.env, conf=WEAK_LL)
    _ok(result)
    assert algorithms.of_image(_serving_image(offline_aws)).name == "linear-learner"
    return result


@pytest.fixture(scope="module")
def xgboost_promoted(offline_aws, linear_learner_champion):
    result = dags_test(offline_aws.env, conf=XGB)
    _ok(result)
    return result


def test_xgboost_challenger_replaces_a_linear_learner_champion(offline_aws, linear_learner_champion,
                                                              xgboost_promoted):
    run = xgboost_promoted
    plan = _plan(run)
    assert plan["algorithm"] == "xgboost"
    job = plan["training_config"]
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-xgboost:1.7-1")
    assert job["HyperParameters"]["objective"] == "reg:squarederror" and job["HyperParameters"]["num_round"] == "60"
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "validation"]
    evidence = run.xcoms["gate.evidence"]
    assert evidence["algorithms"] == {"challenger": "xgboost", "champion": "linear-learner"}
    scores = evidence["scores"]
    assert scores["challenger"]["mse"] < scores["champion"]["mse"], scores
    assert evidence["decision"]["deploy"] is True
    assert run.states["publish"] == "success"
    assert algorithms.of_image(_serving_image(offline_aws)).name == "xgboost"
    body = offline_aws.runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv",
                                               Accept="application/json", Body=ROW)["Body"].read()
    assert 5.0 < json.loads(body)["predictions"][0]["score"] < 60.0
    assert len(run.xcoms["wait_for_endpoint"]["smoke_scores"]) == 5
    package = offline_aws.sm.describe_model_package(ModelPackageName=evidence["package"]["arn"])
    assert package["InferenceSpecification"]["Containers"][0]["Image"].endswith("/sagemaker-xgboost:1.7-1")
    assert package["CustomerMetadataProperties"]["algorithm"] == "xgboost"


def test_weak_xgboost_loses_to_the_serving_xgboost_and_the_champion_stays(offline_aws, xgboost_promoted):
    serving = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    run = dags_test(offline_aws.env, conf=WEAK_XGB)
    _ok(run)
    evidence = run.xcoms["gate.evidence"]
    assert evidence["algorithms"] == {"challenger": "xgboost", "champion": "xgboost"}
    assert evidence["decision"]["deploy"] is False, evidence["decision"]
    assert evidence["scores"]["challenger"]["mse"] > evidence["scores"]["champion"]["mse"]
    assert run.states["keep_champion"] == "success"
    assert offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == serving


def test_script_mode_challenger_against_an_xgboost_champion(offline_aws, xgboost_promoted):
    """The user's own scikit-learn script: packaged, uploaded, its sha256 in the lineage, scored against XGBoost."""
    import hashlib

    conf = {"endpoint_name": ENDPOINT, "algorithm": "sklearn", "gate_threshold": 1000.0, "bake_seconds": 0,
            "termination_wait_seconds": 0, "sklearn_source_dir": "tests/e2e/scripts/housing_regressor",
            "sklearn_hyperparameters": {"n_estimators": 30, "max_depth": 6}}
    run = dags_test(offline_aws.env, conf=conf)
    _ok(run)
    plan = _plan(run)
    code = plan["code"]
    bucket, _, key = code["uri"][5:].partition("/")
    uploaded = offline_aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(uploaded).hexdigest() == code["sha256"]
    job = offline_aws.sm.describe_training_job(TrainingJobName=plan["names"]["training_job"])
    assert job["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert job["HyperParameters"]["n_estimators"] == "30"
    tags = {t["Key"]: t["Value"] for t in offline_aws.sm.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
    assert tags["sagemaker-retrain:code-sha256"] == code["sha256"]
    evidence = run.xcoms["gate.evidence"]
    assert evidence["algorithms"] == {"challenger": "sklearn", "champion": "xgboost"}
    scores = evidence["scores"]
    assert scores["challenger"]["mse"] < 100.0 and scores["champion"]["mse"] < 100.0, scores
    package = offline_aws.sm.describe_model_package(ModelPackageName=evidence["package"]["arn"])
    assert package["CustomerMetadataProperties"]["code-sha256"] == code["sha256"]
    promoted = scores["challenger"]["mse"] < scores["champion"]["mse"]
    assert evidence["decision"]["deploy"] is promoted
    expected = "sklearn" if promoted else "xgboost"
    assert algorithms.of_image(_serving_image(offline_aws)).name == expected


def test_knn_regressor_end_to_end(offline_aws):
    run = dags_test(offline_aws.env, conf={"mode": "ephemeral", "endpoint_name": "knn-housing", "algorithm": "knn",
                                           "knn_k": 5, "knn_sample_size": 300, "gate_threshold": 1000.0})
    _ok(run)
    job = _plan(run)["training_config"]
    assert job["HyperParameters"] == {"feature_dim": "12", "predictor_type": "regressor", "k": "5",
                                      "sample_size": "300"}
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "test"]
    evidence = run.xcoms["gate.evidence"]
    assert evidence["algorithms"] == {"challenger": "knn", "champion": None}
    assert 0.0 < evidence["scores"]["challenger"]["mse"] < 1000.0
    assert run.states["wait_for_endpoint"] == "success"


def test_missing_num_round_is_refused_before_anything_is_spent(offline_aws):
    before = offline_aws.sm.list_training_jobs()["TrainingJobSummaries"]
    run = dags_test(offline_aws.env, conf={"mode": "ephemeral", "algorithm": "xgboost"})
    assert run.state == "failed"
    assert "Param xgboost_num_round" in run.output
    assert offline_aws.sm.list_training_jobs()["TrainingJobSummaries"] == before


def test_binary_classifiers_of_two_algorithms_on_one_endpoint(offline_aws):
    """XGBoost binary:logistic serves (probabilities), then a k-NN classifier (labels) is gated against it."""
    common = {"endpoint_name": "chas-housing", "target_column": "chas", "predictor_type": "binary_classifier",
              "gate_metric": "test:binary_classification_accuracy", "gate_threshold": 0.5, "bake_seconds": 0,
              "termination_wait_seconds": 0}
    first = dags_test(offline_aws.env, conf={**common, "algorithm": "xgboost", "xgboost_num_round": 20})
    _ok(first)
    assert _plan(first)["training_config"]["HyperParameters"]["objective"] == "binary:logistic"
    scores = first.xcoms["gate.evidence"]["scores"]["challenger"]
    assert 0.5 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["auc"] <= 1.0, scores
    second = dags_test(offline_aws.env, conf={**common, "algorithm": "knn", "knn_k": 5, "knn_sample_size": 300})
    _ok(second)
    evidence = second.xcoms["gate.evidence"]
    assert evidence["algorithms"] == {"challenger": "knn", "champion": "xgboost"}
    challenger, champion = evidence["scores"]["challenger"], evidence["scores"]["champion"]
    assert champion["accuracy"] == scores["accuracy"]  # the same rows, the same serving model
    assert evidence["decision"]["deploy"] is (challenger["accuracy"] > champion["accuracy"])


def test_a_script_that_raises_fails_the_run_and_the_champion_keeps_serving(offline_aws, xgboost_promoted):
    """The team's script raises (scikit-learn refuses ``n_estimators=0``): the job ends Failed with the
    script's own error as its reason, the run fails naming it, and the endpoint is left as it was."""
    serving = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    conf = {"endpoint_name": ENDPOINT, "algorithm": "sklearn", "gate_threshold": 1000.0, "bake_seconds": 0,
            "termination_wait_seconds": 0, "sklearn_source_dir": "tests/e2e/scripts/housing_regressor",
            "sklearn_hyperparameters": {"n_estimators": 0}}
    run = dags_test(offline_aws.env, conf=conf)
    assert run.state == "failed", run.output[-6000:]
    assert run.states["train"] == "failed"
    job = offline_aws.sm.describe_training_job(TrainingJobName=_plan(run)["names"]["training_job"])
    assert job["TrainingJobStatus"] == "Failed"
    assert "n_estimators" in job["FailureReason"], job["FailureReason"]
    assert "n_estimators" in run.output  # the task log carries the script's reason
    endpoint = offline_aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", serving)
    assert run.states.get("deploy") in (None, "skipped", "upstream_failed")
