"""The example script-mode entry point (include/models/scripts/iris_classifier/train.py) on its own."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

SCRIPT = Path(__file__).resolve().parents[3] / "include" / "models" / "scripts" / "iris_classifier" / "train.py"


def _module():
    spec = importlib.util.spec_from_file_location("iris_classifier_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trains_as_the_container_runs_it_and_model_fn_loads_what_it_saved(tmp_path):
    X, y = load_iris(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(y))
    X, y = X[perm], y[perm]
    for channel, rows in (("train", slice(0, 120)), ("validation", slice(120, None))):
        (tmp_path / channel).mkdir()
        np.savetxt(tmp_path / channel / "part.csv", np.column_stack([y[rows], X[rows]]), delimiter=",")
    env = {"PATH": os.environ["PATH"], "SM_MODEL_DIR": str(tmp_path / "model"),
           "SM_CHANNEL_TRAIN": str(tmp_path / "train"), "SM_CHANNEL_VALIDATION": str(tmp_path / "validation")}
    done = subprocess.run([sys.executable, str(SCRIPT), "--n_estimators", "30", "--max_depth", "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    accuracy = float(next(line for line in done.stdout.splitlines()
                          if line.startswith("validation_accuracy=")).split("=")[1])
    model = _module().model_fn(str(tmp_path / "model"))
    assert model.n_estimators == 30 and model.max_depth == 3
    assert accuracy == round(model.score(X[120:], y[120:]), 6)
    assert accuracy >= 0.9


def test_a_channel_without_files_fails_the_script(tmp_path):
    (tmp_path / "train").mkdir()
    env = {"PATH": os.environ["PATH"], "SM_MODEL_DIR": str(tmp_path / "model"), "SM_CHANNEL_TRAIN": str(tmp_path / "train")}
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("ValueError: no data files in")
