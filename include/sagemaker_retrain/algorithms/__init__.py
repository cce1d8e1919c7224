"""Algorithms as strategies: the pipeline asks the strategy, never names an algorithm itself.

``get(name)`` gives the strategy Param ``algorithm`` selects; ``of_image(image)`` the one whose
container an existing model runs (how the champion's answers are read: from what serves).
"""

from __future__ import annotations

from sagemaker_retrain.algorithms import knn, linear_learner, sklearn, xgboost
from sagemaker_retrain.algorithms.base import (
    CSV,
    RECORDIO,
    Algorithm,
    AnswerError,
    ExtraParam,
    Hyperparameter,
)

DEFAULT = linear_learner.ALGORITHM.name
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    linear_learner.ALGORITHM, xgboost.ALGORITHM, knn.ALGORITHM, sklearn.ALGORITHM)}


def get(name: str | None) -> Algorithm:
    """The strategy for Param ``algorithm`` (None: the default); ValueError naming the Param otherwise."""
    try:
        return ALGORITHMS[name or DEFAULT]
    except KeyError:
        raise ValueError(f"Param algorithm {name!r} is not one of {', '.join(ALGORITHMS)}") from None


def of_params(params) -> Algorithm:
    return get(params.get("algorithm"))


def run_params(params) -> dict:
    """A run's Params with its algorithm's section filled in from the strategy's defaults where absent.

    A model's DAG carries only its own algorithm's section (``params.build_params(algorithm=...)``); a run
    that chooses another algorithm gives that one's hyperparameters in its conf, and the ones it leaves out
    take the defaults that algorithm's form section has, as they would on a DAG showing it.
    """
    return {**of_params(params).form_defaults(), **params}


def of_image(image: str | None) -> Algorithm:
    """The strategy whose container ``image`` is (any region); ValueError naming the image otherwise."""
    for algorithm in ALGORITHMS.values():
        if algorithm.owns_image(image or ""):
            return algorithm
    raise ValueError(f"Image {image!r} is not the image of any algorithm the pipeline knows "
                     f"({', '.join(f'{a.repository}:{a.tag}' for a in ALGORITHMS.values())})")


__all__ = ["ALGORITHMS", "CSV", "DEFAULT", "RECORDIO", "Algorithm", "AnswerError", "ExtraParam", "Hyperparameter",
           "get", "of_image", "of_params", "run_params"]
