"""The SageMaker Python SDK's own estimators (v2, a client nobody here wrote) against the emulator.

The SDK does not resolve with Airflow's pins (v2 needs ``protobuf<7``; the project's lock has protobuf 7),
so it runs from its own venv, ``.venv-sdk/``, created here from ``tests/e2e/sdk/requirements-sdk.txt``
(hashed, ``make lock``) with the project's uv and reused while that lock is unchanged, as
``tests/infra/test_template.py`` does for checkov. ``tests/e2e/sdk/driver.py`` runs in that venv with the
emulator's environment (``AWS_ENDPOINT_URL``, dummy credentials; ``sagemaker.Session()`` as a user makes
it, its default bucket included) and writes what the SDK returned as JSON; the assertions are here, against
libraries the SDK does not use: the ``xgboost`` library on the downloaded artifact, scikit-learn's
``KNeighborsClassifier`` and the same script-mode model trained in this process.

- ``Estimator`` with ``image_uris.retrieve("xgboost", region, "1.7-1")`` on the housing CSV (label first, no
  header), deployed with ``CSVSerializer``/``CSVDeserializer`` (the generic ``Predictor`` the SDK returns
  for an image URI has no CSV default; the SDK's XGBoost docs set these);
- ``sagemaker.KNN`` fitted on ``record_set()`` (RecordIO-protobuf in the default bucket), its ``KNNPredictor``
  with the default ``RecordSerializer``/``RecordDeserializer``;
- ``sagemaker.LinearLearner`` on the walkthrough's housing split through ``record_set()`` (train and
  validation channels), its ``LinearLearnerPredictor`` likewise (the pipeline's own algorithm; the
  format-for-format version of this path is ``test_emulator_sdk_path.py``);
- ``sagemaker.sklearn.SKLearn(entry_point="train.py", ...)`` (``tests/e2e/scripts/housing_regressor``), its
  ``SKLearnPredictor`` with the default ``NumpySerializer``/``NumpyDeserializer``.

``sagemaker.Session(default_bucket="sagemaker-us-east-1-123456789012")`` names the bucket the SDK would name
itself: to make the name it calls STS GetCallerIdentity on an endpoint URL it builds (``sts_regional_endpoint``,
passed as ``endpoint_url``), which takes precedence over ``AWS_ENDPOINT_URL``, so offline that call goes to
AWS. The SDK still creates the bucket (HeadBucket, CreateBucket on the emulator). Telemetry (a GET to an AWS
URL on every ``fit()``) is opted out in the SDK's config (``sdk/config.yaml``), so the SDK sends nothing
outside the emulator; that costs about 4 s a scenario, as the SDK validates the whole config against its JSON
schema on every config lookup.

The driver waits with the SDK's own calls but shorter polls: ``fit(wait=False)`` then
``Session.logs_for_job(job, wait=True, poll=0.2)`` (what ``fit()`` runs, tailing the CloudWatch log), and
``deploy(wait=False)`` then ``Session.wait_for_endpoint(name, poll=0.2)`` (``deploy()``'s poll is fixed at
30 s). Every endpoint is deleted by the driver; the test checks none is left.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import boto3
import numpy as np
import pytest
from locked_venv import venv_from_lock

from offline_aws.server import start_emulator

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
SDK_DIR = Path(__file__).resolve().parent / "sdk"
SDK_LOCK = SDK_DIR / "requirements-sdk.txt"
SDK_VENV = PROJECT / ".venv-sdk"
DRIVER = SDK_DIR / "driver.py"
VENV_BIN = Path(sys.executable).parent
HOUSING = PROJECT / "include" / "data" / "housing.csv"
SCRIPT_DIR = PROJECT / "tests" / "e2e" / "scripts" / "housing_regressor"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
REGION = "us-east-1"
DEFAULT_BUCKET = "sagemaker-us-east-1-123456789012"  # the name the SDK would make; created by the SDK


def _sdk_venv() -> Path:
    """``.venv-sdk/`` with the SDK from its lock (``tests/locked_venv.py``); its python."""
    return venv_from_lock(SDK_VENV, SDK_LOCK) / "python"


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    started = time.monotonic()
    python = _sdk_venv()
    print(f".venv-sdk ready in {time.monotonic() - started:.1f} s")
    return python


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator(time_scale=0)
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def clients(emulator):
    kw = dict(endpoint_url=emulator.url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    return {name: boto3.client(name, **kw) for name in ("s3", "sagemaker")}


@pytest.fixture()
def run_sdk(sdk_python, emulator, tmp_path):
    """Runs one driver scenario in ``.venv-sdk`` with only the emulator's AWS environment; its JSON result."""

    def run(scenario: str, spec: dict) -> dict:
        spec_path, out_path = tmp_path / "spec.json", tmp_path / "out.json"
        spec_path.write_text(json.dumps({"role": ROLE, "bucket": DEFAULT_BUCKET, **spec}))
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
               "SAGEMAKER_USER_CONFIG_OVERRIDE": str(SDK_DIR / "config.yaml"), **emulator.env()}
        proc = subprocess.run([sdk_python, DRIVER, scenario, spec_path, out_path], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
        result = json.loads(out_path.read_text())
        print(f"{scenario}: SDK {result['sdk_version']}, seconds {result['seconds']}")
        return result

    return run


def housing() -> tuple[np.ndarray, np.ndarray]:
    data = np.genfromtxt(HOUSING, delimiter=",", skip_header=1)  # header; the label (medv) is last
    return data[:, -1], data[:, :-1]


def write_label_first_csv(path: Path, y: np.ndarray, X: np.ndarray) -> Path:
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.10g")
    return path


def read_member(s3, uri: str, member: str) -> bytes:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return tar.extractfile(member).read()


def assert_no_endpoint_left(clients, name: str) -> None:
    names = [e["EndpointName"] for e in clients["sagemaker"].list_endpoints()["Endpoints"]]
    assert name not in names


def test_xgboost_estimator_deploys_and_the_artifact_predicts_what_the_endpoint_answers(run_sdk, clients, tmp_path):
    import xgboost

    y, X = housing()
    rows = X[::25]
    np.save(tmp_path / "rows.npy", rows)
    result = run_sdk("xgboost", {"train_csv": str(write_label_first_csv(tmp_path / "housing.csv", y, X)),
                                 "rows": str(tmp_path / "rows.npy")})

    assert result["image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert result["status"] == "Completed"
    assert result["default_bucket"] == DEFAULT_BUCKET
    clients["s3"].head_bucket(Bucket=DEFAULT_BUCKET)  # made by the SDK's Session.default_bucket()
    assert result["model_data"].startswith(f"s3://{result['default_bucket']}/")
    # fit()'s log tailing found the job's CloudWatch stream: the container's last round, as the SDK prints it
    assert any(line.startswith("[29]#011train-rmse:") for line in result["logs"]), result["logs"][-5:]
    metrics = {m["MetricName"]: m["Value"] for m in result["metrics"]}
    assert 0 < metrics["train:rmse"] < 3  # 30 rounds of depth-4 trees fit the housing prices to well under $3k

    answers = np.array(result["predictions"])
    assert answers.shape == (len(rows), 1)
    booster = xgboost.Booster()
    booster.load_model(bytearray(read_member(clients["s3"], result["model_data"], "xgboost-model")))
    local = booster.predict(xgboost.DMatrix(rows))
    np.testing.assert_allclose(answers[:, 0], local, rtol=1e-5, atol=1e-4)
    assert np.corrcoef(answers[:, 0], y[::25])[0, 1] > 0.9
    assert_no_endpoint_left(clients, result["endpoint"])


def test_knn_estimator_on_record_set_predicts_scikit_learns_labels(run_sdk, clients, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier

    X, y = load_iris(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(y))
    train, test = perm[:120], perm[120:]
    k = 5
    for name, array in {"train_x": X[train], "train_y": y[train], "test_x": X[test]}.items():
        np.save(tmp_path / f"{name}.npy", array)
    result = run_sdk("knn", {"k": k, **{n: str(tmp_path / f"{n}.npy") for n in ("train_x", "train_y", "test_x")}})

    assert result["status"] == "Completed"
    hps = result["hyperparameters"]
    assert (hps["k"], hps["sample_size"], hps["predictor_type"], hps["feature_dim"]) == ("5", "120", "classifier", "4")
    (channel,) = result["channels"]
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"  # record_set()'s manifest
    assert (result["serializer"], result["deserializer"]) == ("RecordSerializer", "RecordDeserializer")
    expected = KNeighborsClassifier(n_neighbors=k).fit(X[train].astype("float32"), y[train]).predict(
        X[test].astype("float32"))
    assert result["predicted_labels"] == [float(v) for v in expected]
    assert np.mean(np.array(result["predicted_labels"]) == y[test]) > 0.85
    assert_no_endpoint_left(clients, result["endpoint"])


def test_linear_learner_estimator_on_record_set_predicts_with_its_artifact(run_sdk, clients, tmp_path):
    from offline_aws.linear_learner.model import read_model_tar_gz

    y, X = housing()
    perm = np.random.RandomState(42).permutation(len(y))  # the walkthrough's split (tests/unit/emulator)
    n_test = int(np.ceil(0.1 * len(y)))
    arrays = {"train_x": X[perm[n_test:]], "train_y": y[perm[n_test:]],
              "validation_x": X[perm[:n_test]], "validation_y": y[perm[:n_test]]}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    result = run_sdk("linear_learner", {n: str(tmp_path / f"{n}.npy") for n in arrays})

    assert result["status"] == "Completed"
    hps = result["hyperparameters"]
    assert (hps["feature_dim"], hps["predictor_type"], hps["mini_batch_size"]) == ("12", "regressor", "30")
    assert (result["serializer"], result["deserializer"]) == ("RecordSerializer", "RecordDeserializer")
    metrics = {m["MetricName"]: m["Value"] for m in result["metrics"]}
    print(f"SDK LinearLearner housing validation:rmse = {metrics['validation:rmse']:.4f}")
    assert metrics["validation:rmse"] <= 3.9  # AWS: 3.557 on the same split
    scores = np.array(result["scores"])
    rmse = float(np.sqrt(np.mean((scores - arrays["validation_y"]) ** 2)))
    assert rmse == pytest.approx(metrics["validation:rmse"], rel=1e-3)
    bucket, _, key = result["model_data"][len("s3://"):].partition("/")
    model = read_model_tar_gz(clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    np.testing.assert_allclose(scores, model.predict(arrays["validation_x"].astype("float32"))["score"], rtol=1e-5)
    assert_no_endpoint_left(clients, result["endpoint"])


def test_sklearn_script_mode_estimator_predicts_what_its_script_trains(run_sdk, clients, tmp_path):
    from sklearn.ensemble import RandomForestRegressor

    y, X = housing()
    rows = X[1::20]
    np.save(tmp_path / "rows.npy", rows)
    n_estimators = 20
    result = run_sdk("sklearn", {"train_csv": str(write_label_first_csv(tmp_path / "housing.csv", y, X)),
                                 "rows": str(tmp_path / "rows.npy"), "source_dir": str(SCRIPT_DIR),
                                 "n_estimators": n_estimators})

    assert result["image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert result["status"] == "Completed"
    assert (result["serializer"], result["deserializer"]) == ("NumpySerializer", "NumpyDeserializer")
    # the script's model (random_state=0), trained here on the same CSV as the job read it
    data = np.loadtxt(tmp_path / "housing.csv", delimiter=",")
    local = RandomForestRegressor(n_estimators=n_estimators, random_state=0).fit(data[:, 1:], data[:, 0])
    np.testing.assert_allclose(np.array(result["predictions"]), local.predict(rows), rtol=1e-9)
    assert_no_endpoint_left(clients, result["endpoint"])
