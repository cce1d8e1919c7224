"""Script mode with the SageMaker scikit-learn container (``sagemaker-scikit-learn:1.2-1-cpu-py3``).

The user's folder (Param sklearn_source_dir, under the project) is packaged as ``sourcedir.tar.gz``
(files at the archive's root, as the SageMaker SDK's ``tar_and_upload_dir`` makes it; packed
deterministically here, so the same code always has the same sha256) and uploaded by ``prepare``.
The training job's hyperparameters are those the SDK's framework estimators send: every value
JSON-encoded, ``sagemaker_program`` (the entry point), ``sagemaker_submit_directory`` (the tarball's
S3 URI), ``sagemaker_container_log_level`` and ``sagemaker_region``, then the script's own ones
(Param sklearn_hyperparameters), which the container passes as ``--name value`` arguments.

The script reads label-first CSV without a header from ``SM_CHANNEL_TRAIN`` (and ``…_VALIDATION``,
``…_TEST``) and saves its model to ``SM_MODEL_DIR``; serving loads it through its ``model_fn``.
Answers: ``application/json`` is the prediction array (``[v, …]`` or ``[[p0, p1, …], …]``);
batch transform asks ``text/csv``: one row of the array per line.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagemaker_retrain.algorithms.accounts import FRAMEWORK
from sagemaker_retrain.algorithms.base import (
    CSV,
    JSON,
    Algorithm,
    AnswerError,
    ExtraParam,
    from_values,
    number_lines,
)

NPY = "application/x-npy"
LOG_LEVEL = 20  # logging.INFO, the SDK's default container_log_level
MAX_SOURCE_BYTES = 20 * 1024 * 1024
_SKIP = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv"}


class SKLearn(Algorithm):
    name = "sklearn"
    title = "scikit-learn script"
    repository = "sagemaker-scikit-learn"
    tag = "1.2-1-cpu-py3"
    accounts = FRAMEWORK
    hyperparameters = ()
    extra_params = (
        ExtraParam("sklearn_source_dir", "Script folder",
                   "Required for the scikit-learn script: the folder of your training code, relative to the "
                   "project (e.g. `include/models/scripts/iris_classifier`), packaged as `sourcedir.tar.gz`.",
                   None, {"type": ["null", "string"], "maxLength": 512}),
        ExtraParam("sklearn_entry_point", "Entry point",
                   "The script in that folder the container runs (and whose `model_fn` serves the model).",
                   "train.py", {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[\w./-]+\.py$"}),
        ExtraParam("sklearn_hyperparameters", "Script hyperparameters",
                   "A JSON object of the script's own arguments, passed as `--name value` (and in `SM_HPS`).",
                   {}, {"type": "object"}),
    )
    channels = ("train", "validation", "test")
    training_formats = (CSV,)
    endpoint_accept = JSON
    transform_accept = CSV
    supported_content_types = (CSV, JSON, NPY)
    supported_response_types = (JSON, CSV, NPY)

    def image_tags(self) -> tuple[str, ...]:
        return ("1.2-1-cpu-py3", "1.2-1")

    # --- the user's code --------------------------------------------------------------------------
    def source_dir(self, params: Mapping, project_dir: Path | None) -> Path:
        """The script folder, resolved under the project; ValueError naming the Param when it is not usable."""
        raw = params.get("sklearn_source_dir")
        if not raw:
            raise ValueError("Param sklearn_source_dir (Script folder) is required when Param algorithm is "
                             "sklearn: the folder of your training script, relative to the project")
        base = Path(project_dir or ".").resolve()
        folder = (base / raw).resolve()
        if not folder.is_relative_to(base):
            raise ValueError(f"Param sklearn_source_dir {raw!r} is outside the project folder")
        if not folder.is_dir():
            raise ValueError(f"Param sklearn_source_dir {raw!r} is not a folder of the project")
        entry = params.get("sklearn_entry_point") or "train.py"
        script = (folder / entry).resolve()
        if not script.is_relative_to(folder) or not script.is_file():
            raise ValueError(f"Param sklearn_entry_point {entry!r} is not a file in Param sklearn_source_dir {raw!r}")
        return folder

    def validate(self, params: Mapping, project_dir: Path | None = None) -> None:
        super().validate(params, project_dir)
        hps = params.get("sklearn_hyperparameters") or {}
        if not isinstance(hps, Mapping):
            raise ValueError(f"Param sklearn_hyperparameters must be a JSON object, not {hps!r}")
        for key in hps:
            if not isinstance(key, str) or not key or key.startswith("sagemaker_"):
                raise ValueError(f"Param sklearn_hyperparameters: {key!r} is not a name the script may take "
                                 "(sagemaker_* names are the container's own)")
        if project_dir is not None:
            self.source_dir(params, project_dir)

    def package(self, params: Mapping, project_dir: Path | None) -> tuple[bytes, str, dict]:
        """(``sourcedir.tar.gz`` bytes, their sha256, facts): files at the root, sorted, times and owners zeroed."""
        folder = self.source_dir(params, project_dir)
        raw = io.BytesIO()
        total = 0
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(folder)
                if any(part in _SKIP for part in relative.parts) or path.suffix == ".pyc" or not path.is_file():
                    continue
                data = path.read_bytes()
                total += len(data)
                if total > MAX_SOURCE_BYTES:
                    raise ValueError(f"Param sklearn_source_dir {params.get('sklearn_source_dir')!r} holds more "
                                     f"than {MAX_SOURCE_BYTES // 2**20} MB: keep data out of the code folder")
                info = tarfile.TarInfo(relative.as_posix())
                info.size, info.mtime, info.mode = len(data), 0, 0o755 if path.stat().st_mode & 0o111 else 0o644
                tar.addfile(info, io.BytesIO(data))
        compressed = io.BytesIO()
        import gzip

        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as gz:
            gz.write(raw.getvalue())
        blob = compressed.getvalue()
        facts = {"entry_point": params.get("sklearn_entry_point") or "train.py",
                 "source_dir": params.get("sklearn_source_dir")}
        return blob, hashlib.sha256(blob).hexdigest(), facts

    # --- training ---------------------------------------------------------------------------------
    def build_hyperparameters(self, params: Mapping, feature_dim: int, **context: Any) -> dict[str, str]:
        code = context.get("code") or {}
        if not code.get("uri"):
            raise ValueError("The scikit-learn script's sourcedir.tar.gz has not been uploaded (no code URI)")
        hps = {
            "sagemaker_program": json.dumps(params.get("sklearn_entry_point") or "train.py"),
            "sagemaker_submit_directory": json.dumps(code["uri"]),
            "sagemaker_container_log_level": json.dumps(LOG_LEVEL),
        }
        if context.get("region"):
            hps["sagemaker_region"] = json.dumps(context["region"])
        for key, value in sorted((params.get("sklearn_hyperparameters") or {}).items()):
            hps[str(key)] = json.dumps(value)
        return hps

    def container(self, image: str, model_data_url: str, code: Mapping | None = None,
                  region: str | None = None) -> dict:
        """The serving container: the artifact plus the code that serves it (as the SDK's SKLearnModel sets it)."""
        code = code or {}
        environment = {
            "SAGEMAKER_PROGRAM": code.get("entry_point") or "train.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": code.get("uri") or "",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": str(LOG_LEVEL),
        }
        if region:
            environment["SAGEMAKER_REGION"] = region
        return {"Image": image, "ModelDataUrl": model_data_url, "Environment": environment}

    # --- answers ----------------------------------------------------------------------------------
    def parse_transform_output(self, body: bytes, predictor_type: str, where: str = "transform output") -> list[dict]:
        """``text/csv`` from the container's default ``output_fn``: one row of the prediction array per line."""
        return from_values(number_lines(body, where), predictor_type, probability=False)

    def parse_endpoint_answer(self, body: bytes, predictor_type: str) -> list[dict]:
        try:
            values = json.loads(body)
        except ValueError as err:
            raise AnswerError(f"Endpoint answer is not a JSON array: {body[:200]!r}") from err
        if isinstance(values, dict) and isinstance(values.get("predictions"), list):
            values = values["predictions"]  # a script's own output_fn in the built-ins' shape
        if not isinstance(values, list):
            raise AnswerError(f"Endpoint answer is not a JSON array of predictions: {body[:200]!r}")
        return from_values(values, predictor_type, probability=False)


ALGORITHM = SKLearn()
