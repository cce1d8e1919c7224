"""The algorithms the emulator trains and serves, one module each, behind ``base.Algorithm``.

``for_image(image)`` picks the module by training/inference image (``images.algorithm_of``); the
modules that need ``xgboost`` or ``scikit-learn`` are imported only when their image is used.
"""

from __future__ import annotations

import importlib

from .images import UnknownImage, algorithm_of

_MODULES = {
    "linear-learner": ("linear_learner", "LinearLearner"),
    "xgboost": ("xgboost_algo", "XGBoost"),
    "knn": ("knn", "KNN"),
    "sklearn": ("script_mode", "SKLearnScriptMode"),
}


def for_image(image: str | None):
    """The algorithm object for an image; UnknownImage names an image the emulator does not run."""
    module, cls = _MODULES[algorithm_of(image)]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


__all__ = ["UnknownImage", "algorithm_of", "for_image"]
