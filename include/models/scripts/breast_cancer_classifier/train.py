"""Script-mode entry point of the breast_cancer model (include/models/breast_cancer.yaml): the SageMaker
scikit-learn container (sagemaker-scikit-learn:1.2-1) runs it to train, and its ``model_fn`` and
``predict_fn`` to serve.

Trains a standardised logistic regression on the ``train`` channel (label first: 1 = malignant, no
header), prints its accuracy on ``validation`` when there is one, saves the model to ``SM_MODEL_DIR``.
Serving answers class probabilities (``[[p_benign, p_malignant], …]``), not bare labels, so the gate
can rank the rows (ROC AUC) as well as count right answers.

By hand: ``SM_MODEL_DIR=/tmp/m SM_CHANNEL_TRAIN=data/ python train.py -C 0.5`` (the container passes a
one-letter hyperparameter with one dash, as here).
"""

from __future__ import annotations

import argparse
import glob
import os

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_FILE = "model.joblib"


def read_channel(path: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(f))
    if not files:
        raise ValueError(f"no data files in {path}")
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    return data[:, 0], data[:, 1:]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("-C", "--C", dest="c", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--max-iter", "--max_iter", dest="max_iter", type=int, default=1000)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    y, X = read_channel(args.train)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=args.max_iter))
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


def predict_fn(data, model):
    """Both classes' probabilities per row: the gate reads the second as the malignant score."""
    return model.predict_proba(np.asarray(data, dtype=float).reshape(-1, model.n_features_in_))


if __name__ == "__main__":
    main()
