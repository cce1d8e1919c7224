"""Least privilege, proven by running as it: the template's Airflow policy is enough for the whole
DAG, and every statement of it is needed.

The emulator enforces IAM (``start_emulator(enforce_iam=True)``, ``offline_aws/iam_enforcement.py``).
The stack is deployed by the emulator's service identity; Airflow gets the access keys of an IAM
user whose only permission is the stack's managed policy ``AirflowPolicy``. With it, a persistent
first deployment, an ephemeral run (deploy, verify, delete) and a blue/green update that beats the
first model all succeed. Then, for each statement, the policy's default version is swapped for one
without that statement (the same user, emulator and Airflow home) and a run that needs it is
repeated: it fails, and the emulator's decision log and the task log show an AccessDenied for an
action of that statement, by that user. The update-only statements are removed on the endpoint of
the first run, whose weak model every update beats, before the update that proves the full policy.

``TeardownStopOwnJobs`` is the exception, said here and in docs/security.md: at time scale 0 no
job is still running when teardown runs (it stops only InProgress jobs of its own run), so no run
reaches StopTrainingJob / StopTransformJob; ``test_policy_covers_dag`` checks the policy allows
them on this run's jobs. The runs without it must still succeed, which the test asserts.

Writes the ``IAM: least privilege`` section of docs/security.md (``tests/security/doc_sections.py``).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import boto3
import pytest

from offline_aws.airflow_run import DagTestSession, airflow_env
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
TASK_ORDER = ["prepare", "train", "register", "stage", "score_challenger", "score_champion", "gate", "approve",
              "deploy", "wait_for_endpoint", "publish", "rollback", "teardown"]


def _doc_sections():
    spec = importlib.util.spec_from_file_location("doc_sections", PROJECT / "tests" / "security" / "doc_sections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


class World:
    """One enforcing emulator, the deployed stack, the Airflow user and one Airflow home for every run."""

    def __init__(self, emulator, home: Path):
        self.emulator = emulator
        admin = emulator.env()
        kw = dict(endpoint_url=emulator.url, region_name=REGION, aws_access_key_id=admin["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key=admin["AWS_SECRET_ACCESS_KEY"])
        self.iam, self.sm = boto3.client("iam", **kw), boto3.client("sagemaker", **kw)
        boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
        cf = boto3.client("cloudformation", **kw)
        cf.create_stack(StackName=PREFIX, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                        Parameters=[{"ParameterKey": "ExistingBucketName", "ParameterValue": BUCKET},
                                    {"ParameterKey": "Prefix", "ParameterValue": PREFIX}])
        stack = cf.describe_stacks(StackName=PREFIX)["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        self.policy_arn = self.outputs["AirflowPolicyArn"]
        policy = self.iam.get_policy(PolicyArn=self.policy_arn)["Policy"]
        document = self.iam.get_policy_version(PolicyArn=self.policy_arn, VersionId=policy["DefaultVersionId"])
        document = document["PolicyVersion"]["Document"]
        self.document = document if isinstance(document, dict) else json.loads(document)
        self.user_arn = self.iam.create_user(UserName=USER)["User"]["Arn"]
        self.iam.attach_user_policy(UserName=USER, PolicyArn=self.policy_arn)  # and nothing else
        key = self.iam.create_access_key(UserName=USER)["AccessKey"]
        aws_env = {**admin, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        self.env = airflow_env(PROJECT, home, aws_env, BUCKET, role_arn=self.outputs["ExecutionRoleArn"],
                               poll_seconds=0.2, extra={"AIRFLOW_VAR_SAGEMAKER_RETRAIN_PREFIX": PREFIX})
        self.removed: str | None = None
        self.session = DagTestSession(self.env)

    def use_policy_without(self, sid: str | None) -> None:
        """Make the managed policy's default version the template's, minus statement ``sid``."""
        if sid == self.removed:
            return
        document = {**self.document, "Statement": [s for s in self.document["Statement"] if s["Sid"] != sid]}
        version = self.iam.create_policy_version(PolicyArn=self.policy_arn, PolicyDocument=json.dumps(document),
                                                 SetAsDefault=True)["PolicyVersion"]["VersionId"]
        for old in self.iam.list_policy_versions(PolicyArn=self.policy_arn)["Versions"]:
            if old["VersionId"] != version:
                self.iam.delete_policy_version(PolicyArn=self.policy_arn, VersionId=old["VersionId"])
        self.removed = sid

    def run(self, conf: dict) -> tuple:
        """One ``airflow dags test`` as the user: (result, the user's decisions during it)."""
        decisions = self.emulator.enforcer.decisions
        start = len(decisions)
        began = time.monotonic()
        result = self.session.run(conf, timeout=600)
        print(f"# run {conf} without {self.removed}: {result.state} in {time.monotonic() - began:.1f} s", flush=True)
        mine = [d for d in decisions[start:] if d["caller"] == self.user_arn]
        return result, mine

    def serving_config(self, endpoint: str) -> str:
        return self.sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]


def _used(decisions: list[dict]) -> set[str]:
    return {sid for d in decisions if d["allowed"] for sid in d["sids"]}


def _first_failed(states: dict) -> str:
    failed = [t for t in TASK_ORDER if states.get(t) in ("failed", "up_for_retry")]
    return failed[0] if failed else "-"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    emulator = start_emulator(time_scale=0, enforce_iam=True)
    try:
        world = World(emulator, tmp_path_factory.mktemp("airflow-home"))
        try:
            yield world
        finally:
            world.session.close()
    finally:
        emulator.stop()


def test_the_policy_is_enough_and_every_statement_is_needed(world):
    started = time.monotonic()
    sids = [s["Sid"] for s in world.document["Statement"]]
    rows: dict[str, dict] = {}

    # 1. the full policy: a first (weak) deployment that stays, and an ephemeral run
    world.use_policy_without(None)
    created, d_create = world.run({"endpoint_name": ENDPOINT, **WEAK})
    assert created.state == "success", created.output[-4000:]
    assert created.states["deploy"] == "success" and created.states["score_champion"] == "skipped"
    weak_config = world.serving_config(ENDPOINT)
    ephemeral, d_ephemeral = world.run({"endpoint_name": f"{ENDPOINT}-eph", "mode": "ephemeral"})
    assert ephemeral.state == "success", ephemeral.output[-4000:]
    assert not [d for d in d_create + d_ephemeral if not d["allowed"]]
    early = _used(d_create) | _used(d_ephemeral)

    # 2. each statement those runs used: an ephemeral run without it fails with AccessDenied on one of its actions
    def without(sid: str, conf: dict, scenario: str) -> None:
        statement = next(s for s in world.document["Statement"] if s["Sid"] == sid)
        actions = set(_as_list(statement["Action"]))
        world.use_policy_without(sid)
        result, decisions = world.run(conf)
        denied = [d for d in decisions if not d["allowed"]]
        assert result.state == "failed", (sid, result.states)
        assert denied and denied[0]["action"] in actions, (sid, denied[:3])
        first = denied[0]
        message = (f"User: {world.user_arn} is not authorized to perform: {first['action']} on resource: "
                   f"{first['resource']} because no identity-based policy allows the {first['action']} action")
        assert message in result.output, (sid, message, result.output[-3000:])
        rows[sid] = {"actions": sorted(actions), "task": _first_failed(result.states), "scenario": scenario,
                     "denied": f"{first['action']} on `{first['resource'].replace(world.outputs['ExecutionRoleArn'], '<execution role>')}`"}

    for i, sid in enumerate(s for s in sids if s in early):
        without(sid, {"endpoint_name": f"{ENDPOINT}-v{i}", "mode": "ephemeral"}, "ephemeral run")

    # 3. the statements only an update needs: an update of the weak endpoint without each fails, and the
    #    weak model keeps serving (so the next one is an update that wins again)
    late = [s for s in sids if s not in early and s not in NOT_REACHED]
    for sid in late:
        assert world.serving_config(ENDPOINT) == weak_config, sid
        without(sid, {"endpoint_name": ENDPOINT}, "blue/green update")
    assert world.serving_config(ENDPOINT) == weak_config

    # 4. the full policy again: the update wins and switches blue/green; it used every update-only statement
    world.use_policy_without(None)
    updated, d_update = world.run({"endpoint_name": ENDPOINT})
    assert updated.state == "success", updated.output[-4000:]
    assert updated.states["score_champion"] == "success" and updated.states["deploy"] == "success"
    assert world.serving_config(ENDPOINT) != weak_config
    assert not [d for d in d_update if not d["allowed"]]
    assert set(late) <= _used(d_update), set(late) - _used(d_update)

    # 5. the statements no run reaches: nothing called their actions, and every run above succeeded without them
    for sid, why in NOT_REACHED.items():
        statement = next(s for s in world.document["Statement"] if s["Sid"] == sid)
        actions = set(_as_list(statement["Action"]))
        assert sid not in _used(d_create + d_ephemeral + d_update), sid
        assert not [d for d in world.emulator.enforcer.decisions if d["action"] in actions], sid
        rows[sid] = {"actions": sorted(actions), "task": "teardown", "scenario": "—", "denied": f"not shown: {why}"}

    assert set(rows) == set(sids)
    print(f"# least privilege: {len(sids)} statements in {time.monotonic() - started:.0f} s", flush=True)
    _write_doc(sids, rows)


def _write_doc(sids: list[str], rows: dict[str, dict]) -> None:
    lines = [
        "Written by `tests/infra/test_least_privilege.py`. The emulator enforces IAM (`enforce_iam=True`);",
        "Airflow runs as an IAM user whose only permission is the template's `AirflowPolicy`. With the whole",
        "policy, a persistent first deployment, an ephemeral run and a blue/green update that wins all succeed.",
        "Each row: the run repeated with the statement removed fails, and its first AccessDenied (in the task",
        "log, AWS's message) names an action of that statement; *task* is the first task that failed.",
        "",
        "| Statement | Actions | Run without it | Task that failed | First call denied |",
        "|---|---|---|---|---|",
    ]
    for sid in sids:
        row = rows[sid]
        actions = ", ".join(f"`{a}`" for a in row["actions"])
        lines.append(f"| `{sid}` | {actions} | {row['scenario']} | {row['task']} | {row['denied']} |")
    _doc_sections().write_sections({"IAM: least privilege": lines})
