"""Script mode with the SageMaker scikit-learn container (``sagemaker-scikit-learn:1.2-1-cpu-py3``).

Training runs the user's entry point in a subprocess as aws/sagemaker-training-toolkit runs it:

- ``sagemaker_program`` and ``sagemaker_submit_directory`` (an ``s3://.../sourcedir.tar.gz``) come from the
  hyperparameters, JSON-encoded as the SageMaker SDK sends every value; the other ``sagemaker_*`` ones are
  the framework's, the rest are the user's: decoded (JSON when it parses, else the raw string), passed as
  ``--name value`` arguments in sorted order (``mapping.to_cmd_args``) and in ``SM_HPS`` / ``SM_HP_<NAME>``;
- an ``/opt/ml``-shaped temporary tree: ``input/config/{hyperparameters,inputdataconfig,resourceconfig}.json``,
  ``input/data/<channel>/<file>``, ``model``, ``output/data``, ``code`` (the extracted sourcedir, the working
  directory); the ``SM_*`` variables point into it (``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``SM_CHANNELS``,
  ``SM_OUTPUT_DATA_DIR``, ``SM_INPUT_DIR``, ``SM_HPS``, ``SM_USER_ARGS``, ``SM_TRAINING_ENV``, ...);
- the subprocess gets a clean environment: never the emulator's own variables or credentials. When the
  emulator serves over HTTP it gets ``AWS_ENDPOINT_URL`` (the emulator) and the execution role's
  temporary credentials from (moto's) STS AssumeRole (so with ``--enforce-iam`` the role's policies apply);
  otherwise (an in-process backend, as in unit tests) it gets no AWS credentials at all;
- each stdout/stderr line goes to the job's CloudWatch log stream; ``MaxRuntimeInSeconds`` (real seconds)
  is enforced: the process group is killed and the job ends Stopped (``MaxRuntimeExceeded``); a non-zero
  exit fails the job ``AlgorithmError: ExecuteUserScriptError:`` with the exit code, the last stderr
  lines and the command, as the toolkit's ``ExecuteUserScriptError`` prints it;
- ``SM_MODEL_DIR`` is tarred into ``model.tar.gz``, ``SM_OUTPUT_DATA_DIR`` into ``output.tar.gz`` beside it; FinalMetricDataList comes from the job's own
  ``AlgorithmSpecification.MetricDefinitions`` over the script's log lines, as AWS does for script mode.

Hosting and batch transform load the code named by the model's ``SAGEMAKER_PROGRAM`` and
``SAGEMAKER_SUBMIT_DIRECTORY`` (an ``s3://`` tarball, or ``/opt/ml/model/code`` inside the artifact) and
call its ``model_fn`` (required, as the container's default raises) and ``input_fn``/``predict_fn``/
``output_fn``/``transform_fn`` when defined, with the container's defaults otherwise (``text/csv``,
``application/json``, ``application/x-npy``). Unlike training, serving imports the script inside the
emulator's process (not a subprocess).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque

import numpy as np

from ..limits import MAX_DECOMPRESSED_BYTES
from .base import (
    AlgorithmFailed,
    JobStopped,
    JobStoppedByRuntime,
    ModelError,
    TrainingContext,
    TrainingResult,
    metrics_from_log,
)

FRAMEWORK_HPS = ("sagemaker_program", "sagemaker_submit_directory", "sagemaker_container_log_level",
                 "sagemaker_job_name", "sagemaker_region", "sagemaker_enable_cloudwatch_metrics",
                 "sagemaker_estimator_class_name", "sagemaker_estimator_module", "sagemaker_distributed_dataparallel_enabled",
                 "sagemaker_instance_type")
STDERR_TAIL = 10  # stderr lines kept for the failure reason
MAX_SOURCE_MEMBERS = 10_000
FRAMEWORK_MODULE = "sagemaker_sklearn_container.training:main"


def decode_hyperparameter(value: str):
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def to_cmd_args(hps: dict) -> list[str]:
    """``mapping.to_cmd_args``: ``--name value`` (``-n`` for one letter), sorted by name, values as ``str()``."""
    args = []
    for key in sorted(hps):
        value = hps[key]
        args.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:  # mapping._decode: str() of the decoded value (True, [1, 2], ['a']), None as ""
            args.append("" if value is None else str(value))
    return args


def _env_value(value) -> str:
    """``mapping.to_env_vars``' format: strings as they are, everything else as compact sorted JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def safe_extract(blob: bytes, dest: str, what: str) -> None:
    """Extract a tar.gz refusing absolute paths, ``..``, links and devices (a hostile sourcedir)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_SOURCE_MEMBERS:
                raise ValueError(f"{what} has more than {MAX_SOURCE_MEMBERS} members")
            total = 0
            for member in members:
                name = os.path.normpath(member.name)
                if name.startswith(("/", "..")) or os.path.isabs(name) or not (member.isfile() or member.isdir()):
                    raise ValueError(f"{what}: member {member.name!r} is not a plain file under the archive root")
                total += member.size
                if total > MAX_DECOMPRESSED_BYTES:
                    raise ValueError(f"{what} is over {MAX_DECOMPRESSED_BYTES} bytes once extracted")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{what} is not a valid tar.gz archive: {exc}") from None


def _s3_fetch(aws, uri: str) -> bytes:
    match = re.match(r"^s3://([^/]+)/(.+)$", uri)
    if not match:
        raise ValueError(f"sagemaker_submit_directory {uri!r} is not an s3:// URI")
    return aws.client("s3").get_object(Bucket=match[1], Key=match[2])["Body"].read()


def role_environment(ctx: TrainingContext) -> dict[str, str]:
    """AWS variables for the script: the emulator's URL and the execution role's credentials, or nothing."""
    region = ctx.extra.get("region") or "us-east-1"
    env = {"AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    if not ctx.endpoint_url:
        return env
    env["AWS_ENDPOINT_URL"] = ctx.endpoint_url
    try:
        key, secret, token = assume_execution_role(ctx.desc["RoleArn"], region, ctx.desc.get("TrainingJobName", ""))
    except Exception as exc:  # noqa: BLE001 - the script then runs with no credentials
        ctx.log(f"Could not assume the execution role {ctx.desc.get('RoleArn')} ({exc}); the script has no AWS "
                "credentials.")
        return env
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token)
    return env


def assume_execution_role(role_arn: str, region: str, job_name: str) -> tuple[str, str, str]:
    """Temporary credentials of the role, as SageMaker (the service principal the role trusts) gets them.

    Through moto's STS backend in this process (the emulator serves moto): its AssumeRole API would
    check the trust policy against the caller, the emulator's service user, whom a role trusting
    ``sagemaker.amazonaws.com`` does not name.
    """
    from moto.sts.models import sts_backends

    account = role_arn.split(":")[4]
    partition = role_arn.split(":")[1]
    session = re.sub(r"[^\w+=,.@-]", "-", f"SageMaker-{job_name}")[:64]
    role = sts_backends[account][partition].assume_role(region, session, role_arn, None, 3600, None)
    return role.access_key_id, role.secret_access_key, role.session_token


class SKLearnScriptMode:
    name = "sklearn"
    title = "scikit-learn script mode"
    channels = None  # any channel name, as the framework containers accept

    def train(self, ctx: TrainingContext) -> TrainingResult:
        raw = {k: decode_hyperparameter(v) for k, v in ctx.hyperparameters.items()}
        program, submit = raw.get("sagemaker_program"), raw.get("sagemaker_submit_directory")
        if not program or not isinstance(program, str):
            raise AlgorithmFailed("AlgorithmError: framework error: no user entry point: the hyperparameter "
                                  "sagemaker_program is required in script mode")
        if not submit or not isinstance(submit, str):
            raise AlgorithmFailed("AlgorithmError: framework error: the hyperparameter sagemaker_submit_directory "
                                  "(the s3:// URI of sourcedir.tar.gz) is required in script mode")
        user_hps = {k: v for k, v in raw.items() if k not in FRAMEWORK_HPS}
        with tempfile.TemporaryDirectory(prefix="offline-aws-sklearn-") as root:
            ml = os.path.join(root, "opt", "ml")
            paths = {name: os.path.join(ml, *rel) for name, rel in {
                "input": ("input",), "config": ("input", "config"), "data": ("input", "data"), "model": ("model",),
                "output": ("output",), "output_data": ("output", "data"), "code": ("code",),
                "intermediate": ("output", "intermediate")}.items()}
            for path in paths.values():
                os.makedirs(path, exist_ok=True)
            try:
                safe_extract(_s3_fetch(ctx.aws, submit), paths["code"], "sourcedir.tar.gz")
            except ValueError as exc:
                raise AlgorithmFailed(f"ClientError: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - S3 said no
                raise AlgorithmFailed(f"ClientError: Failed to download the user code from {submit}: {exc}") from None
            script = os.path.join(paths["code"], program)
            if not os.path.isfile(script):
                raise AlgorithmFailed(f"AlgorithmError: framework error: the entry point {program} is not in "
                                      f"{submit}")
            channel_dirs = self._write_channels(ctx, paths["data"])
            env = self._environment(ctx, paths, channel_dirs, program, submit, user_hps)
            if os.path.isfile(os.path.join(paths["code"], "requirements.txt")):
                ctx.log("requirements.txt found: not installed by the offline emulator (the emulator's packages are used)")
            cmd = [sys.executable, program, *to_cmd_args(user_hps)]
            ctx.log(f"Invoking script with the following command:\n\n{' '.join(cmd)}\n")
            lines = self._run(ctx, cmd, paths["code"], env)
            artifact = _tar_dir(paths["model"])
            output = _tar_dir(paths["output_data"])
        definitions = (ctx.desc.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        return TrainingResult(artifact, metrics_from_log(lines, definitions), output=output)

    def load(self, artifact: bytes, container: dict, fetch) -> ScriptPredictor:
        return load_predictor(artifact, container, fetch)

    @staticmethod
    def _write_channels(ctx: TrainingContext, data_dir: str) -> dict[str, str]:
        files = ctx.extra.get("channel_files") or {}
        dirs = {}
        for name, (_, blobs) in ctx.channels.items():
            channel_dir = os.path.join(data_dir, name)
            os.makedirs(channel_dir, exist_ok=True)
            names = files.get(name) or [f"part-{i:05d}" for i in range(len(blobs))]
            for rel, blob in zip(names, blobs, strict=True):
                path = os.path.normpath(os.path.join(channel_dir, rel))
                if not path.startswith(channel_dir + os.sep):
                    path = os.path.join(channel_dir, os.path.basename(rel) or "part")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(blob)
            dirs[name] = channel_dir
        return dirs

    @staticmethod
    def _environment(ctx, paths, channel_dirs, program, submit, user_hps) -> dict[str, str]:
        desc = ctx.desc
        resource = desc.get("ResourceConfig") or {}
        instance_type = resource.get("InstanceType", "ml.m5.large")
        input_data_config = {c["ChannelName"]: {k: v for k, v in c.items() if k in ("ContentType", "TrainingInputMode",
                                                                                       "S3DistributionType",
                                                                                       "RecordWrapperType")}
                             for c in desc.get("InputDataConfig") or []}
        resource_config = {"current_host": "algo-1", "current_instance_type": instance_type,
                           "current_group_name": "homogeneousCluster", "hosts": ["algo-1"],
                           "network_interface_name": "eth0"}
        for name, payload in (("hyperparameters.json", dict(ctx.hyperparameters)),  # as sent: the SDK's JSON strings
                              ("inputdataconfig.json", input_data_config), ("resourceconfig.json", resource_config)):
            with open(os.path.join(paths["config"], name), "w") as fh:
                json.dump(payload, fh)
        module_name = program[:-3] if program.endswith(".py") else program
        user_args = to_cmd_args(user_hps)
        training_env = {
            "additional_framework_parameters": {}, "channel_input_dirs": channel_dirs, "current_host": "algo-1",
            "current_instance_type": instance_type, "framework_module": FRAMEWORK_MODULE, "hosts": ["algo-1"],
            "hyperparameters": user_hps, "input_config_dir": paths["config"], "input_data_config": input_data_config,
            "input_dir": paths["input"], "is_master": True, "job_name": desc.get("TrainingJobName"),
            "log_level": 20, "model_dir": paths["model"], "module_dir": submit, "module_name": module_name,
            "network_interface_name": "eth0", "num_cpus": os.cpu_count() or 1, "num_gpus": 0,
            "output_data_dir": paths["output_data"], "output_dir": paths["output"],
            "output_intermediate_dir": paths["intermediate"], "resource_config": resource_config,
            "user_entry_point": program,
        }
        sm = {
            "hosts": ["algo-1"], "network_interface_name": "eth0", "hps": user_hps, "user_entry_point": program,
            "framework_params": {}, "resource_config": resource_config, "input_data_config": input_data_config,
            "output_data_dir": paths["output_data"], "channels": sorted(channel_dirs), "current_host": "algo-1",
            "current_instance_type": instance_type, "module_name": module_name, "log_level": 20,
            "framework_module": FRAMEWORK_MODULE, "input_dir": paths["input"], "input_config_dir": paths["config"],
            "output_dir": paths["output"], "num_cpus": os.cpu_count() or 1, "num_gpus": 0, "model_dir": paths["model"],
            "module_dir": submit, "training_env": training_env, "user_args": user_args,
            "output_intermediate_dir": paths["intermediate"],
        }
        for name, path in channel_dirs.items():
            sm[f"channel_{name}"] = path
        for key, value in user_hps.items():
            sm[f"hp_{key}"] = value
        env = {f"SM_{k.upper()}": _env_value(v) for k, v in sm.items()}
        env.update({
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": paths["code"], "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": paths["code"],
            "TRAINING_JOB_NAME": desc.get("TrainingJobName", ""), "SAGEMAKER_PROGRAM": program,
            "SAGEMAKER_SUBMIT_DIRECTORY": submit, "SAGEMAKER_TRAINING_MODULE": FRAMEWORK_MODULE,
        })
        env.update(role_environment(ctx))
        return env

    @staticmethod
    def _run(ctx: TrainingContext, cmd: list[str], cwd: str, env: dict) -> list[str]:
        lines: list[str] = []
        tail: deque[str] = deque(maxlen=STDERR_TAIL)
        lock = threading.Lock()

        def pump(stream, is_err: bool) -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with lock:
                    lines.append(line)
                    if is_err:
                        tail.append(line)
                try:
                    ctx.log(line)
                except JobStopped:
                    pass  # the main loop ends the process
            stream.close()

        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        readers = [threading.Thread(target=pump, args=(proc.stdout, False), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)]
        for reader in readers:
            reader.start()
        limit = ctx.max_runtime
        outcome = None
        flushed = time.monotonic()
        while proc.poll() is None:
            if ctx.flush is not None and time.monotonic() - flushed >= 0.5:
                flushed = time.monotonic()
                try:
                    ctx.flush()  # the script's lines reach CloudWatch while it runs
                except Exception:  # noqa: BLE001 - logs are best effort
                    pass
            if ctx.stop_requested.is_set():
                outcome = "stopped"
            elif limit is not None and time.monotonic() - started > limit:
                outcome = "runtime"
            if outcome:
                _kill(proc)
                break
            time.sleep(0.02)
        proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        if outcome == "stopped":
            raise JobStopped()
        if outcome == "runtime":
            raise JobStoppedByRuntime(
                f"Training job runtime exceeded MaxRuntimeInSeconds provided ({limit} seconds); the job was stopped."
            )
        if proc.returncode != 0:
            error = "\n".join(tail)
            raise AlgorithmFailed(
                f'AlgorithmError: ExecuteUserScriptError:\nExitCode {proc.returncode}\nErrorMessage "{error}"\n'
                f'Command "{" ".join(cmd)}", exit code: {proc.returncode}'
            )
        return lines


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _tar_dir(path: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in sorted(os.listdir(path)):
            tar.add(os.path.join(path, name), arcname=name)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- serving
def _decode_default(body: bytes, content_type: str):
    """``sagemaker_containers.encoders.decode`` for the three types the container's default input_fn reads."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json":
        return np.array(json.loads(body.decode("utf-8"))).astype(np.float32)
    if media == "text/csv":
        rows = [line.split(",") for line in body.decode("utf-8").strip().splitlines() if line.strip()]
        return np.array(rows, dtype=np.float32)
    if media == "application/x-npy":
        return np.load(io.BytesIO(body), allow_pickle=False)
    raise ModelError(f"UnsupportedFormatError: Content type {content_type} is not supported by this framework.\n\n"
                     "Please implement input_fn to to deserialize the request data or an output_fn to\n"
                     "serialize the response. For more information, see the SageMaker Python SDK README.", 415)


def _encode_default(prediction, accept: str) -> tuple[bytes, str]:
    array = np.asarray(prediction)
    if accept == "application/json":
        return json.dumps(array.tolist()).encode(), accept
    if accept == "text/csv":
        out = io.StringIO()
        np.savetxt(out, array if array.ndim else array.reshape(1), delimiter=",", fmt="%s")
        return out.getvalue().encode(), accept
    if accept == "application/x-npy":
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        return buf.getvalue(), accept
    raise ModelError(f"UnsupportedFormatError: Content type {accept} is not supported by this framework.\n\n"
                     "Please implement input_fn to to deserialize the request data or an output_fn to\n"
                     "serialize the response. For more information, see the SageMaker Python SDK README.", 406)


def _accept(accept: str | None) -> str:
    if not accept or accept.strip() in ("*/*", ""):
        return "application/json"  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT's default
    return accept.split(",")[0].split(";")[0].strip().lower()


class ScriptPredictor:
    """The user's module and model, served as the scikit-learn container's Transformer serves them."""

    def __init__(self, module, model, workdir: str):
        self.module = module
        self.model = model
        self._cleanup = weakref.finalize(self, shutil.rmtree, workdir, True)
        self._lock = threading.Lock()  # one request at a time, as one model server worker

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, *, batch: bool = False):
        mod = self.module
        media = _accept(accept)
        with self._lock:
            try:
                if getattr(mod, "transform_fn", None) is not None:
                    result = mod.transform_fn(self.model, body, content_type, media)
                    payload, out_type = (result if isinstance(result, tuple) else (result, media))[:2]
                else:
                    data = (mod.input_fn(body, content_type) if hasattr(mod, "input_fn")
                            else _decode_default(body, content_type))
                    prediction = (mod.predict_fn(data, self.model) if hasattr(mod, "predict_fn")
                                  else self.model.predict(data))
                    if hasattr(mod, "output_fn"):
                        result = mod.output_fn(prediction, media)
                        payload, out_type = (result if isinstance(result, tuple) else (result, media))[:2]
                    else:
                        payload, out_type = _encode_default(prediction, media)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - the model server answers 500 with the error
                raise ModelError(f"{type(exc).__name__}: {exc}", 500) from None
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        return bytes(payload), out_type


def load_user_module(code_dir: str, program: str):
    path = os.path.join(code_dir, program)
    if not os.path.isfile(path):
        raise ValueError(f"the entry point {program} is not in the submitted code")
    name = f"offline_aws_user_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, code_dir)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the container fails its ping
        raise ValueError(f"importing {program} failed: {type(exc).__name__}: {exc}") from None
    finally:
        try:
            sys.path.remove(code_dir)
        except ValueError:
            pass
    return module


def load_predictor(artifact: bytes, container: dict, fetch) -> ScriptPredictor:
    env = container.get("Environment") or {}
    program = env.get("SAGEMAKER_PROGRAM")
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if not program:
        raise ValueError("the model's Environment has no SAGEMAKER_PROGRAM (the script to serve)")
    workdir = tempfile.mkdtemp(prefix="offline-aws-sklearn-serve-")
    try:
        model_dir = os.path.join(workdir, "model")
        os.makedirs(model_dir)
        safe_extract(artifact, model_dir, "model.tar.gz")
        if not submit or submit.startswith("/opt/ml/model"):
            code_dir = os.path.join(model_dir, os.path.relpath(submit or "/opt/ml/model/code", "/opt/ml/model"))
        else:
            code_dir = os.path.join(workdir, "code")
            os.makedirs(code_dir)
            safe_extract(fetch(submit), code_dir, "sourcedir.tar.gz")
        module = load_user_module(code_dir, program)
        if getattr(module, "transform_fn", None) and any(hasattr(module, f) for f in ("input_fn", "predict_fn",
                                                                                        "output_fn")):
            raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
        model_fn = getattr(module, "model_fn", None)
        if model_fn is None:
            raise ValueError("Please provide a model_fn implementation. See documentation for model_fn at "
                             "https://sagemaker.readthedocs.io/en/stable/frameworks/sklearn/using_sklearn.html")
        try:
            model = model_fn(model_dir)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"model_fn failed: {type(exc).__name__}: {exc}") from None
        return ScriptPredictor(module, model, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise

