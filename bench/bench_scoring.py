"""Scoring throughput: 100,000 rows scored through the emulator's endpoint in batches, beside one
row per request.

A Linear Learner model is trained on the housing table and deployed in an emulator running in
its own process (time scale 0). Batched: ``sagemaker_retrain.evaluation.score`` (text/csv
payloads of ``--batch-rows`` rows, under 6 MB, 4 in flight), all 100,000 rows, median of
``--runs``. One row per request: ``--single`` requests sent one after another (one in flight),
the rate extrapolated to 100,000 rows. Goal (issue 7): at least 50x the rows per second of one
row per request.

    python bench/bench_scoring.py [--rows 100000] [--single 300] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOUSING, Figure, emulator_process, median, report  # noqa: E402

BUCKET = "bench-scoring"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
NAME = "bench-scoring"
GOAL = 50.0


def deploy(emu) -> str:
    """Train on the housing table, deploy it, wait for InService; return the endpoint name."""
    from sagemaker_retrain.images import linear_learner_image

    s3, sm = emu.client("s3"), emu.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET)
    table = np.loadtxt(HOUSING, delimiter=",", skiprows=1)
    label_first = np.c_[table[:, -1], table[:, :-1]]
    for channel, rows in (("train", label_first[:400]), ("validation", label_first[400:])):
        body = "\n".join(",".join(f"{v:.10g}" for v in row) for row in rows) + "\n"
        s3.put_object(Bucket=BUCKET, Key=f"data/{channel}/part-00000.csv", Body=body.encode())
    image = linear_learner_image(emu.env["AWS_DEFAULT_REGION"])
    sm.create_training_job(
        TrainingJobName=NAME, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        HyperParameters={"predictor_type": "regressor", "feature_dim": str(table.shape[1] - 1),
                         "mini_batch_size": "30", "epochs": "5"},
        InputDataConfig=[{"ChannelName": c, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/{c}/",
            "S3DataDistributionType": "FullyReplicated"}}} for c in ("train", "validation")],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    desc = _wait(lambda: sm.describe_training_job(TrainingJobName=NAME), "TrainingJobStatus",
                 ("Completed", "Failed", "Stopped"))
    if desc["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"training failed: {desc.get('FailureReason')}")
    sm.create_model(ModelName=NAME, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": image, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]})
    sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
    desc = _wait(lambda: sm.describe_endpoint(EndpointName=NAME), "EndpointStatus", ("InService", "Failed"))
    if desc["EndpointStatus"] != "InService":
        raise RuntimeError(f"endpoint failed: {desc.get('FailureReason')}")
    return NAME


def _wait(describe, key: str, terminal: tuple[str, ...], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = describe()
        if desc[key] in terminal:
            return desc
        time.sleep(0.1)
    raise RuntimeError(f"still {desc[key]} after {timeout} s")


def test_rows(n: int, seed: int = 7) -> np.ndarray:
    """``n`` housing-shaped feature rows (bootstrapped with noise)."""
    table = np.loadtxt(HOUSING, delimiter=",", skiprows=1)[:, :-1]
    rng = np.random.default_rng(seed)
    rows = table[rng.integers(0, len(table), n)]
    return np.round(rows + rng.normal(0, 0.02, rows.shape) * table.std(axis=0), 4)


def measure(rows: int, single: int, runs: int, batch_rows: int) -> list[Figure]:
    from botocore.config import Config

    from sagemaker_retrain.evaluation import score

    X = test_rows(rows)
    with emulator_process(time_scale=0) as emu:
        endpoint = deploy(emu)
        runtime = emu.client("sagemaker-runtime", config=Config(max_pool_connections=16))
        score(runtime, endpoint, X[:100], batch_rows=batch_rows)  # warm-up
        batched = []
        for i in range(runs):
            start = time.perf_counter()
            predictions = score(runtime, endpoint, X, batch_rows=batch_rows)
            batched.append(time.perf_counter() - start)
            assert len(predictions) == rows
            print(f"#   batched run {i + 1}: {rows / batched[-1]:,.0f} rows/s", flush=True)
        singles = []
        for row in X[:single]:
            body = ",".join(f"{v:.10g}" for v in row).encode()
            start = time.perf_counter()
            runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="application/json",
                                    Body=body)["Body"].read()
            singles.append(time.perf_counter() - start)
    batch_rate = rows / median(batched)
    single_rate = 1.0 / median(singles)
    return [Figure(f"scoring throughput ({rows:,} rows, batches of {batch_rows}, 4 in flight)",
                   f"{batch_rate:,.0f} rows/s", f"{single_rate:,.0f} rows/s one row per request",
                   f"{batch_rate / single_rate:,.0f}x", f">= {GOAL:.0f}x", batch_rate / single_rate >= GOAL,
                   note=(f"median of {runs} batched runs; single-row rate from the median of {single} requests, "
                         f"i.e. {rows / single_rate / 60:.1f} min for {rows:,} rows"),
                   raw={"batched_rows_s": batch_rate, "single_rows_s": single_rate})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=2000)
    parser.add_argument("--json")
    args = parser.parse_args()
    report(measure(args.rows, args.single, args.runs, args.batch_rows), args.json)


if __name__ == "__main__":
    main()
