"""Built-in k-NN (``knn:1``): classifier (majority label) and regressor (mean label of the neighbours).

Required hyperparameters: ``feature_dim`` (from the data), ``k``, ``sample_size`` and
``predictor_type`` (``classifier`` or ``regressor``, from Param predictor_type). Channels train and
test (k-NN has no validation channel); CSV label-first or RecordIO-protobuf. Answers: JSON
``{"predictions": [{"predicted_label": …}]}``, JSON Lines ``{"predicted_label": …}`` per row (batch
transform). k-NN gives no probability: a classifier's score is its label.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagemaker_retrain.algorithms.accounts import FIRST_PARTY
from sagemaker_retrain.algorithms.base import (
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    Algorithm,
    AnswerError,
    Hyperparameter,
    from_values,
    json_lines,
    json_predictions,
)

_HP = Hyperparameter
HYPERPARAMETERS = (
    _HP("k", "knn_k", "int", "Neighbours (k)", "Required for k-NN: the number of nearest neighbours, 1–1024.",
        None, required=True, minimum=1, maximum=1024),
    _HP("sample_size", "knn_sample_size", "int", "Sample size",
        "Required for k-NN: data points sampled from the training rows into the index, 1–100,000,000.", None,
        required=True, minimum=1, maximum=100_000_000),
    _HP("index_type", "knn_index_type", "str", "Index type",
        "`faiss.Flat` (exact), `faiss.IVFFlat` or `faiss.IVFPQ`; empty for the default (faiss.Flat).", None,
        choices=("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")),
    _HP("index_metric", "knn_index_metric", "str", "Distance",
        "`L2`, `INNER_PRODUCT` or `COSINE`; empty for the default (L2).", None,
        choices=("L2", "INNER_PRODUCT", "COSINE")),
    _HP("mini_batch_size", "knn_mini_batch_size", "int", "Mini-batch size",
        "Observations per mini-batch while loading, 1–10,000; empty for the default (5000).", None,
        minimum=1, maximum=10_000),
    _HP("dimension_reduction_type", "knn_dimension_reduction_type", "str", "Dimension reduction",
        "`sign` (random projection) or `fjlt`; empty: none. Needs *Reduced dimension*.", None,
        choices=("sign", "fjlt")),
    _HP("dimension_reduction_target", "knn_dimension_reduction_target", "int", "Reduced dimension",
        "The dimension to reduce to, 1 or more, below the feature count; only with *Dimension reduction*.", None,
        minimum=1),
)


class KNN(Algorithm):
    name = "knn"
    title = "k-NN"
    repository = "knn"
    tag = "1"
    accounts = FIRST_PARTY
    hyperparameters = HYPERPARAMETERS
    channels = ("train", "test")
    training_formats = (CSV, RECORDIO)
    endpoint_accept = JSON
    transform_accept = JSONLINES
    supported_content_types = (CSV, JSON, JSONLINES, RECORDIO)
    supported_response_types = (JSON, JSONLINES, RECORDIO)

    def image_tags(self) -> tuple[str, ...]:
        return ("1", "latest")

    def validate(self, params: Mapping, project_dir: Path | None = None) -> None:
        super().validate(params, project_dir)
        reduction, target = params.get("knn_dimension_reduction_type"), params.get("knn_dimension_reduction_target")
        if reduction and target is None:
            raise ValueError(f"Param knn_dimension_reduction_target (Reduced dimension) is required when Param "
                             f"knn_dimension_reduction_type is {reduction!r}")

    def build_hyperparameters(self, params: Mapping, feature_dim: int, **context: Any) -> dict[str, str]:
        predictor = "regressor" if params["predictor_type"] == "regressor" else "classifier"
        return {"feature_dim": str(feature_dim), "predictor_type": predictor,
                **super().build_hyperparameters(params, feature_dim)}

    def parse_transform_output(self, body: bytes, predictor_type: str, where: str = "transform output") -> list[dict]:
        items = json_lines(body, where)
        try:
            labels = [item["predicted_label"] for item in items]
        except (KeyError, TypeError) as err:
            raise AnswerError(f"{where} is not k-NN's answer (a predicted_label per row): {str(items)[:200]}") from err
        return from_values(labels, predictor_type, probability=False)

    def parse_endpoint_answer(self, body: bytes, predictor_type: str) -> list[dict]:
        return from_values(json_predictions(body, "k-NN", "predicted_label"), predictor_type, probability=False)


ALGORITHM = KNN()
