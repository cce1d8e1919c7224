"""Example script-mode entry point for the SageMaker scikit-learn container (sagemaker-scikit-learn:1.2-1).

Trains a RandomForestClassifier on the CSV files of the ``train`` channel (label in the first column,
no header), reports its accuracy on the ``validation`` channel when there is one, and saves the model
to ``SM_MODEL_DIR``. Hosting calls ``model_fn``; the container's default input/predict/output handlers
serve ``text/csv``, ``application/json`` and ``application/x-npy`` requests with ``model.predict``.

Run it as SageMaker does (``SM_*`` variables, hyperparameters as ``--name value``) or by hand:
``SM_MODEL_DIR=/tmp/m SM_CHANNEL_TRAIN=data/ python train.py --n-estimators 50``.
"""

from __future__ import annotations

import argparse
import glob
import os

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

MODEL_FILE = "model.joblib"


def read_channel(path: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(f))
    if not files:
        raise ValueError(f"no data files in {path}")
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    return data[:, 0], data[:, 1:]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", "--n_estimators", dest="n_estimators", type=int, default=100)
    parser.add_argument("--max-depth", "--max_depth", dest="max_depth", type=int, default=None)
    parser.add_argument("--random-state", "--random_state", dest="random_state", type=int, default=0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    y, X = read_channel(args.train)
    model = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                   random_state=args.random_state)
    model.fit(X, y)
    print(f"train_accuracy={model.score(X, y):.6f}")
    if args.validation and os.path.isdir(args.validation):
        yv, Xv = read_channel(args.validation)
        print(f"validation_accuracy={model.score(Xv, yv):.6f}")
    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, MODEL_FILE))


def model_fn(model_dir: str):
    """Called by the serving container with the extracted model.tar.gz."""
    return joblib.load(os.path.join(model_dir, MODEL_FILE))


if __name__ == "__main__":
    main()
