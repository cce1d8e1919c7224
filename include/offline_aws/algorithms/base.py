"""The one interface every emulated algorithm implements: a trainer and a predictor.

``training.py`` downloads the channels, then hands a ``TrainingContext`` to the algorithm the
training image names; the algorithm logs its lines (CloudWatch Logs, and the lines SageMaker's
MetricDefinitions read), and returns the ``model.tar.gz`` bytes and its final metrics.
``hosting.py`` and ``transform.py`` turn that artifact back into a ``Predictor`` (the inference
container) whose ``invoke`` serves one request body, for an endpoint or a batch transform mini-batch.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..answers import ModelError

__all__ = ["AlgorithmFailed", "ModelError", "Predictor", "TrainingContext", "TrainingResult", "Algorithm"]


class AlgorithmFailed(Exception):
    """Fails the training job; the message is its FailureReason (``ClientError: ...``, ``AlgorithmError: ...``)."""


class JobStopped(Exception):
    """Ends the job Stopped (StopTrainingJob was called)."""


class JobStoppedByRuntime(Exception):
    """The job ran past ``MaxRuntimeInSeconds``: it ends Stopped, as AWS stops it."""


@dataclass
class TrainingContext:
    """What a training container sees: its request, its channels' bytes and where to log."""

    desc: dict  # the DescribeTrainingJob record (read only)
    hyperparameters: dict[str, str]
    channels: dict[str, tuple[str | None, list[bytes]]]  # name -> (ContentType as sent, object bodies)
    log: Callable[[str], None]  # one CloudWatch log line (raises JobStopped when a stop was asked)
    stop_requested: threading.Event
    aws: object = None  # the emulator's AwsClients (S3 for script mode's sourcedir)
    endpoint_url: str | None = None  # where a subprocess reaches the emulator (script mode)
    max_runtime: float | None = None  # MaxRuntimeInSeconds (real seconds)
    extra: dict = field(default_factory=dict)
    flush: Callable[[], None] | None = None  # push buffered log lines to CloudWatch now (a long-running script)


@dataclass
class TrainingResult:
    artifact: bytes  # model.tar.gz
    metrics: dict[str, float]  # FinalMetricDataList, in the order AWS reports it
    output: bytes | None = None  # output.tar.gz (script mode's /opt/ml/output/data), beside model.tar.gz


class Predictor(Protocol):
    """A loaded model, as its inference container serves it."""

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, *, batch: bool = False) -> tuple[bytes, str]:
        """One request body -> (response body, response content type); raises ``ModelError``."""


class Algorithm(Protocol):
    name: str

    def train(self, ctx: TrainingContext) -> TrainingResult: ...

    def load(self, artifact: bytes, container: dict, fetch: Callable[[str], bytes]) -> Predictor:
        """Load ``model.tar.gz`` (``container`` is the model's container definition, ``fetch`` reads
        an ``s3://`` URI through the emulator's S3); raises ValueError for an artifact it cannot load."""
        ...


def metrics_from_log(lines: list[str], definitions: list[dict]) -> dict[str, float]:
    """SageMaker's MetricDefinitions over a job's log: each metric's last value, in definition order."""
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    found: dict[str, float] = {}
    for line in lines:
        for name, regex in compiled:
            match = regex.search(line)
            if match:
                try:
                    found[name] = float(match.group(1))
                except (ValueError, IndexError):
                    continue
    order = {name: i for i, (name, _) in enumerate(compiled)}
    return dict(sorted(found.items(), key=lambda item: order[item[0]]))


def tar_gz(members: dict[str, bytes]) -> bytes:
    """The training job's ``model.tar.gz``: a gzipped tar of these files (name -> bytes), mode 0644, as AWS writes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()
