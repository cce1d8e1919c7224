"""The SageMaker Python SDK's own Linear Learner path, as an SDK user drives it, against the emulator.

The SDK is not installed in the project's venv (it does not resolve with Airflow's pins; its estimators,
LinearLearner among them, run from a venv of their own in ``test_sagemaker_sdk_estimators.py``). Here,
in-process and without it, these tests do what its ``sagemaker.LinearLearner`` estimator and
``LinearLearnerPredictor`` do, format for format, and check more of each format (shards, manifest, every
request type, classifiers):
``record_set()`` writes RecordIO-protobuf shards ``matrix_<i>.pbr`` and a manifest
``[{"prefix": ...}, "matrix_0.pbr", ...]`` (``tests/sdk_records.py``, protobuf's own runtime), ``fit()``
trains with ``S3DataType: ManifestFile`` / ``ShardedByS3Key`` and no ContentType, and the predictor
sends ``RecordSerializer`` bodies and reads ``RecordDeserializer`` answers (``label["score"]``,
``label["predicted_label"]``). The AWS CLI then reads the same job and endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
import sdk_records
from botocore.exceptions import ClientError, WaiterError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "emulator"))
from emu_helpers import IMAGE, ROLE, housing_split  # noqa: E402

from offline_aws.server import start_emulator  # noqa: E402

BUCKET = "sdk-bucket"
VENV_BIN = Path(sys.executable).parent
RECORDIO = "application/x-recordio-protobuf"


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator(time_scale=0)
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def clients(emulator):
    kw = dict(endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id="test",
              aws_secret_access_key="test")
    out = {name: boto3.client(name, **kw) for name in ("s3", "sagemaker", "sagemaker-runtime")}
    out["s3"].create_bucket(Bucket=BUCKET)
    return out


def record_set(s3, name: str, X: np.ndarray, y: np.ndarray, channel: str, instance_count: int) -> dict:
    """``LinearLearner.record_set(X, labels=y, channel=...)`` -> its channel, as ``fit()`` sends it."""
    manifest = sdk_records.upload_numpy_to_s3_shards(s3, instance_count, BUCKET, f"sagemaker-data/{name}-{channel}/",
                                                     X, y)
    return {"ChannelName": channel, "DataSource": {"S3DataSource": {
        "S3DataType": "ManifestFile", "S3Uri": manifest, "S3DataDistributionType": "ShardedByS3Key"}}}


def fit(clients, name: str, hyperparameters: dict, channels: list[dict], instance_count: int = 1) -> dict:
    sm = clients["sagemaker"]
    sm.create_training_job(
        TrainingJobName=name, RoleArn=ROLE, HyperParameters={k: str(v) for k, v in hyperparameters.items()},
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        InputDataConfig=channels, OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": instance_count, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    try:  # the SDK's fit() waits the same way; a Failed job ends the waiter with an error
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name,
                                                                 WaiterConfig={"Delay": 0.05, "MaxAttempts": 2000})
    except WaiterError:
        pass
    return sm.describe_training_job(TrainingJobName=name)


def deploy(clients, name: str, desc: dict) -> None:
    sm = clients["sagemaker"]
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 2000})


def predict(clients, name: str, X: np.ndarray) -> list:
    """``LinearLearnerPredictor.predict(X)``: RecordSerializer in, RecordDeserializer out."""
    answer = clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName=name, ContentType=RECORDIO, Accept=RECORDIO,
        Body=sdk_records.write_numpy_to_dense_tensor(np.atleast_2d(X)))
    assert answer["ContentType"] == RECORDIO
    return sdk_records.read_records(answer["Body"].read())


def _metric_names(desc: dict) -> set[str]:
    return {m["MetricName"] for m in desc["FinalMetricDataList"]}


# --- regressor: the walkthrough's housing job through record_set ------------------------------
@pytest.fixture(scope="module")
def housing_job(clients):
    (ytr, Xtr), (yva, Xva), _ = housing_split()
    channels = [record_set(clients["s3"], "housing", Xtr.astype("float32"), ytr.astype("float32"), "train", 2),
                record_set(clients["s3"], "housing", Xva.astype("float32"), yva.astype("float32"), "validation", 1)]
    desc = fit(clients, "sdk-housing", {"feature_dim": 12, "predictor_type": "regressor", "mini_batch_size": 30},
               channels, instance_count=2)
    return desc, (Xva, yva)


def test_record_set_manifest_trains_the_housing_regressor(clients, housing_job):
    desc, _ = housing_job
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["validation:rmse"] <= 3.9  # AWS: 3.557 on the same split
    assert _metric_names(desc) == {"train:progress", "train:throughput", "train:objective_loss",
                                   "validation:objective_loss", "validation:objective_loss:final", "validation:rmse",
                                   "validation:mse", "validation:r2", "validation:mae", "validation:absolute_loss"}
    print(f"\nSDK-path housing validation:rmse = {metrics['validation:rmse']:.4f}")
    manifest = clients["s3"].get_object(Bucket=BUCKET, Key="sagemaker-data/housing-train/.amazon.manifest")
    assert json.loads(manifest["Body"].read()) == [{"prefix": f"s3://{BUCKET}/sagemaker-data/housing-train/"},
                                                   "matrix_0.pbr", "matrix_1.pbr"]


def test_the_recordio_predictor_answers_as_the_sdk_reads_it(clients, housing_job):
    desc, (Xva, yva) = housing_job
    deploy(clients, "sdk-housing", desc)
    records = predict(clients, "sdk-housing", Xva[:5].astype("float32"))
    assert len(records) == 5
    for record in records:
        assert record.label["score"].WhichOneof("value") == "float32_tensor"
        assert len(record.label["score"].float32_tensor.values) == 1
        assert "predicted_label" not in record.label and len(record.features) == 0
    scores = [r.label["score"].float32_tensor.values[0] for r in records]
    as_json = json.loads(clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName="sdk-housing", ContentType="text/csv", Accept="application/json",
        Body="\n".join(",".join(repr(float(v)) for v in row) for row in Xva[:5].astype("float32")))["Body"].read())
    assert scores == pytest.approx([p["score"] for p in as_json["predictions"]], rel=1e-5)
    assert np.sqrt(np.mean((np.array(scores) - yva[:5]) ** 2)) < 8


@pytest.mark.parametrize("body_type", ["float32", "float64"])
def test_a_float64_request_is_read_like_float32(clients, housing_job, body_type):
    _, (Xva, _) = housing_job
    records = predict(clients, "sdk-housing", Xva[:3].astype(body_type))
    assert len(records) == 3


# --- classifiers ------------------------------------------------------------------------------
def _classes(k: int, n: int = 1200, d: int = 5, seed: int = 3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    y = rng.integers(0, k, size=n)
    X = (centers[y] + rng.normal(size=(n, d))).astype("float32")
    return X, y.astype("float32")


@pytest.mark.parametrize(("predictor_type", "k"), [("binary_classifier", 2), ("multiclass_classifier", 3)])
def test_classifiers_through_record_set_and_the_recordio_predictor(clients, predictor_type, k):
    X, y = _classes(k)
    name = f"sdk-{predictor_type.replace('_', '-')}"
    channels = [record_set(clients["s3"], name, X[:900], y[:900], "train", 1),
                record_set(clients["s3"], name, X[900:1050], y[900:1050], "validation", 1),
                record_set(clients["s3"], name, X[1050:], y[1050:], "test", 1)]
    hp = {"feature_dim": 5, "predictor_type": predictor_type, "mini_batch_size": 100, "epochs": 5}
    if k > 2:
        hp["num_classes"] = k
    desc = fit(clients, name, hp, channels)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    tests = {n for n in _metric_names(desc) if n.startswith("test:")}
    assert tests == ({"test:binary_classification_accuracy", "test:binary_f_beta", "test:precision",
                      "test:recall", "test:roc_auc_score", "test:objective_loss"} if k == 2 else
                     {"test:multiclass_accuracy", "test:multiclass_top_k_accuracy", "test:dcg",
                      "test:macro_precision", "test:macro_recall", "test:macro_f_beta", "test:objective_loss"})
    deploy(clients, name, desc)
    records = predict(clients, name, X[1050:1100])
    labels = np.array([r.label["predicted_label"].float32_tensor.values[0] for r in records])
    assert np.mean(labels == y[1050:1100]) >= 0.9
    for record in records:
        scores = list(record.label["score"].float32_tensor.values)
        if k == 2:
            assert len(scores) == 1 and 0 <= scores[0] <= 1
        else:
            assert len(scores) == k and sum(scores) == pytest.approx(1, abs=1e-5)
            assert int(record.label["predicted_label"].float32_tensor.values[0]) == int(np.argmax(scores))
    # the same rows in every documented request format give the same answer
    rows = X[1050:1053]
    bodies = {
        "text/csv": "\n".join(",".join(repr(float(v)) for v in r) for r in rows),
        "application/json": json.dumps({"instances": [{"features": r.tolist()} for r in rows]}),
        "application/jsonlines": "\n".join(json.dumps({"data": {"features": {"values": r.tolist()}}}) for r in rows),
    }
    sparse = json.dumps({"instances": [{"data": {"features": {"keys": list(range(5)), "shape": [5],
                                                              "values": r.tolist()}}} for r in rows]})
    reference = [dict(p) for p in json.loads(clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName=name, ContentType="application/json", Accept="application/json", Body=sparse)["Body"].read())[
        "predictions"]]
    for content_type, body in bodies.items():
        answer = clients["sagemaker-runtime"].invoke_endpoint(EndpointName=name, ContentType=content_type,
                                                             Accept="application/jsonlines", Body=body)
        lines = [json.loads(line) for line in answer["Body"].read().decode().splitlines() if line.strip()]
        assert [p["predicted_label"] for p in lines] == [p["predicted_label"] for p in reference]
        assert np.allclose([p["score"] for p in lines], [p["score"] for p in reference], rtol=1e-5)


# --- errors the SDK user meets ------------------------------------------------------------------
def test_unsupported_content_type_and_accept_get_the_model_error(clients, housing_job):
    runtime = clients["sagemaker-runtime"]
    for kwargs, status in (({"ContentType": "text/plain"}, 415), ({"ContentType": "text/csv", "Accept": "image/png"}, 406)):
        with pytest.raises(ClientError) as err:
            runtime.invoke_endpoint(EndpointName="sdk-housing", Body=",".join(["1"] * 12), **kwargs)
        assert err.value.response["Error"]["Code"] == "ModelError"
        assert err.value.response["OriginalStatusCode"] == status


def test_a_missing_manifest_object_fails_the_job(clients):
    s3 = clients["s3"]
    (ytr, Xtr), _, _ = housing_split()
    channel = record_set(s3, "gone", Xtr.astype("float32"), ytr.astype("float32"), "train", 2)
    s3.delete_object(Bucket=BUCKET, Key="sagemaker-data/gone-train/matrix_1.pbr")
    desc = fit(clients, "sdk-gone", {"feature_dim": 12, "predictor_type": "regressor"}, [channel])
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: Data download failed:")
    assert f"s3://{BUCKET}/sagemaker-data/gone-train/matrix_1.pbr listed in the manifest file" in desc["FailureReason"]


def test_augmented_manifest_is_refused_clearly(clients):
    channel = {"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "AugmentedManifestFile", "S3Uri": f"s3://{BUCKET}/x.manifest", "AttributeNames": ["source-ref"]}}}
    desc = fit(clients, "sdk-augmented", {"feature_dim": 12, "predictor_type": "regressor"}, [channel])
    assert desc["TrainingJobStatus"] == "Failed" and "AugmentedManifestFile" in desc["FailureReason"]


# --- the AWS CLI reads the same job and endpoint ----------------------------------------------
def test_the_aws_cli_reads_the_sdk_job_and_endpoint(emulator, clients, housing_job, tmp_path):
    env = {**os.environ, **emulator.env(), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}

    def aws(*args: str) -> dict:
        done = subprocess.run([str(VENV_BIN / "aws"), *args], env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    job = aws("sagemaker", "describe-training-job", "--training-job-name", "sdk-housing")
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    assert {m["MetricName"] for m in job["FinalMetricDataList"]} == _metric_names(housing_job[0])
    endpoint = aws("sagemaker", "describe-endpoint", "--endpoint-name", "sdk-housing")
    assert endpoint["EndpointStatus"] == "InService"
