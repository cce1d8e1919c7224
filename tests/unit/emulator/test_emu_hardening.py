"""Bad input to the emulator itself is refused with a clear error, and the emulator keeps serving."""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
import sdk_records
from botocore.exceptions import ClientError
from emu_helpers import (
    BUCKET,
    IMAGE,
    ROLE,
    housing_split,
    to_csv,
    training_request,
    wait_endpoint,
    wait_for,
    wait_job,
)

from offline_aws import limits
from offline_aws.linear_learner.model import read_model_tar_gz
from offline_aws.persistence import StateFileError, confined, load_state
from offline_aws.server import start_emulator
from offline_aws.settings import Clock


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator(time_scale=0)
    yield emu
    emu.stop()


def _post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _healthy(emulator) -> bool:
    with urllib.request.urlopen(f"{emulator.url}/_offline_aws/health", timeout=10) as response:
        return json.loads(response.read()) == {"status": "ok"}


def _client(emulator, service: str):
    return boto3.client(service, endpoint_url=emulator.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


# --- request bodies ------------------------------------------------------------------------
def test_an_oversized_control_plane_body_is_refused_before_it_is_read(emulator):
    body = b'{"ModelName": "' + b"x" * (limits.CONTROL_PLANE_MAX_BYTES + 10) + b'"}'
    status, answer = _post(emulator.url, body, {"X-Amz-Target": "SageMaker.DescribeModel",
                                                "Content-Type": "application/x-amz-json-1.1"})
    assert status == 413 and answer["__type"] == "ValidationException"
    assert f"maximum of {limits.CONTROL_PLANE_MAX_BYTES} bytes" in answer["message"]
    assert _healthy(emulator)
    assert "Models" in _client(emulator, "sagemaker").list_models()


def test_an_invocation_over_6_mb_is_refused_with_413(emulator):
    runtime = _client(emulator, "sagemaker-runtime")
    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName="none", ContentType="text/csv", Body=b"1," * (3 * 1024 * 1024 + 1))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "6 MB" in err.value.response["Error"]["Message"]
    assert _healthy(emulator)


def test_an_oversized_admin_body_is_refused(emulator):
    status, answer = _post(f"{emulator.url}/_offline_aws/config", b"{" + b" " * (limits.ADMIN_MAX_BYTES + 1) + b"}",
                           {"Content-Type": "application/json"})
    assert status == 413 and "exceeds the maximum" in answer["error"]
    assert _healthy(emulator)


# --- time scale ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", -1, 1e300, "fast", True, None])
def test_a_time_scale_that_is_not_a_finite_number_is_refused(emulator, bad):
    raw = json.dumps({"time_scale": bad}).encode() if not isinstance(bad, str) or bad == "fast" else \
        b'{"time_scale": ' + bad.encode() + b"}"  # NaN / Infinity as Python's json writes them
    status, answer = _post(f"{emulator.url}/_offline_aws/config", raw, {"Content-Type": "application/json"})
    assert status == 400 and "time_scale must be" in answer["error"]
    assert emulator.clock.time_scale == 0  # unchanged
    assert _healthy(emulator)


def test_the_clock_itself_refuses_nan_and_inf(monkeypatch):
    clock = Clock(0)
    for bad in (math.nan, math.inf, -0.5):
        with pytest.raises(ValueError, match="finite number"):
            clock.time_scale = bad
    assert clock.pause(5.0) is False  # still 0: returns at once
    monkeypatch.setenv("OFFLINE_AWS_TIME_SCALE", "nan")
    with pytest.raises(ValueError, match="OFFLINE_AWS_TIME_SCALE"):
        Clock()


# --- decompression ---------------------------------------------------------------------------
def _gzip_bomb(size: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as handle:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            handle.write(chunk)
    return out.getvalue()


def test_gunzip_stops_at_its_cap():
    bomb = _gzip_bomb(8 * 1024 * 1024)
    assert len(bomb) < 100_000
    with pytest.raises(limits.LimitExceeded, match="decompresses to more than"):
        limits.gunzip(bomb, limit=1024 * 1024)
    assert limits.gunzip(gzip.compress(b"a") + gzip.compress(b"b")) == b"ab"  # multi-member still fine


def test_a_tar_bomb_artifact_is_refused():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for i in range(limits.MAX_MODEL_MEMBERS + 2):
            info = tarfile.TarInfo(f"junk-{i}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="more than 64 members"):
        read_model_tar_gz(raw.getvalue())
    with pytest.raises(limits.LimitExceeded, match="decompresses to more than"):
        limits.read_tar_member(_gzip_bomb(8 * 1024 * 1024), "model_algo-1", limit=1024 * 1024)


def test_a_tar_bomb_model_fails_the_endpoint_and_the_emulator_serves_on(backend, aws, monkeypatch):
    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w:gz") as tar:
        info = tarfile.TarInfo("model_algo-1")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    aws.put_object(Bucket=BUCKET, Key="bomb/model.tar.gz", Body=bomb.getvalue())
    backend.create_model(ModelName="bomb", ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/bomb/model.tar.gz"})
    backend.create_endpoint_config(EndpointConfigName="bomb", ProductionVariants=[
        {"VariantName": "v", "ModelName": "bomb", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    monkeypatch.setattr(limits, "MAX_MODEL_MEMBER_BYTES", 1024 * 1024)  # 64 MiB member, 1 MiB cap
    backend.create_endpoint(EndpointName="bomb", EndpointConfigName="bomb")
    desc = wait_endpoint(backend, "bomb")
    assert desc["EndpointStatus"] == "Failed" and "did not pass the ping health check" in desc["FailureReason"]
    backend.create_training_job(training_request("after-bomb"))
    assert wait_job(backend, "after-bomb")["TrainingJobStatus"] == "Completed"


def test_a_gzip_bomb_channel_fails_the_job_with_a_clear_reason(backend, aws, monkeypatch):
    aws.put_object(Bucket=BUCKET, Key="bomb/train/part-0.csv.gz", Body=_gzip_bomb(4 * 1024 * 1024))
    monkeypatch.setattr(limits, "MAX_DECOMPRESSED_BYTES", 1024 * 1024)
    req = training_request("gzip-bomb", channels=("train",))
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/bomb/train"
    req["InputDataConfig"][0]["CompressionType"] = "Gzip"
    backend.create_training_job(req)
    desc = wait_job(backend, "gzip-bomb")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "decompresses to more than 1048576 bytes" in desc["FailureReason"]


# --- --state-dir ----------------------------------------------------------------------------
def test_a_state_file_pointing_outside_its_folder_is_refused(tmp_path: Path, capsys):
    state = tmp_path / "state"
    (state / "s3" / "state-bucket").mkdir(parents=True)
    (state / "s3" / "state-bucket" / "ok").write_bytes(b"fine")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for S3")
    (state / "s3" / "index.json").write_text(json.dumps({"state-bucket": {"region": "us-east-1", "objects": {
        "ok.txt": {"file": "ok", "ContentType": None},
        "escape.txt": {"file": "../../../secret.txt", "ContentType": None},
        "absolute.txt": {"file": str(secret), "ContentType": None},
    }}}))
    with pytest.raises(StateFileError, match="outside the state directory"):
        confined(state / "s3", "state-bucket", "../../../secret.txt")
    emu = start_emulator(time_scale=0)
    try:
        load_state(emu, state)
        s3 = _client(emu, "s3")
        assert s3.get_object(Bucket="state-bucket", Key="ok.txt")["Body"].read() == b"fine"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="state-bucket").get("Contents", [])]
        assert keys == ["ok.txt"]  # the two escaping entries were skipped
        assert _healthy(emu)
    finally:
        emu.stop()
    err = capsys.readouterr().err
    assert "escape.txt not restored" in err and "outside the state directory" in err


def test_a_batch_transform_can_answer_recordio_protobuf(backend, aws):
    backend.create_training_job(training_request("for-transform"))
    job = wait_job(backend, "for-transform")
    backend.create_model(ModelName="tm", ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    _, (yva, Xva), _ = housing_split()
    body = b"\n".join(line.split(b",", 1)[1] for line in to_csv(yva, Xva).splitlines())
    aws.put_object(Bucket=BUCKET, Key="tin/rows.csv", Body=body)
    base = {"ModelName": "tm", "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/tin/"}},
                               "ContentType": "text/csv", "SplitType": "Line"}}
    backend.create_transform_job(TransformJobName="to-recordio", **base, TransformOutput={
        "S3OutputPath": f"s3://{BUCKET}/tout/", "Accept": "application/x-recordio-protobuf"})
    done = wait_for(lambda: (d := backend.describe_transform_job(TransformJobName="to-recordio"))[
        "TransformJobStatus"] in ("Completed", "Failed") and d)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    records = sdk_records.read_records(aws.get_object(Bucket=BUCKET, Key="tout/rows.csv.out")["Body"].read())
    assert len(records) == len(yva)
    backend.create_transform_job(TransformJobName="recordio-join", **base, DataProcessing={"JoinSource": "Input"},
                                 TransformOutput={"S3OutputPath": f"s3://{BUCKET}/tout2/",
                                                  "Accept": "application/x-recordio-protobuf"})
    failed = wait_for(lambda: (d := backend.describe_transform_job(TransformJobName="recordio-join"))[
        "TransformJobStatus"] in ("Completed", "Failed") and d)
    assert failed["TransformJobStatus"] == "Failed" and "cannot read application/x-recordio-protobuf" in failed[
        "FailureReason"]


def test_the_command_refuses_a_nan_time_scale():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "offline_aws", "--port", "0", "--time-scale", "nan"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "time_scale must be a finite number" in done.stderr


def test_keys_that_are_no_file_names_survive_a_save_and_a_restore(tmp_path: Path):
    """A 1,024-byte key and a key named ``..`` are valid in S3; the state save keeps them and every other object."""
    from offline_aws.persistence import save_state

    keys = {"a" * 1024: b"long", "..": b"dots", "p/../x": b"segments", "ok.csv": b"plain"}
    emu = start_emulator(time_scale=0)
    try:
        s3 = _client(emu, "s3")
        s3.create_bucket(Bucket="state-keys")
        for key, body in keys.items():
            s3.put_object(Bucket="state-keys", Key=key, Body=body)
        save_state(emu, tmp_path / "state")
    finally:
        emu.stop()
    restored = start_emulator(time_scale=0)
    try:
        load_state(restored, tmp_path / "state")
        s3 = _client(restored, "s3")
        assert {key: s3.get_object(Bucket="state-keys", Key=key)["Body"].read() for key in keys} == keys
    finally:
        restored.stop()


def test_an_s3_upload_over_the_cap_is_refused_before_it_is_read(monkeypatch):
    """moto holds a PUT body in memory: one over ``S3_PUT_MAX_BYTES`` is refused (EntityTooLarge) unread."""
    from botocore.exceptions import ClientError

    from offline_aws import limits

    monkeypatch.setattr(limits, "S3_PUT_MAX_BYTES", 1024)
    emu = start_emulator(time_scale=0)
    try:
        s3 = _client(emu, "s3")
        s3.create_bucket(Bucket="capped")
        s3.put_object(Bucket="capped", Key="small", Body=b"x" * 1024)
        with pytest.raises(ClientError) as raised:
            s3.put_object(Bucket="capped", Key="big", Body=b"x" * 1025)
        assert raised.value.response["Error"]["Code"] == "EntityTooLarge"
        assert "1024 bytes per request" in raised.value.response["Error"]["Message"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="capped")["Contents"]]
        assert keys == ["small"] and _healthy(emu)
    finally:
        emu.stop()


def test_while_it_restores_its_state_the_emulator_answers_503_then_serves_the_restored_state(tmp_path, monkeypatch):
    """A client that reconnects during the restore of ``--state-dir`` gets 503 (which every SDK retries), never
    an empty emulator (a missing job or bucket it would take for a fact); the restore itself is served."""
    import threading

    from botocore.config import Config

    from offline_aws import persistence
    from offline_aws.persistence import save_state
    from offline_aws.server import Emulator

    emu = start_emulator(time_scale=0)
    try:
        s3 = _client(emu, "s3")
        s3.create_bucket(Bucket="state-restore")
        s3.put_object(Bucket="state-restore", Key="a.csv", Body=b"1,2\n")
        save_state(emu, tmp_path / "state")
    finally:
        emu.stop()

    halfway, go_on = threading.Event(), threading.Event()
    real_load_s3 = persistence._load_s3

    def slow_load_s3(*args, **kwargs):  # S3's objects are back (through the emulator's own client); then a pause
        real_load_s3(*args, **kwargs)
        halfway.set()
        go_on.wait(30)

    monkeypatch.setattr(persistence, "_load_s3", slow_load_s3)
    restored = Emulator(time_scale=0)
    starting = threading.Thread(target=restored.start, kwargs={"state_dir": tmp_path / "state"})
    starting.start()
    try:
        assert halfway.wait(30)
        impatient = boto3.client("s3", endpoint_url=restored.url, region_name="us-east-1", aws_access_key_id="test",
                                 aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}))
        with pytest.raises(ClientError) as refused:
            impatient.list_objects_v2(Bucket="state-restore")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        go_on.set()
        starting.join(30)
        assert [o["Key"] for o in impatient.list_objects_v2(Bucket="state-restore")["Contents"]] == ["a.csv"]
    finally:
        go_on.set()
        starting.join(30)
        restored.stop()
