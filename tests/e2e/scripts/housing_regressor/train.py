"""A script-mode entry point for the e2e tests: a scikit-learn random forest regressor on label-first CSV.

The container runs it with ``--n_estimators …`` and the ``SM_*`` environment; serving loads the
model through ``model_fn`` and the container's default handlers predict (``model.predict``).
"""

from __future__ import annotations

import argparse
import glob
import os

import joblib
import numpy as np
from sklearn.ensemble import RandomForestRegressor

MODEL_FILE = "model.joblib"


def read_channel(path: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(f))
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    return data[:, 0], data[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int, default=50)
    parser.add_argument("--max_depth", type=int, default=None)
    args = parser.parse_args()
    y, X = read_channel(os.environ["SM_CHANNEL_TRAIN"])
    model = RandomForestRegressor(n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=0)
    model.fit(X, y)
    if os.environ.get("SM_CHANNEL_VALIDATION"):
        yv, Xv = read_channel(os.environ["SM_CHANNEL_VALIDATION"])
        print(f"validation_mse={float(np.mean((model.predict(Xv) - yv) ** 2)):.6f}")
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], MODEL_FILE))


def model_fn(model_dir: str):
    return joblib.load(os.path.join(model_dir, MODEL_FILE))


if __name__ == "__main__":
    main()
