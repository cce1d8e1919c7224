"""Linear Learner behind the algorithm interface: the ``linear_learner`` package, unchanged."""

from __future__ import annotations

from datetime import datetime

from ..linear_learner.data import DataError, read_csv_records, read_recordio_protobuf
from ..linear_learner.hyperparameters import HyperparameterError, parse_hyperparameters
from ..linear_learner.metric_definitions import final_metrics
from ..linear_learner.model import LinearLearnerModel, read_model_tar_gz, write_model_tar_gz
from ..linear_learner.serving import decode_request, encode_response
from ..linear_learner.train import train
from .base import AlgorithmFailed, TrainingContext, TrainingResult

CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"


def client_error(exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith(("ClientError", "AlgorithmError")) else f"ClientError: {text}"


def parse_channel(content_type: str | None, blobs: list[bytes]):
    """Decode one channel, rejecting content types the algorithm has no iterator for, with AWS's words."""
    mime = (content_type or RECORDIO).split(";")[0].strip().lower()
    if mime == CSV:
        return read_csv_records(b if b.endswith(b"\n") else b + b"\n" for b in blobs)
    if mime == RECORDIO:
        return read_recordio_protobuf(blobs)
    raise DataError(f"ClientError: No iterator has been registered for ContentType ('{mime}', '1.0')")


class LinearLearnerPredictor:
    def __init__(self, model: LinearLearnerModel):
        self.model = model

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, *, batch: bool = False):
        X = decode_request(body, content_type or "application/octet-stream", self.model.feature_dim)
        return encode_response(self.model.predict(X), accept, self.model.predictor_type)


class LinearLearner:
    name = "linear-learner"
    title = "Linear Learner"
    channels = ("train", "validation", "test")

    def train(self, ctx: TrainingContext) -> TrainingResult:
        lines: list[str] = []  # what SageMaker's MetricDefinitions read

        def sink(line: str) -> None:
            ctx.log(line)
            lines.append(line)

        try:
            hp = parse_hyperparameters(dict(ctx.hyperparameters))
        except HyperparameterError as exc:
            ctx.log(f"[{datetime.now():%m/%d/%Y %H:%M:%S} ERROR] {exc}")
            raise AlgorithmFailed(client_error(exc)) from None
        try:
            channels = {name: parse_channel(ct, blobs) for name, (ct, blobs) in ctx.channels.items()}
            result = train(hp, channels["train"], channels.get("validation"), channels.get("test"), log=sink, seed=0)
        except DataError as exc:
            ctx.log(f"[{datetime.now():%m/%d/%Y %H:%M:%S} ERROR] {exc}")
            raise AlgorithmFailed(client_error(exc)) from None
        if ctx.extra.get("nan_weights"):  # injected fault: a corrupt artifact behind good metrics
            result.model.weights[:] = float("nan")
        return TrainingResult(write_model_tar_gz(result.model), final_metrics(lines))

    def load(self, artifact: bytes, container: dict, fetch) -> LinearLearnerPredictor:
        return LinearLearnerPredictor(read_model_tar_gz(artifact))
