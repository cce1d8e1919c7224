"""Each algorithm on the walkthrough's housing split, trained and batch-transformed in the emulator (issue 22).

The split is the walkthrough's ``train_test_split(df, test_size=0.1, random_state=42)`` done in numpy:
``np.random.RandomState(42).permutation(506)``, its first 51 positions are the test rows, the other
455 the training rows (what scikit-learn's ``ShuffleSplit`` draws; checked against
``train_test_split`` when scikit-learn is installed). The rows are ``include/data/housing.csv``'s,
``medv`` moved first, CSV without header. Every algorithm gets the same channels:
``train`` (the 455 rows) and the 51 test rows as ``validation`` (Linear Learner, XGBoost, the script;
the walkthrough gave them to Linear Learner as its validation channel, which it uses to pick its
best model) or ``test`` (k-NN, which has no validation channel).

Each model then answers a batch transform job over the 51 test rows' features (``text/csv``,
``SplitType=Line``); the test RMSE is computed here from those answers and the labels, printed
beside Linear Learner's from the same run and the walkthrough's AWS figure (validation rmse 3.557,
``/work``'s ``data/README.md``; same 51 rows).

Algorithms and hyperparameters (time scale 0):
- Linear Learner (``linear-learner:1``): ``predictor_type=regressor``, ``mini_batch_size=30``,
  ``feature_dim=12`` (the walkthrough's), the rest the defaults;
- XGBoost (``sagemaker-xgboost:1.7-1``): ``objective=reg:squarederror``, ``num_round=200``, ``max_depth=4``,
  ``eta=0.05``, ``subsample=0.8``, ``seed=0``;
- k-NN (``knn:1``): ``predictor_type=regressor``, ``k=5``, ``sample_size=455``, ``feature_dim=12``
  (raw, unscaled features, as the algorithm takes them);
- scikit-learn script mode (``sagemaker-scikit-learn:1.2-1-cpu-py3``): ``bench/scripts/housing_regressor/train.py``
  (a ``GradientBoostingRegressor``, ``n_estimators=200``, ``max_depth=3``, ``learning_rate=0.05``,
  ``random_state=0``; the project's example script is a classifier).

    python bench/bench_algorithms_housing.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOUSING, Figure, emulator_process, report  # noqa: E402
from _jobs import (  # noqa: E402
    ROLE,
    channel,
    create_role,
    image,
    s3_parts,
    script_hyperparameters,
    sourcedir_tar,
    train,
    training_request,
    wait,
)

BUCKET = "bench-housing"
AWS_RMSE = 3.557  # the walkthrough's Linear Learner on AWS, validation channel = these test rows
SCRIPT_DIR = Path(__file__).resolve().parent / "scripts" / "housing_regressor"
TEST_SIZE, SEED = 0.1, 42


def walkthrough_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of ``train_test_split(range(n), test_size=0.1, random_state=42)``."""
    n_test = int(np.ceil(TEST_SIZE * n))
    permutation = np.random.RandomState(SEED).permutation(n)
    train_rows, test_rows = permutation[n_test:], permutation[:n_test]
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return train_rows, test_rows
    sk_train, sk_test = train_test_split(np.arange(n), test_size=TEST_SIZE, random_state=SEED)
    if not (np.array_equal(sk_train, train_rows) and np.array_equal(sk_test, test_rows)):
        raise AssertionError("the numpy split differs from train_test_split's")
    return train_rows, test_rows


def csv_body(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(f"{v:.10g}" for v in row) for row in rows) + "\n").encode()


ALGORITHMS = {
    # name -> (algorithm, hyperparameters, evaluation channel name, transform Accept)
    "Linear Learner": ("linear-learner", {"predictor_type": "regressor", "mini_batch_size": "30",
                                          "feature_dim": "12"}, "validation", "application/jsonlines"),
    "XGBoost": ("xgboost", {"objective": "reg:squarederror", "num_round": "200", "max_depth": "4", "eta": "0.05",
                            "subsample": "0.8", "seed": "0"}, "validation", "text/csv"),
    "k-NN regressor": ("knn", {"predictor_type": "regressor", "k": "5", "sample_size": "455", "feature_dim": "12"},
                       "test", "application/jsonlines"),
    "scikit-learn script": ("sklearn", {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05,
                                        "random_state": 0}, "validation", "text/csv"),
}


def parse_answers(body: str) -> np.ndarray:
    """One prediction per line: ``{"score": x}`` / ``{"predicted_label": x}`` (JSON Lines) or a number (CSV)."""
    values = []
    for line in body.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            record = json.loads(line)
            values.append(float(record["score"] if "score" in record else record["predicted_label"]))
        else:
            values.append(float(line.split(",")[0]))
    return np.array(values)


def run_algorithm(emu, label: str, spec: tuple, region: str) -> tuple[np.ndarray, float]:
    """Train, create the model, batch-transform the test features; returns (the answers, seconds)."""
    algorithm, hps, evaluation, accept = spec
    s3, sm = emu.client("s3"), emu.client("sagemaker")
    name = f"bench-housing-{algorithm}"
    uri = image(algorithm, region)
    environment = {}
    if algorithm == "sklearn":
        submit = f"s3://{BUCKET}/code/{name}/sourcedir.tar.gz"
        s3.put_object(Bucket=BUCKET, Key=s3_parts(submit)[1], Body=sourcedir_tar(SCRIPT_DIR))
        hps = script_hyperparameters("train.py", submit, region, name, hps)
        environment = {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": submit}
    channels = [channel("train", f"s3://{BUCKET}/data/train/"),
                channel(evaluation, f"s3://{BUCKET}/data/test/")]
    start = time.perf_counter()
    desc, _ = train(sm, training_request(name, uri, hps, channels, f"s3://{BUCKET}/output"))
    container = {"Image": uri, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]}
    if environment:
        container["Environment"] = environment
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    output = f"s3://{BUCKET}/transform/{name}/"
    sm.create_transform_job(
        TransformJobName=name, ModelName=name, BatchStrategy="MultiRecord", MaxPayloadInMB=6,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{BUCKET}/data/test-features/"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": output, "Accept": accept, "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    desc, _ = wait(lambda: sm.describe_transform_job(TransformJobName=name), "TransformJobStatus", poll=0.1)
    if desc["TransformJobStatus"] != "Completed":
        raise RuntimeError(f"{label}: transform {desc['TransformJobStatus']}: {desc.get('FailureReason')}")
    seconds = time.perf_counter() - start
    body = s3.get_object(Bucket=BUCKET, Key=f"transform/{name}/features.csv.out")["Body"].read().decode()
    return parse_answers(body), seconds


def measure() -> list[Figure]:
    table = np.loadtxt(HOUSING, delimiter=",", skiprows=1)
    label_first = np.c_[table[:, -1], table[:, :-1]]
    train_rows, test_rows = walkthrough_split(len(table))
    y_test = label_first[test_rows, 0]
    print(f"# split: {len(train_rows)} training rows, {len(test_rows)} test rows "
          f"(np.random.RandomState(42).permutation(506)[:51] = rows {sorted(test_rows.tolist())})", flush=True)
    answers, seconds = {}, {}
    with emulator_process(time_scale=0) as emu:
        s3 = emu.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        create_role(emu)
        s3.put_object(Bucket=BUCKET, Key="data/train/train.csv", Body=csv_body(label_first[train_rows]))
        s3.put_object(Bucket=BUCKET, Key="data/test/test.csv", Body=csv_body(label_first[test_rows]))
        s3.put_object(Bucket=BUCKET, Key="data/test-features/features.csv", Body=csv_body(label_first[test_rows, 1:]))
        region = emu.env["AWS_DEFAULT_REGION"]
        for label, spec in ALGORITHMS.items():
            predictions, seconds[label] = run_algorithm(emu, label, spec, region)
            if len(predictions) != len(y_test):
                raise AssertionError(f"{label}: {len(predictions)} answers for {len(y_test)} rows")
            answers[label] = predictions
            print(f"# {label}: trained and transformed in {seconds[label]:.1f} s", flush=True)
    rmse = {label: float(np.sqrt(np.mean((p - y_test) ** 2))) for label, p in answers.items()}
    ll = rmse["Linear Learner"]
    figures = []
    for label, value in rmse.items():
        algorithm, hps, evaluation, accept = ALGORITHMS[label]
        settings = ", ".join(f"{k}={v}" for k, v in hps.items())
        figures.append(Figure(
            f"housing test RMSE, {label}", f"{value:.3f}", f"{ll:.3f} Linear Learner (same run); AWS {AWS_RMSE}",
            f"{value / ll:.2f}x LL, {value / AWS_RMSE:.2f}x AWS", "", None,
            note=f"{settings}; train 455 rows, {evaluation} = the 51 test rows; RMSE of the batch transform's "
                 f"answers ({accept}) on the 51 test rows; time scale 0; {seconds[label]:.1f} s train + transform",
            raw={"rmse": value, "seconds": seconds[label]}))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    report(measure(), args.json)


if __name__ == "__main__":
    main()
