"""The trained Linear Learner model: prediction and the ``model.tar.gz`` artifact.

Weights are stored in original (un-normalised) units so prediction is one matrix product and
the artifact is self-describing JSON (AWS's is an MXNet parameter file; ours is not compatible).
"""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np

from ..limits import LimitExceeded, read_tar_member

FORMAT = "offline_aws.linear_learner/1"
ARTIFACT_NAME = "model_algo-1"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class LinearLearnerModel:
    """A linear model ``score = X @ weights + bias`` plus the link and threshold of its type."""

    def __init__(self, predictor_type: str, weights: np.ndarray, bias: np.ndarray, *, loss: str,
                 num_classes: int | None = None, threshold: float = 0.5,
                 hyperparameters: dict | None = None):
        self.predictor_type = predictor_type
        self.weights = np.asarray(weights, dtype=np.float64).reshape(len(weights), -1)  # (d, k)
        self.bias = np.asarray(bias, dtype=np.float64).reshape(-1)  # (k,)
        self.loss = loss
        self.num_classes = num_classes
        self.threshold = float(threshold)
        self.hyperparameters = dict(hyperparameters or {})

    @property
    def feature_dim(self) -> int:
        return self.weights.shape[0]

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.feature_dim:
            raise ValueError(f"expected an (n, {self.feature_dim}) feature matrix, got shape {X.shape}")
        return X @ self.weights + self.bias

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Score records the way the inference container does."""
        s = self.raw_scores(X)
        if self.predictor_type == "regressor":
            return {"score": s[:, 0]}
        if self.predictor_type == "binary_classifier":
            p = _sigmoid(s[:, 0])
            return {"score": p, "predicted_label": (p >= self.threshold).astype(np.int64)}
        p = softmax(s)
        return {"score": p, "predicted_label": p.argmax(axis=1).astype(np.int64)}

    # ------------------------------------------------------------------ serialisation
    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "predictor_type": self.predictor_type,
            "loss": self.loss,
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "threshold": self.threshold,
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
            "hyperparameters": self.hyperparameters,
        }
        return json.dumps(doc).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearLearnerModel:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"not an offline Linear Learner model: {err}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not an offline Linear Learner model (expected format {FORMAT!r})")
        try:
            weights = np.asarray(doc["weights"], dtype=np.float64)
            if weights.ndim != 2 or weights.shape[0] != doc["feature_dim"]:
                raise ValueError("weights do not match feature_dim")
            return cls(doc["predictor_type"], weights, np.asarray(doc["bias"], dtype=np.float64),
                       loss=doc["loss"], num_classes=doc.get("num_classes"),
                       threshold=doc.get("threshold", 0.5), hyperparameters=doc.get("hyperparameters"))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"corrupt offline Linear Learner model: {err}") from None


def write_model_tar_gz(model: LinearLearnerModel) -> bytes:
    """The training output artifact: a gzipped tar holding ``model_algo-1``, like AWS's."""
    payload = model.to_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(ARTIFACT_NAME)
        info.size = len(payload)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def read_model_tar_gz(data: bytes) -> LinearLearnerModel:
    """Load a model artifact; a corrupt, foreign or oversized ``model.tar.gz`` (a tar bomb) raises ValueError.

    Decompression and the member are capped (``offline_aws.limits``), so a hostile artifact cannot
    exhaust the emulator's memory.
    """
    if data[:2] != b"\x1f\x8b":
        raise ValueError("model.tar.gz is not a valid gzipped tar archive: not gzip")
    try:
        payload = read_tar_member(data, ARTIFACT_NAME)
    except LimitExceeded as err:
        raise ValueError(f"model.tar.gz refused: {err}") from None
    except ValueError as err:
        if "has no" in str(err):
            raise ValueError(f"model.tar.gz has no {ARTIFACT_NAME!r}; not a Linear Learner model") from None
        raise
    except (OSError, EOFError) as err:
        raise ValueError(f"model.tar.gz is not a valid gzipped tar archive: {err}") from None
    return LinearLearnerModel.from_bytes(payload)
