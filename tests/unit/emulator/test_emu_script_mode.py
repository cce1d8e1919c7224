"""Script mode with the scikit-learn container through the backend: the user's script in a subprocess."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import boto3
import joblib
import numpy as np
import pytest
from algo_helpers import (
    SKLEARN_IMAGE,
    artifact_members,
    csv_rows,
    deploy,
    invoke,
    log_lines,
    metrics,
    shuffled,
    train_job,
)
from emu_helpers import BUCKET, wait_for, wait_job
from sklearn.datasets import load_iris

IRIS_SCRIPT = Path(__file__).resolve().parents[3] / "include" / "models" / "scripts" / "iris_classifier"


def sourcedir(files: dict[str, str], key: str) -> str:
    """A sourcedir.tar.gz as the SageMaker SDK packs it, uploaded; returns its s3:// URI."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    return f"s3://{BUCKET}/{key}"


def sdk_hyperparameters(program: str, submit: str, **user) -> dict[str, str]:
    """What the SDK's framework estimator sends: every value JSON-encoded."""
    hps = {"sagemaker_program": program, "sagemaker_submit_directory": submit,
           "sagemaker_container_log_level": 20, "sagemaker_region": "us-east-1", **user}
    return {k: json.dumps(v) for k, v in hps.items()}


def test_iris_script_trains_in_a_subprocess_and_serves_through_model_fn(backend):
    X, y = shuffled(*load_iris(return_X_y=True), seed=5)
    submit = sourcedir({"train.py": (IRIS_SCRIPT / "train.py").read_text()}, "code/iris/sourcedir.tar.gz")
    desc = train_job(
        backend, "sk-iris", SKLEARN_IMAGE, sdk_hyperparameters("train.py", submit, n_estimators=25, max_depth=4),
        {"train": csv_rows(y[:120], X[:120]), "validation": csv_rows(y[120:], X[120:])},
        metric_definitions=[{"Name": "validation:accuracy", "Regex": r"validation_accuracy=([0-9.]+)"},
                            {"Name": "train:accuracy", "Regex": r"train_accuracy=([0-9.]+)"}],
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    lines = log_lines("sk-iris")
    assert any(line.startswith("train_accuracy=") for line in lines)  # the script's own stdout
    assert any("train.py --max_depth 4 --n_estimators 25" in line for line in lines)
    members = artifact_members(desc)
    assert list(members) == ["model.joblib"]
    model = joblib.load(io.BytesIO(members["model.joblib"]))
    assert model.n_estimators == 25 and model.max_depth == 4
    found = metrics(desc)
    assert found["validation:accuracy"] == pytest.approx(model.score(X[120:], y[120:]), abs=1e-6)
    assert found["train:accuracy"] == pytest.approx(model.score(X[:120], y[:120]), abs=1e-6)

    deploy(backend, "sk-iris", SKLEARN_IMAGE, desc["ModelArtifacts"]["S3ModelArtifacts"],
           {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": submit})
    expected = model.predict(X[120:].astype(np.float32))
    answer, out_type = invoke(backend, "sk-iris", csv_rows(None, X[120:]), "text/csv")
    assert out_type == "application/json"
    assert json.loads(answer) == expected.tolist()
    answer, _ = invoke(backend, "sk-iris", json.dumps(X[120:125].tolist()).encode(), "application/json", "text/csv")
    assert [float(v) for v in answer.decode().split()] == expected[:5].tolist()
    npy = io.BytesIO()
    np.save(npy, X[120:125])
    answer, out_type = invoke(backend, "sk-iris", npy.getvalue(), "application/x-npy", "application/x-npy")
    assert out_type == "application/x-npy"
    assert np.load(io.BytesIO(answer)).tolist() == model.predict(X[120:125]).tolist()
    with pytest.raises(Exception, match="Content type text/plain is not supported by this framework"):
        invoke(backend, "sk-iris", b"1,2,3,4", "text/plain")


ENV_SCRIPT = """
import json, os, sys
keys = sorted(k for k in os.environ if k.startswith(("SM_", "AWS_")))
print("ENV " + json.dumps({k: os.environ[k] for k in keys}))
print("ARGV " + json.dumps(sys.argv[1:]))
print("FILES " + json.dumps(sorted(os.listdir(os.environ["SM_CHANNEL_TRAINING"]))))
print("HPJSON " + open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json")).read())
open(os.path.join(os.environ["SM_MODEL_DIR"], "note.txt"), "w").write("made by the script")
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "extra.txt"), "w").write("x")
"""


def _logged(lines, tag):
    return json.loads(next(line for line in lines if line.startswith(tag + " "))[len(tag) + 1:])


def test_the_script_sees_the_toolkit_environment_and_none_of_the_emulators_credentials(backend, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator-secret")
    submit = sourcedir({"env.py": ENV_SCRIPT, "helper/__init__.py": ""}, "code/env/sourcedir.tar.gz")
    desc = train_job(backend, "sk-env", SKLEARN_IMAGE,
                     sdk_hyperparameters("env.py", submit, alpha=0.5, mode="fast", layers=[1, 2], a=1, flag=True),
                     {"training": b"1,2\n", "extra": b"3,4\n"})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    lines = log_lines("sk-env")
    env = _logged(lines, "ENV")
    assert _logged(lines, "HPJSON") == desc["HyperParameters"]  # /opt/ml/input/config as sent
    assert _logged(lines, "ARGV") == ["-a", "1", "--alpha", "0.5", "--flag", "True", "--layers", "[1, 2]",
                                      "--mode", "fast"]
    assert _logged(lines, "FILES") == ["data.csv"]
    assert json.loads(env["SM_HPS"]) == {"a": 1, "alpha": 0.5, "flag": True, "layers": [1, 2], "mode": "fast"}
    assert json.loads(env["SM_CHANNELS"]) == ["extra", "training"]
    assert env["SM_CHANNEL_TRAINING"].endswith("/opt/ml/input/data/training")
    assert env["SM_MODEL_DIR"].endswith("/opt/ml/model")
    assert env["SM_OUTPUT_DATA_DIR"].endswith("/opt/ml/output/data")
    assert env["SM_HP_ALPHA"] == "0.5" and env["SM_HP_MODE"] == "fast"
    assert env["SM_USER_ENTRY_POINT"] == "env.py" and env["SM_MODULE_NAME"] == "env"
    assert env["SM_MODULE_DIR"] == submit and env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_USER_ARGS"]) == _logged(lines, "ARGV")
    assert "sagemaker_program" not in env["SM_HPS"]
    # no emulator credentials: an in-process backend has no endpoint, so the script gets none at all
    assert not any(k in env for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert artifact_members(desc) == {"note.txt": b"made by the script"}
    output_uri = desc["ModelArtifacts"]["S3ModelArtifacts"].replace("model.tar.gz", "output.tar.gz")
    assert artifact_members({"ModelArtifacts": {"S3ModelArtifacts": output_uri}}) == {"extra.txt": b"x"}


REPACKED = """
import os
def model_fn(model_dir):
    return float(open(os.path.join(model_dir, "weight.txt")).read())
def predict_fn(data, model):
    return data.sum(axis=1) * model
"""


def test_code_repacked_inside_the_model_artifact_is_served(backend, aws):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("weight.txt", "2.5"), ("code/inference.py", REPACKED)):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    aws.put_object(Bucket=BUCKET, Key="repacked/model.tar.gz", Body=buf.getvalue())
    deploy(backend, "sk-repacked", SKLEARN_IMAGE, f"s3://{BUCKET}/repacked/model.tar.gz",
           {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"})
    answer, _ = invoke(backend, "sk-repacked", b"1,2\n3,4\n", "text/csv", "application/json")
    assert json.loads(answer) == [7.5, 17.5]


def test_a_model_without_model_fn_fails_the_endpoint(backend, aws):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"\n"))
    aws.put_object(Bucket=BUCKET, Key="nofn/model.tar.gz", Body=buf.getvalue())
    desc = deploy(backend, "sk-nofn", SKLEARN_IMAGE, f"s3://{BUCKET}/nofn/model.tar.gz",
                  {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"})
    assert desc["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in desc["FailureReason"]


def test_a_script_that_raises_fails_the_job_with_its_traceback(backend):
    script = "import sys\nprint('starting')\ndef fit():\n    raise ValueError('the data has no label column')\nfit()\n"
    submit = sourcedir({"train.py": script}, "code/raise/sourcedir.tar.gz")
    desc = train_job(backend, "sk-raise", SKLEARN_IMAGE, sdk_hyperparameters("train.py", submit), {"train": b"1,2\n"})
    assert desc["TrainingJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage \"")
    assert "ValueError: the data has no label column" in reason  # the traceback's last line
    assert reason.endswith("train.py\", exit code: 1")
    assert "starting" in log_lines("sk-raise")


def test_a_script_over_its_max_runtime_is_stopped(backend):
    submit = sourcedir({"train.py": "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"},
                       "code/slow/sourcedir.tar.gz")
    desc = train_job(backend, "sk-slow", SKLEARN_IMAGE, sdk_hyperparameters("train.py", submit), {"train": b"1\n"},
                     max_runtime=1, timeout=30)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "MaxRuntimeInSeconds" in desc["FailureReason"]
    assert 1 <= desc["TrainingTimeInSeconds"] < 20


def test_stop_training_job_kills_the_script(backend):
    submit = sourcedir({"train.py": "import time\nprint('up', flush=True)\ntime.sleep(60)\n"},
                       "code/stop/sourcedir.tar.gz")
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key="stop/train/x", Body=b"1\n")
    request = {
        "TrainingJobName": "sk-stop", "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": sdk_hyperparameters("train.py", submit),
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/stop/train"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    backend.create_training_job(request)
    wait_for(lambda: "up" in log_lines("sk-stop") if _has_stream("sk-stop") else False, timeout=30)
    backend.stop_training_job(TrainingJobName="sk-stop")
    desc = wait_job(backend, "sk-stop", 30)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "Stopped"


def _has_stream(name):
    logs = boto3.client("logs", region_name="us-east-1")
    try:
        return bool(logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                              logStreamNamePrefix=f"{name}/")["logStreams"])
    except logs.exceptions.ResourceNotFoundException:
        return False


@pytest.mark.parametrize(
    ("hps", "reason"),
    [
        ({"sagemaker_submit_directory": json.dumps("s3://offline-bucket/none/sourcedir.tar.gz")},
         "sagemaker_program is required"),
        ({"sagemaker_program": json.dumps("train.py"),
          "sagemaker_submit_directory": json.dumps("s3://offline-bucket/none/sourcedir.tar.gz")},
         "Failed to download the user code from s3://offline-bucket/none/sourcedir.tar.gz"),
    ],
)
def test_script_mode_needs_its_code(backend, hps, reason):
    desc = train_job(backend, "sk-nocode", SKLEARN_IMAGE, hps, {"train": b"1\n"})
    assert desc["TrainingJobStatus"] == "Failed"
    assert reason in desc["FailureReason"]


def test_a_hostile_sourcedir_is_refused(backend):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escape.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key="code/evil/sourcedir.tar.gz",
                                                          Body=buf.getvalue())
    desc = train_job(backend, "sk-evil", SKLEARN_IMAGE,
                     sdk_hyperparameters("train.py", f"s3://{BUCKET}/code/evil/sourcedir.tar.gz"), {"train": b"1\n"})
    assert desc["TrainingJobStatus"] == "Failed"
    assert "is not a plain file under the archive root" in desc["FailureReason"]
