"""Least privilege, proven by running as it: the template's Airflow policy is enough for the whole
DAG, and every statement of it is needed.

The emulator enforces IAM (``start_emulator(enforce_iam=True)``, ``offline_aws/iam_enforcement.py``).
The stack is deployed by the emulator's service identity; Airflow gets the access keys of an IAM
user whose only permission is the stack's managed policy ``AirflowPolicy``. With it, a persistent
first deployment (a weak model) and an ephemeral run (deploy, verify, delete) succeed, then, after
the per-statement runs, a blue/green update that beats the weak model. For each statement, the
user's policy becomes the template's minus that statement (a new default policy version) and a run
that needs it is repeated: it fails, and the emulator's decision log and the task log show AWS's
AccessDenied for an action of that statement, by that user. A statement the ephemeral run used is
removed in an ephemeral run, one only the first deployment used in a first deployment (of its own
endpoint), the update-only ones in updates of the weak endpoint (each leaves the weak model
serving, checked), before the update that proves the whole policy.

The new-data queue's statement (``WATCHER``) is used by no DAG run but by the DAG's AssetWatcher in
the triggerer: the watched prefix is made to notify the queue, then the watcher's trigger
(``SqsSensorTrigger``, as ``MessageQueueTrigger(scheme="sqs")`` builds it) runs as the user: with the
whole policy it receives and deletes an upload's notification; without the statement it is denied
``sqs:ReceiveMessage``.

Speed (the budget of ``make test``): one emulator; two workers, each an IAM user with its own copy
of the policy, an Airflow home (the second a copy of the first's migrated database) and one
long-lived ``dags test`` process (``airflow_run.DagTestSession``), run side by side on
different endpoints; ``SAGEMAKER_RETRAIN_POLL_SECONDS=0.2``.

``TeardownStopOwnJobs`` is the exception, said here and in docs/security.md: at time scale 0 no
job is still running when teardown runs (it stops only InProgress jobs of its own run), so no run
reaches StopTrainingJob / StopTransformJob; ``test_policy_covers_dag`` checks the policy allows
them on this run's jobs. The runs without it must still succeed, which the test asserts.

``TrainReadTrainingLogs`` is needed for the training job's log lines in the train task's log, not
for the run's success: the train operator catches the AccessDenied and logs a warning (by design, a
log it cannot read must not fail a training that succeeded). Its run must succeed with that warning
and the AccessDenied on one of its actions (``DEGRADES``).

Writes the ``IAM: least privilege`` section of docs/security.md (``tests/security/doc_sections.py``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from offline_aws.airflow_run import DagTestSession, airflow_env, migrate
from offline_aws.server import start_emulator

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT / "infra" / "sagemaker-retrain.yaml"
REGION = "us-east-1"
PREFIX = "least-priv"  # moto's state is per process: names apart from the other infra tests'
BUCKET = "least-priv-data"
USER = "airflow-least-privilege"
ENDPOINT = "sagemaker-retrain-lp"  # starts with the default ResourceNamePrefix
WEAK = {"epochs": 1, "learning_rate": 0.0005, "gate_threshold": 1000.0}
NOT_REACHED = {
    "TeardownStopOwnJobs": "teardown stops only this run's jobs still InProgress; at time scale 0 every job "
                           "has ended before teardown, so no run calls StopTrainingJob/StopTransformJob "
                           "(the policy's grant on this run's jobs is checked by test_policy_covers_dag)",
}
# Statements a DAG run does not use: the triggerer's AssetWatcher uses them (issue 14's new-data queue).
WATCHER = {
    "WatchNewDataReceiveAndDeleteNotifications": "the DAG's AssetWatcher in the triggerer (SqsSensorTrigger)",
}
# Statements whose absence the DAG tolerates by design: the run succeeds, the loss shows in the task log.
DEGRADES = {
    "TrainReadTrainingLogs": ("Could not read the training log",
                              "the run succeeds, but train's task log says it could not read the training job's "
                              "CloudWatch log (AccessDenied) and shows none of its lines"),
}
TASK_ORDER = ["prepare", "train", "register", "pin_champion", "stage", "score_0", "score_1", "gate", "approve",
              "deploy", "wait_for_endpoint", "publish", "restore", "teardown"]


def _doc_sections():
    spec = importlib.util.spec_from_file_location("doc_sections", PROJECT / "tests" / "security" / "doc_sections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


class Stack:
    """One enforcing emulator and the deployed stack; the admin clients are the emulator's service identity's."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.admin = emulator.env()
        kw = dict(endpoint_url=emulator.url, region_name=REGION, aws_access_key_id=self.admin["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key=self.admin["AWS_SECRET_ACCESS_KEY"])
        self.iam, self.sm = boto3.client("iam", **kw), boto3.client("sagemaker", **kw)
        boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
        cf = boto3.client("cloudformation", **kw)
        cf.create_stack(StackName=PREFIX, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                        Parameters=[{"ParameterKey": "ExistingBucketName", "ParameterValue": BUCKET},
                                    {"ParameterKey": "Prefix", "ParameterValue": PREFIX}])
        stack = cf.describe_stacks(StackName=PREFIX)["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        policy = self.iam.get_policy(PolicyArn=self.outputs["AirflowPolicyArn"])["Policy"]
        document = self.iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        document = document["PolicyVersion"]["Document"]
        self.document = document if isinstance(document, dict) else json.loads(document)

    def serving_config(self, endpoint: str) -> str:
        return self.sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]


class Worker:
    """An IAM user with one managed policy (nothing else), and one Airflow home and dags-test session.

    Worker 0's user holds the stack's own ``AirflowPolicy`` for the runs with the whole policy; each
    worker's statement-less variants are versions of a copy of it, so two workers can run side by side.
    """

    def __init__(self, stack: Stack, index: int, home: Path):
        self.stack, self.iam = stack, stack.iam
        user = f"{USER}-{index}"
        self.user_arn = self.iam.create_user(UserName=user)["User"]["Arn"]
        if index == 0:
            self.policy_arn = stack.outputs["AirflowPolicyArn"]
        else:
            self.policy_arn = self.iam.create_policy(PolicyName=f"{PREFIX}-airflow-variant-{index}",
                                                     PolicyDocument=json.dumps(stack.document))["Policy"]["Arn"]
        self.iam.attach_user_policy(UserName=user, PolicyArn=self.policy_arn)  # and nothing else
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        aws_env = {**stack.admin, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                   "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        self.env = airflow_env(PROJECT, home, aws_env, BUCKET, role_arn=stack.outputs["ExecutionRoleArn"],
                               poll_seconds=0.2, extra={"AIRFLOW_VAR_SAGEMAKER_RETRAIN_PREFIX": PREFIX})
        self.removed: str | None = None
        self.session: DagTestSession | None = None

    def start(self) -> None:
        self.session = DagTestSession(self.env)

    def use_policy_without(self, sid: str | None) -> None:
        """Make the user's policy the template's, minus statement ``sid`` (a new default version)."""
        if sid == self.removed:
            return
        document = {**self.stack.document, "Statement": [s for s in self.stack.document["Statement"] if s["Sid"] != sid]}
        version = self.iam.create_policy_version(PolicyArn=self.policy_arn, PolicyDocument=json.dumps(document),
                                                 SetAsDefault=True)["PolicyVersion"]["VersionId"]
        for old in self.iam.list_policy_versions(PolicyArn=self.policy_arn)["Versions"]:
            if old["VersionId"] != version:
                self.iam.delete_policy_version(PolicyArn=self.policy_arn, VersionId=old["VersionId"])
        self.removed = sid

    def run(self, conf: dict) -> tuple:
        """One ``dags test`` run as this user: (result, the user's IAM decisions during it)."""
        decisions = self.stack.emulator.enforcer.decisions
        start = len(decisions)
        began = time.monotonic()
        result = self.session.run(conf, timeout=600)
        print(f"# {self.user_arn.rsplit('/', 1)[1]}: {conf} without {self.removed}: {result.state} "
              f"in {time.monotonic() - began:.1f} s", flush=True)
        return result, [d for d in decisions[start:] if d["caller"] == self.user_arn]

    def without(self, sid: str, conf: dict, scenario: str) -> dict:
        """A run without ``sid`` fails, its first AccessDenied on an action of ``sid`` (decision log and task log)."""
        statement = next(s for s in self.stack.document["Statement"] if s["Sid"] == sid)
        actions = set(_as_list(statement["Action"]))
        self.use_policy_without(sid)
        result, decisions = self.run(conf)
        denied = [d for d in decisions if not d["allowed"]]
        if sid in DEGRADES:
            assert result.state == "success", (sid, result.states)
            assert DEGRADES[sid][0] in result.output, sid
        else:
            assert result.state == "failed", (sid, result.states)

        def message(d: dict) -> str:
            return (f"User: {self.user_arn} is not authorized to perform: {d['action']} on resource: "
                    f"{d['resource']} because no identity-based policy allows the {d['action']} action")

        # the first denial that reached the task log (parallel uploads may be refused in another order)
        shown = [d for d in denied if d["action"] in actions and message(d) in result.output]
        assert shown, (sid, denied[:3], result.output[-3000:])
        first = shown[0]
        resource = _stable(first["resource"].replace(self.stack.outputs["ExecutionRoleArn"], "<execution role>"))
        task = f"none: {DEGRADES[sid][1]}" if sid in DEGRADES else _first_failed(result.states)
        return {"actions": sorted(actions), "task": task, "scenario": scenario,
                "denied": f"`{first['action']}` on `{resource}`"}


def _watch_once(worker: Worker, queue_url: str, timeout: float = 30):
    """The first event of the DAG's watcher trigger (as ``MessageQueueTrigger(scheme="sqs")`` builds it) run
    as the worker's user, or the exception it raised; on a loop of its own, as a triggerer runs it."""
    import asyncio
    import os
    from unittest import mock

    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

    trigger = SqsSensorTrigger(sqs_queue=queue_url, aws_conn_id=None, max_messages=10, wait_time_seconds=1,
                               waiter_delay=1, region_name=REGION)

    async def first_event():
        return await asyncio.wait_for(anext(trigger.run()), timeout)

    env = {k: v for k, v in worker.env.items() if k.startswith("AWS_")}
    with mock.patch.dict(os.environ, env), ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(asyncio.run, first_event()).result()
        except Exception as err:  # noqa: BLE001 - the denial is the result under test
            return err


def _watcher_needs(stack: Stack, worker: Worker, sid: str, where: str) -> dict:
    """The watched prefix notifies the queue (as infra/README's command sets it on an existing bucket);
    the trigger receives and deletes an upload's notification with the whole policy, and is denied without ``sid``."""
    kw = dict(endpoint_url=stack.emulator.url, region_name=REGION, aws_access_key_id=stack.admin["AWS_ACCESS_KEY_ID"],
              aws_secret_access_key=stack.admin["AWS_SECRET_ACCESS_KEY"])
    s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
    queue_url = stack.outputs["NewDataQueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    watched = stack.outputs["NewDataPrefixUri"].removeprefix(f"s3://{BUCKET}/")
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": watched}]}}}]})
    sqs.purge_queue(QueueUrl=queue_url)  # the s3:TestEvent

    worker.use_policy_without(None)
    s3.put_object(Bucket=BUCKET, Key=f"{watched}least-privilege-1.csv", Body=b"a,b\n1,2\n")
    event = _watch_once(worker, queue_url)
    assert not isinstance(event, Exception), event
    records = [r for m in event.payload["message_batch"] for r in json.loads(m["Body"]).get("Records", [])]
    assert [r["s3"]["object"]["key"] for r in records] == [f"{watched}least-privilege-1.csv"], records
    assert sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"  # deleted on reception

    worker.use_policy_without(sid)
    s3.put_object(Bucket=BUCKET, Key=f"{watched}least-privilege-2.csv", Body=b"a,b\n1,2\n")
    denied = _watch_once(worker, queue_url)
    worker.use_policy_without(None)
    assert isinstance(denied, Exception), denied
    assert "AccessDenied" in str(denied) and "sqs:ReceiveMessage" in str(denied), denied
    statement = next(s for s in stack.document["Statement"] if s["Sid"] == sid)
    return {"actions": sorted(_as_list(statement["Action"])), "task": f"none: {where}", "scenario": "an upload under the watched prefix",
            "denied": "`sqs:ReceiveMessage` on the new-data queue"}


def _stable(arn: str) -> str:
    """An ARN as the document shows it: the run's and the endpoint's names as placeholders."""
    arn = re.sub(r"/runs/[^/]+/", "/runs/<run>/", arn)
    arn = re.sub(rf"{ENDPOINT}(-\d+)?-\d{{8}}-\d{{6}}-[0-9a-f]{{6}}", "<endpoint>-<run>", arn)
    return re.sub(rf"{ENDPOINT}(-\d+)?", "<endpoint>", arn)


def _used(decisions: list[dict]) -> set[str]:
    return {sid for d in decisions if d["allowed"] for sid in d["sids"]}


def _first_failed(states: dict) -> str:
    failed = [t for t in TASK_ORDER if states.get(t) in ("failed", "up_for_retry")]
    return failed[0] if failed else "-"


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    emulator = start_emulator(time_scale=0, enforce_iam=True)
    made = []
    try:
        stack = Stack(emulator)
        made += [Worker(stack, i, tmp_path_factory.mktemp(f"airflow-home-{i}")) for i in range(2)]
        migrate(made[0].env)  # once: the second home starts from a copy of the migrated database
        home = Path(made[1].env["AIRFLOW_HOME"])
        shutil.copy(Path(made[0].env["AIRFLOW_HOME"]) / "airflow.db", home / "airflow.db")
        (home / ".migrated").touch()
        for worker in made:
            worker.start()
        yield made
    finally:
        for worker in made:
            if worker.session is not None:
                worker.session.close()
        emulator.stop()


def test_the_policy_is_enough_and_every_statement_is_needed(workers):
    started = time.monotonic()
    first, second = workers
    stack = first.stack
    sids = [s["Sid"] for s in stack.document["Statement"]]
    rows: dict[str, dict] = {}

    # 1. the whole policy, side by side: a first (weak) deployment that stays; an ephemeral run
    with ThreadPoolExecutor(2) as pool:
        creating = pool.submit(first.run, {"endpoint_name": ENDPOINT, **WEAK})
        ephemeral, d_ephemeral = second.run({"endpoint_name": f"{ENDPOINT}-eph", "mode": "ephemeral"})
        created, d_create = creating.result()
    assert created.state == "success", created.output[-4000:]
    assert created.states["deploy"] == "success" and "score_1" not in created.states
    assert ephemeral.state == "success", ephemeral.output[-4000:]
    assert not [d for d in d_create + d_ephemeral if not d["allowed"]]
    weak_config = stack.serving_config(ENDPOINT)
    in_ephemeral = [s for s in sids if s in _used(d_ephemeral)]
    in_create = [s for s in sids if s in _used(d_create) and s not in in_ephemeral]
    late = [s for s in sids if s not in in_ephemeral + in_create and s not in NOT_REACHED and s not in WATCHER]

    def early_variants(worker: Worker, chosen: list[str]) -> None:
        for sid in chosen:
            name = f"{ENDPOINT}-{sids.index(sid)}"
            if sid in in_ephemeral:
                rows[sid] = worker.without(sid, {"endpoint_name": name, "mode": "ephemeral"}, "ephemeral run")
            else:  # only a persistent first deployment needs it
                rows[sid] = worker.without(sid, {"endpoint_name": name, **WEAK}, "first deployment")

    def update_variants_then_update() -> tuple:
        # an update of the weak endpoint without each update-only statement fails, and the weak model keeps
        # serving (so the next one is an update that wins again); then the whole policy's update wins
        for sid in late:
            assert stack.serving_config(ENDPOINT) == weak_config, sid
            rows[sid] = first.without(sid, {"endpoint_name": ENDPOINT}, "blue/green update")
        assert stack.serving_config(ENDPOINT) == weak_config
        first.use_policy_without(None)
        return first.run({"endpoint_name": ENDPOINT})

    # 2. each statement those runs used, removed: a run of the kind that used it fails with AccessDenied on one
    #    of its actions; worker 0 takes the update-only statements and the final update, worker 1 most others
    early = in_ephemeral + in_create
    share = max(0, (len(early) - 2 * len(late) - 1) // 2)
    with ThreadPoolExecutor(2) as pool:
        mine = pool.submit(early_variants, second, early[share:])
        early_variants(first, early[:share])
        updated, d_update = update_variants_then_update()
        mine.result()

    # 3. the whole policy's update won and switched blue/green; it used every update-only statement
    assert updated.state == "success", updated.output[-4000:]
    assert updated.states["score_1"] == "success" and updated.states["deploy"] == "success"
    assert stack.serving_config(ENDPOINT) != weak_config
    assert not [d for d in d_update if not d["allowed"]]
    assert set(late) <= _used(d_update), set(late) - _used(d_update)

    # 4. the statements no run reaches: nothing called their actions, and the runs above succeeded without them
    for sid, why in NOT_REACHED.items():
        statement = next(s for s in stack.document["Statement"] if s["Sid"] == sid)
        actions = set(_as_list(statement["Action"]))
        assert sid not in _used(d_create + d_ephemeral + d_update), sid
        assert not [d for d in stack.emulator.enforcer.decisions if d["action"] in actions], sid
        rows[sid] = {"actions": sorted(actions), "task": "teardown", "scenario": "—", "denied": f"not shown: {why}"}

    # 5. the watcher's statement, by running the watcher's trigger as the user: with it, a new object's
    #    notification is received and deleted; without it, AccessDenied names sqs:ReceiveMessage
    for sid, where in WATCHER.items():
        rows[sid] = _watcher_needs(stack, first, sid, where)

    assert set(rows) == set(sids)
    print(f"# least privilege: {len(sids)} statements in {time.monotonic() - started:.0f} s", flush=True)
    _write_doc(sids, rows)


def _write_doc(sids: list[str], rows: dict[str, dict]) -> None:
    lines = [
        "Written by `tests/infra/test_least_privilege.py`. The emulator enforces IAM (`enforce_iam=True`);",
        "Airflow runs as an IAM user whose only permission is the template's `AirflowPolicy`. With the whole",
        "policy, a persistent first deployment, an ephemeral run and a blue/green update that wins all succeed.",
        "Each row: the run repeated with the statement removed fails, and its first AccessDenied (in the task",
        "log, AWS's message) names an action of that statement; *task* is the first task that failed (one",
        "statement only degrades the run, as said in its row). Removed from the template after this test showed",
        "them unneeded: `DeployUpdateEndpointReadsRollbackAlarms` (`cloudwatch:DescribeAlarms` for Airflow; SageMaker",
        "reads the rollback alarms as the execution role, `HostReadRollbackAlarms`) and `HistoryListPackageVersions`",
        "(`sagemaker:ListModelPackages`, which nothing calls).",
        "",
        "| Statement | Actions | Run without it | Task that failed | First call denied |",
        "|---|---|---|---|---|",
    ]
    for sid in sids:
        row = rows[sid]
        actions = ", ".join(f"`{a}`" for a in row["actions"])
        lines.append(f"| `{sid}` | {actions} | {row['scenario']} | {row['task']} | {row['denied']} |")
    _doc_sections().write_sections({"IAM: least privilege": lines})
