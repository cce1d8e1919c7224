"""Built-in k-NN (``knn:1``): the documented algorithm, exact search in numpy.

AWS's k-NN samples ``sample_size`` training points (uniformly, without replacement), builds an index
(``faiss.Flat`` by default: exact search), and at inference returns for each record the mode of its
``k`` nearest neighbours' labels (classifier) or their mean (regressor). Here: the same, with an exact
brute-force search (``index_metric`` L2, INNER_PRODUCT or COSINE), which is what ``faiss.Flat`` computes.

- hyperparameters (AWS's table): ``feature_dim``, ``k``, ``predictor_type`` (classifier|regressor),
  ``sample_size`` required; ``index_metric``, ``index_type``, ``mini_batch_size``, ``faiss_index_ivf_nlists``,
  ``faiss_index_pq_m``, ``dimension_reduction_type``/``_target`` accepted (the IVF/PQ index types are searched
  exactly; a dimension reduction fails the job: not emulated); unknown names fail the job;
- channels ``train`` (required) and ``test``; ``text/csv`` (label first) or ``application/x-recordio-protobuf``
  (the default), with the Linear Learner decoder; ``csv`` fails as the first-party algorithms fail;
- the test channel, when given, logs ``#test_score (algo-1) : ('accuracy', v)`` (classifier) or
  ``('mse', v)`` (regressor), reported as ``test:accuracy`` / ``test:mse`` (the metric names AWS documents;
  the log line and regexes are ours);
- ``model.tar.gz`` holds ``model_algo-1``: our numpy archive of the sample and its labels (AWS's holds a
  faiss index; artifacts do not move between AWS and the emulator);
- inference: ``text/csv``, ``application/json``, ``application/jsonlines``, ``application/x-recordio-protobuf``
  requests; ``application/json`` ``{"predictions": [{"predicted_label": ...}]}`` (``; verbose=true`` adds
  ``distances`` and ``labels`` of the neighbours), ``application/jsonlines``, ``application/x-recordio-protobuf``.
"""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np

from ..answers import choose_accept, json_answer
from ..limits import LimitExceeded, read_tar_member
from ..linear_learner.data import DataError
from ..linear_learner.serving import decode_request, encode_prediction_records
from .base import AlgorithmFailed, TrainingContext, TrainingResult, metrics_from_log, tar_gz
from .linear_learner import client_error, parse_channel

ARTIFACT_NAME = "model_algo-1"
FORMAT = "offline_aws.knn/1"
REQUIRED = ("feature_dim", "k", "predictor_type", "sample_size")
OPTIONAL = {
    "dimension_reduction_target": "int", "dimension_reduction_type": ("sign", "fjlt"),
    "faiss_index_ivf_nlists": "auto_or_int", "faiss_index_pq_m": "int",
    "index_metric": ("L2", "INNER_PRODUCT", "COSINE"), "index_type": ("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ"),
    "mini_batch_size": "int", "_kvstore": ("local", "dist_sync", "dist_async", "auto"), "_num_gpus": "int",
    "_num_kv_servers": "int", "epochs": "int", "_log_level": "any", "_tuning_objective_metric": "any",
}
METRIC_DEFINITIONS = [
    {"Name": "test:accuracy", "Regex": r"#test_score \(algo-1\) : \('accuracy', ([^)\s]+)\)"},
    {"Name": "test:mse", "Regex": r"#test_score \(algo-1\) : \('mse', ([^)\s]+)\)"},
]
CHUNK = 2048  # query rows per distance block


def _fail(text: str):
    raise AlgorithmFailed(f"ClientError: {text}")


def parse_hyperparameters(raw: dict[str, str]) -> dict:
    out: dict = {}
    for name, value in raw.items():
        if name not in REQUIRED and name not in OPTIONAL:
            _fail(f"Unable to initialize the algorithm. Failed to validate input hyperparameters: Additional "
                  f"properties are not allowed ('{name}' was unexpected)")
        out[name] = str(value)
    for name in REQUIRED:
        if name not in out:
            _fail(f"Unable to initialize the algorithm. Failed to validate input hyperparameters: '{name}' is a "
                  "required property")
    hp: dict = {}
    for name, text in out.items():
        kind = "int" if name in ("feature_dim", "k", "sample_size") else (
            ("classifier", "regressor") if name == "predictor_type" else OPTIONAL[name])
        if kind == "int" or (kind == "auto_or_int" and text != "auto"):
            try:
                hp[name] = int(text)
            except ValueError:
                _fail(f"Unable to initialize the algorithm. Failed to validate input hyperparameters: Hyperparameter "
                      f"'{name}' must be an integer, got {text!r}")
            if hp[name] < 1:
                _fail(f"Unable to initialize the algorithm. Failed to validate input hyperparameters: {hp[name]} is "
                      f"less than the minimum of 1 ('{name}')")
        elif isinstance(kind, tuple):
            if text not in kind:
                _fail(f"Unable to initialize the algorithm. Failed to validate input hyperparameters: {text!r} is not "
                      f"one of {list(kind)} ('{name}')")
            hp[name] = text
        else:
            hp[name] = text
    if "dimension_reduction_type" in hp:
        if "dimension_reduction_target" not in hp:
            _fail("Unable to initialize the algorithm. dimension_reduction_target is required when "
                  "dimension_reduction_type is set")
        _fail("dimension_reduction_type is not supported by the offline emulator's k-NN.")
    hp.setdefault("index_metric", "L2")
    hp.setdefault("index_type", "faiss.Flat")
    return hp


class KNNModel:
    def __init__(self, X: np.ndarray, y: np.ndarray, k: int, predictor_type: str, index_metric: str):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.k = int(k)
        self.predictor_type = predictor_type
        self.index_metric = index_metric

    @property
    def feature_dim(self) -> int:
        return self.X.shape[1]

    def neighbours(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indexes, distances) of each query's k nearest sample points, nearest first."""
        k = min(self.k, len(self.X))
        Q = np.asarray(Q, dtype=np.float64)
        base = self.X
        if self.index_metric == "COSINE":
            base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
        sq = (base**2).sum(axis=1)
        idx_out, dist_out = [], []
        for start in range(0, len(Q), CHUNK):
            q = Q[start:start + CHUNK]
            if self.index_metric == "L2":
                d = np.maximum((q**2).sum(axis=1)[:, None] - 2 * q @ base.T + sq[None, :], 0.0)
            elif self.index_metric == "COSINE":
                qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
                d = 1.0 - qn @ base.T
            else:  # INNER_PRODUCT: the largest product is the nearest
                d = -(q @ base.T)
            part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(d.shape[1]), (len(q), 1))
            pd = np.take_along_axis(d, part, axis=1)
            order = np.lexsort((part, pd), axis=1)  # by distance, then by sample index (stable ties)
            idx_out.append(np.take_along_axis(part, order, axis=1))
            dist_out.append(np.take_along_axis(pd, order, axis=1))
        return np.vstack(idx_out), np.vstack(dist_out)

    def predict(self, Q: np.ndarray) -> dict[str, np.ndarray]:
        idx, dist = self.neighbours(Q)
        labels = self.y[idx]
        if self.predictor_type == "regressor":
            pred = labels.mean(axis=1)
        else:  # the mode; a tie goes to the label met first among the nearest
            pred = np.empty(len(labels))
            for i, row in enumerate(labels):
                values, first, counts = np.unique(row, return_index=True, return_counts=True)
                best = counts == counts.max()
                pred[i] = values[best][np.argmin(first[best])]
        return {"predicted_label": pred, "labels": labels, "distances": dist}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"format": FORMAT, "k": self.k, "predictor_type": self.predictor_type,
                           "index_metric": self.index_metric})
        np.savez(buf, X=self.X, y=self.y, meta=np.array(meta))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> KNNModel:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"expected format {FORMAT!r}")
                return cls(npz["X"], npz["y"], meta["k"], meta["predictor_type"], meta["index_metric"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"not an offline k-NN model: {exc}") from None


def _log_time() -> str:
    return f"[{datetime.now():%m/%d/%Y %H:%M:%S} INFO]"


class KNN:
    name = "knn"
    title = "k-NN"
    channels = ("train", "test")

    def train(self, ctx: TrainingContext) -> TrainingResult:
        hp = parse_hyperparameters(ctx.hyperparameters)
        try:
            data = {name: parse_channel(ct, blobs) for name, (ct, blobs) in ctx.channels.items()}
        except DataError as exc:
            ctx.log(f"[{datetime.now():%m/%d/%Y %H:%M:%S} ERROR] {exc}")
            raise AlgorithmFailed(client_error(exc)) from None
        y, X = data["train"]
        if X.shape[1] != hp["feature_dim"]:
            _fail(f"Customer Error: The feature_dim hyperparameter ({hp['feature_dim']}) does not match the number "
                  f"of features in the train channel ({X.shape[1]}).")
        if hp["predictor_type"] == "classifier" and not np.all(np.isfinite(y)):
            _fail("Customer Error: The train channel has records without a label.")
        rng = np.random.RandomState(0)
        n = min(hp["sample_size"], len(y))
        chosen = np.sort(rng.choice(len(y), size=n, replace=False)) if n < len(y) else np.arange(len(y))
        ctx.log(f"{_log_time()} Reservoir sampling: {n} of {len(y)} records (sample_size={hp['sample_size']})")
        model = KNNModel(X[chosen], y[chosen], hp["k"], hp["predictor_type"], hp["index_metric"])
        ctx.log(f"{_log_time()} Building index of type {hp['index_type']} with metric {hp['index_metric']} "
                f"over {n} points of dimension {X.shape[1]}")
        lines: list[str] = []
        if "test" in data:
            yt, Xt = data["test"]
            if Xt.shape[1] != model.feature_dim:
                _fail(f"Customer Error: The test channel has {Xt.shape[1]} features, the model {model.feature_dim}.")
            pred = model.predict(Xt)["predicted_label"]
            if hp["predictor_type"] == "classifier":
                line = f"#test_score (algo-1) : ('accuracy', {float(np.mean(pred == yt))!r})"
            else:
                line = f"#test_score (algo-1) : ('mse', {float(np.mean((pred - yt) ** 2))!r})"
            ctx.log(line)
            lines.append(line)
        return TrainingResult(tar_gz({ARTIFACT_NAME: model.to_bytes()}), metrics_from_log(lines, METRIC_DEFINITIONS))

    def load(self, artifact: bytes, container: dict, fetch) -> KNNPredictor:
        if artifact[:2] != b"\x1f\x8b":
            raise ValueError("model.tar.gz is not a valid gzipped tar archive: not gzip")
        try:
            payload = read_tar_member(artifact, ARTIFACT_NAME)
        except (LimitExceeded, OSError, EOFError) as exc:
            raise ValueError(f"model.tar.gz refused: {exc}") from None
        return KNNPredictor(KNNModel.from_bytes(payload))


RESPONSE_TYPES = ("application/json", "application/jsonlines", "application/x-recordio-protobuf")


class KNNPredictor:
    def __init__(self, model: KNNModel):
        self.model = model

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, *, batch: bool = False):
        media, params = choose_accept(accept, RESPONSE_TYPES, default="application/json")
        verbose = "verbose=true" in params
        X = decode_request(body, content_type or "application/octet-stream", self.model.feature_dim)
        out = self.model.predict(X)
        records = []
        for i, label in enumerate(out["predicted_label"]):
            record = {"predicted_label": float(label)}
            if verbose:
                record["distances"] = out["distances"][i].tolist()
                record["labels"] = out["labels"][i].tolist()
            records.append(record)
        answer = json_answer(records, media)
        if answer is not None:
            return answer, media
        return encode_prediction_records([{"predicted_label": r["predicted_label"]} for r in records]), media
