"""A scikit-learn regressor for script mode (``sagemaker-scikit-learn:1.2-1-cpu-py3``), used by the benchmarks.

The project's example script (``include/models/scripts/iris_classifier``) is a classifier; the housing
benchmark needs a regressor. Trains a ``GradientBoostingRegressor`` on the ``train`` channel's CSV files
(label first, no header), prints ``validation_rmse=`` when a ``validation`` channel is given, and saves the
model to ``SM_MODEL_DIR``; hosting calls ``model_fn`` and serves with the container's default handlers.

It also writes ``timing.json`` (its own wall-clock start, taken before its first import, and end) into
the model directory, and prints them: ``bench_script_mode.py`` subtracts the script's own run time
from the job's.
"""

import time

STARTED = time.time()  # first statement: the script's own run time starts here

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.ensemble import GradientBoostingRegressor  # noqa: E402

MODEL_FILE = "model.joblib"


def read_channel(path: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(f))
    if not files:
        raise ValueError(f"no data files in {path}")
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    return data[:, 0], data[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", "--n_estimators", dest="n_estimators", type=int, default=100)
    parser.add_argument("--max-depth", "--max_depth", dest="max_depth", type=int, default=3)
    parser.add_argument("--learning-rate", "--learning_rate", dest="learning_rate", type=float, default=0.1)
    parser.add_argument("--random-state", "--random_state", dest="random_state", type=int, default=0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args = parser.parse_args()
    y, X = read_channel(args.train)
    model = GradientBoostingRegressor(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                      learning_rate=args.learning_rate, random_state=args.random_state)
    model.fit(X, y)
    if args.validation and os.path.isdir(args.validation):
        yv, Xv = read_channel(args.validation)
        print(f"validation_rmse={float(np.sqrt(np.mean((model.predict(Xv) - yv) ** 2))):.6f}")
    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, MODEL_FILE))
    ended = time.time()
    with open(os.path.join(args.model_dir, "timing.json"), "w") as out:
        json.dump({"start": STARTED, "end": ended}, out)
    print(f"script_start={STARTED:.6f} script_end={ended:.6f} script_seconds={ended - STARTED:.6f}", flush=True)


def model_fn(model_dir: str):
    """Called by the serving container with the extracted model.tar.gz."""
    return joblib.load(os.path.join(model_dir, MODEL_FILE))


if __name__ == "__main__":
    main()
