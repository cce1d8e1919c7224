"""``make demo``: two models of the catalog end to end against the offline AWS emulator, then a summary.

Starts the emulator as its own process, runs the walkthrough's housing DAG with ``airflow dags test``
(a persistent run that leaves the endpoint serving), then the breast cancer classifier's DAG (the team's
own scikit-learn script) in ephemeral mode (it deploys, evaluates and deletes its own endpoint: the
walkthrough's clean-up), both in one ``dags test`` process, prints what happened, and stops the emulator.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "include"))

from offline_aws.airflow_run import DagTestSession, airflow_env  # noqa: E402
from sagemaker_retrain.catalog import load_catalog  # noqa: E402

BUCKET = "sagemaker-retrain-demo"
TIME_SCALE = os.environ.get("OFFLINE_AWS_TIME_SCALE", "0.05")
CLASSIFIER = "breast_cancer"  # include/models/breast_cancer.yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "offline-aws"), "--port", str(port), "--time-scale", TIME_SCALE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_offline_aws/state", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"emulator exited early:\n{proc.stdout.read()}") from None
            time.sleep(0.3)
    raise SystemExit("emulator did not start within 60 s")


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def summarise(label: str, result, sm, runtime) -> None:
    section(f"{label}: run {result.run_id} -> {result.state}")
    failed = {t: s for t, s in result.states.items() if s not in ("success", "skipped") and t != "__run__"}
    if failed:
        print("tasks not successful:", failed)
    plan = result.xcoms.get("prepare") or {}  # prepare's return value: the whole plan
    if plan:
        print("data:", json.dumps(plan["data"]["channel_uris"], indent=1), "rows", plan["data"]["rows"])
        job = plan["names"]["training_job"]
        desc = sm.describe_training_job(TrainingJobName=job)
        print(f"training job {job}: {desc['TrainingJobStatus']}, billable {desc.get('BillableTimeInSeconds')} s")
        for metric in desc.get("FinalMetricDataList", []):
            print(f"   {metric['MetricName']:<32} {metric['Value']:.4f}")
    evidence = result.xcoms.get("gate.evidence")
    if evidence:
        decision = evidence["decision"]
        print(f"scored by batch transform on {evidence['rows']['count']} test rows (split seed "
              f"{evidence['rows']['split_seed']}), production untouched:")
        for role, metrics in evidence["scores"].items():
            print(f"   {role:<10}", {k: round(v, 4) for k, v in metrics.items()} if metrics else "none serving")
        print("gate:", "promote" if decision["deploy"] else "keep champion", "-", decision["reason"])
        print("artifacts:", *evidence["artifacts"].values(), sep="\n   ")
    if "publish" in result.xcoms:
        print("history record:", result.xcoms["publish"]["history"])
    if "wait_for_endpoint" in result.xcoms:
        smoke = result.xcoms["wait_for_endpoint"]
        print(f"endpoint {smoke['endpoint_name']} smoke-test predictions:", [round(s, 2) for s in smoke["smoke_scores"]])
    print("teardown removed:", result.xcoms.get("teardown") or "nothing")


def main() -> int:
    started = time.monotonic()
    port = free_port()
    emulator = start_emulator(port)
    try:
        url = f"http://127.0.0.1:{port}"
        aws = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "test",
               "aws_secret_access_key": "test"}
        boto3.client("s3", **aws).create_bucket(Bucket=BUCKET)
        sm, runtime = boto3.client("sagemaker", **aws), boto3.client("sagemaker-runtime", **aws)
        env_vars = {key: url for key in ("AWS_ENDPOINT_URL",)}
        env_vars.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
        env = airflow_env(PROJECT_DIR, PROJECT_DIR / ".airflow" / "demo", env_vars, BUCKET)
        print(f"offline AWS emulator on {url} (time scale {TIME_SCALE}); AIRFLOW_HOME={env['AIRFLOW_HOME']}")
        print("running the housing DAG (persistent mode) with `airflow dags test` ...", flush=True)
        session = DagTestSession(env)
        first = session.run()
        summarise("persistent run", first, sm, runtime)
        row0 = "0.00632,18.0,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,4.98"
        if first.state == "success":
            answer = runtime.invoke_endpoint(EndpointName="linear-learner-housing", ContentType="text/csv",
                                             Accept="application/json", Body=row0)
            score = json.loads(answer["Body"].read())["predictions"][0]["score"]
            print(f"sample prediction for housing row 0 (actual 24.0, AWS's model 29.99): {score:.2f}")
        classifier = next(s for s in load_catalog(PROJECT_DIR / "include" / "models").specs if s.name == CLASSIFIER)
        print(f"\nrunning the classifier's DAG {classifier.dag_id} (its own scikit-learn script on "
              f"{classifier.dataset_uri}; ephemeral mode: score, deploy, smoke-test, delete) ...", flush=True)
        second = session.run(dag_id=classifier.dag_id, conf={"mode": "ephemeral"})
        session.close()
        summarise(f"{classifier.name} ephemeral run", second, sm, runtime)
        if second.state == "success":
            print(f"smoke-test scores are P(malignant) of the first test rows; gate metric {classifier.gate_metric}")
        section("left in the account")
        print("endpoints:", [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]])
        print("endpoint configs:", [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]])
        print("models:", [m["ModelName"] for m in sm.list_models()["Models"]])
        print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
        ok = all(r.state == "success" for r in (first, second))
        if not ok:
            print("a run failed; its log tail:\n", next(r for r in (first, second)
                                                         if r.state != "success").output[-4000:])
        return 0 if ok else 1
    finally:
        os.killpg(emulator.pid, signal.SIGTERM)
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(emulator.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
