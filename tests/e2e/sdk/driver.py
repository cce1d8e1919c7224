"""Drives the SageMaker Python SDK (v2) against the offline emulator; run inside ``.venv-sdk/``.

``python driver.py SCENARIO SPEC.json OUT.json``: the AWS environment (``AWS_ENDPOINT_URL``, dummy
credentials, region) is the emulator's, as ``Emulator.env()`` gives it; the SDK's boto3 clients honour
``AWS_ENDPOINT_URL``. SPEC names the data files (``.npy``/CSV written by the test) and the role; OUT gets
what the SDK returned (predictions, the artifact's URI, the job's description), which the test asserts on.
Only the SDK's public API is called; each endpoint is deleted at the end, whatever happened.

Waiting: ``fit(wait=False)`` then ``Session.logs_for_job(job, wait=True, poll=...)`` (what ``fit(wait=True)``
runs, tailing the job's CloudWatch log, with a shorter poll than its fixed 10 s; XGBoost only, as it
sleeps 5 s before it looks) or ``Session.wait_for_job(job, poll=...)`` (``fit(logs="None")``'s wait), and
``deploy(wait=False)`` then ``Session.wait_for_endpoint(name, poll=...)`` (what ``deploy(wait=True)`` runs,
whose poll is fixed at 30 s).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import sagemaker
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer
from sagemaker.sklearn import SKLearn

POLL = 0.2  # seconds between DescribeTrainingJob / DescribeEndpoint calls
INSTANCE_TYPE = "ml.m5.large"


TIMES: dict[str, float] = {}
LOGS: list[str] = []


def train(session: sagemaker.Session, estimator, inputs, logs: bool = False, **fit_kwargs) -> dict:
    """fit(); with ``logs`` the job's CloudWatch log as the SDK prints it is kept in ``LOGS``."""
    started = time.monotonic()
    estimator.fit(inputs, wait=False, **fit_kwargs)
    job = estimator.latest_training_job.name
    if logs:  # the SDK sleeps 5 s before its first DescribeTrainingJob here, whatever the poll
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            session.logs_for_job(job, wait=True, poll=POLL, log_type="All")
        LOGS.extend(printed.getvalue().splitlines())
    else:
        session.wait_for_job(job, poll=POLL)
    TIMES["fit"] = time.monotonic() - started
    return session.describe_training_job(job)


def deploy_and_predict(session: sagemaker.Session, estimator, rows, **kwargs):
    """(predictor, its answers for ``rows``); the endpoint is deleted whatever happens."""
    started = time.monotonic()
    predictor = estimator.deploy(initial_instance_count=1, instance_type=INSTANCE_TYPE, wait=False, **kwargs)
    try:
        session.wait_for_endpoint(predictor.endpoint_name, poll=POLL)
        TIMES["deploy"] = time.monotonic() - started
        return predictor, predictor.predict(rows)
    finally:
        predictor.delete_endpoint()


def xgboost(session: sagemaker.Session, spec: dict) -> dict:
    region = session.boto_region_name
    image = sagemaker.image_uris.retrieve("xgboost", region, "1.7-1")
    train_uri = session.upload_data(spec["train_csv"], key_prefix="sdk-xgboost/train")
    estimator = Estimator(image, spec["role"], instance_count=1, instance_type=INSTANCE_TYPE,
                          hyperparameters={"objective": "reg:squarederror", "num_round": 30, "max_depth": 4,
                                           "eta": 0.3},
                          sagemaker_session=session)
    desc = train(session, estimator, {"train": TrainingInput(train_uri, content_type="text/csv")}, logs=True)
    predictor, answers = deploy_and_predict(session, estimator, np.load(spec["rows"]), serializer=CSVSerializer(),
                                            deserializer=CSVDeserializer())
    return {"image": image, "model_data": estimator.model_data, "status": desc["TrainingJobStatus"],
            "metrics": desc.get("FinalMetricDataList", []), "endpoint": predictor.endpoint_name, "logs": LOGS,
            "predictions": [[float(v) for v in row] for row in answers]}


def knn(session: sagemaker.Session, spec: dict) -> dict:
    X, y = np.load(spec["train_x"]), np.load(spec["train_y"])
    estimator = sagemaker.KNN(role=spec["role"], instance_count=1, instance_type=INSTANCE_TYPE, k=spec["k"],
                              sample_size=len(y), predictor_type="classifier", sagemaker_session=session)
    desc = train(session, estimator, estimator.record_set(X.astype("float32"), labels=y.astype("float32")))
    # KNNPredictor: RecordSerializer / RecordDeserializer
    predictor, records = deploy_and_predict(session, estimator, np.load(spec["test_x"]).astype("float32"))
    return {"status": desc["TrainingJobStatus"], "hyperparameters": desc["HyperParameters"],
            "channels": desc["InputDataConfig"], "endpoint": predictor.endpoint_name,
            "serializer": type(predictor.serializer).__name__, "deserializer": type(predictor.deserializer).__name__,
            "predicted_labels": [r.label["predicted_label"].float32_tensor.values[0] for r in records]}


def linear_learner(session: sagemaker.Session, spec: dict) -> dict:
    estimator = sagemaker.LinearLearner(role=spec["role"], instance_count=1, instance_type=INSTANCE_TYPE,
                                        predictor_type="regressor", sagemaker_session=session)
    channels = [estimator.record_set(np.load(spec[f"{c}_x"]).astype("float32"),
                                     labels=np.load(spec[f"{c}_y"]).astype("float32"), channel=c)
                for c in ("train", "validation")]
    # fit()'s mini_batch_size, else the SDK sends min(1000, records per host): 455 here
    desc = train(session, estimator, channels, mini_batch_size=30)
    # LinearLearnerPredictor: RecordSerializer / RecordDeserializer
    predictor, records = deploy_and_predict(session, estimator, np.load(spec["validation_x"]).astype("float32"))
    return {"status": desc["TrainingJobStatus"], "hyperparameters": desc["HyperParameters"],
            "metrics": desc.get("FinalMetricDataList", []), "model_data": estimator.model_data,
            "endpoint": predictor.endpoint_name,
            "serializer": type(predictor.serializer).__name__, "deserializer": type(predictor.deserializer).__name__,
            "scores": [r.label["score"].float32_tensor.values[0] for r in records]}


def sklearn(session: sagemaker.Session, spec: dict) -> dict:
    train_uri = session.upload_data(spec["train_csv"], key_prefix="sdk-sklearn/train")
    estimator = SKLearn(entry_point="train.py", source_dir=spec["source_dir"], framework_version="1.2-1",
                        py_version="py3", role=spec["role"], instance_count=1, instance_type=INSTANCE_TYPE,
                        hyperparameters={"n_estimators": spec["n_estimators"]}, sagemaker_session=session)
    desc = train(session, estimator, {"train": TrainingInput(train_uri, content_type="text/csv")})
    # SKLearnPredictor: NumpySerializer / NumpyDeserializer
    predictor, answers = deploy_and_predict(session, estimator, np.load(spec["rows"]))
    return {"image": desc["AlgorithmSpecification"]["TrainingImage"], "status": desc["TrainingJobStatus"],
            "model_data": estimator.model_data, "endpoint": predictor.endpoint_name,
            "serializer": type(predictor.serializer).__name__, "deserializer": type(predictor.deserializer).__name__,
            "predictions": np.asarray(answers).tolist()}


SCENARIOS = {"xgboost": xgboost, "knn": knn, "linear_learner": linear_learner, "sklearn": sklearn}


def main(scenario: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    # default_bucket named: the SDK computes its own name with STS GetCallerIdentity on an endpoint URL it
    # builds itself (``sts_regional_endpoint``), ignoring AWS_ENDPOINT_URL, so offline that call cannot work.
    session = sagemaker.Session(default_bucket=spec["bucket"])
    result = SCENARIOS[scenario](session, spec)
    result["default_bucket"] = session.default_bucket()
    result["sdk_version"] = sagemaker.__version__
    result["seconds"] = TIMES
    Path(out_path).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
