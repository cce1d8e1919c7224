"""infra/sagemaker-retrain.yaml: lint-clean (cfn-lint, checkov), consistent with the code, and deployable.

cfn-lint runs from the project's venv (pinned in requirements-dev.txt). checkov's dependencies
conflict with Airflow's pins, so it runs from its own venv, ``.venv-infra/``, created here from
``infra/requirements-lint.txt`` with the project's uv and reused while that lock is unchanged.

The deployment goes through boto3's ``cloudformation.create_stack`` on the offline emulator
(moto's CloudFormation), then reads the created resources back through S3 and IAM. moto's
CloudFormation does not implement ``AWS::S3::BucketPolicy`` (it skips the resource with a warning)
and, for ``AWS::S3::Bucket``, applies only ``BucketEncryption`` and ``Tags``. ``moto_cfn_gaps``
fills both gaps for this module only: it passes the template's (resolved) bucket properties to
the emulator's S3 API, so what is read back is what the template asked for after CloudFormation
resolved its parameters and intrinsic functions.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from locked_venv import venv_from_lock

from offline_aws.server import start_emulator
from sagemaker_retrain.images import LINEAR_LEARNER_ACCOUNTS
from sagemaker_retrain.limits import DEFAULT_INSTANCE_TYPES, DEFAULT_LIMITS

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT / "infra" / "sagemaker-retrain.yaml"
LINT_LOCK = PROJECT / "infra" / "requirements-lint.txt"
LINT_VENV = PROJECT / ".venv-infra"
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
TAG_KEY = "sagemaker-retrain:endpoint"
PROJECT_TAG_KEY, PROJECT_TAG_VALUE = "sagemaker-retrain:project", "sagemaker-retrain"

# Every SageMaker and CloudWatch action the Airflow policy grants, with where the DAG calls it: (file,
# text found in that file). Provider files are the Amazon provider's, which the DAG's operators call.
PROVIDER = ".venv/lib/python3.11/site-packages/airflow/providers/amazon/aws"
HOOKS = f"{PROVIDER}/hooks/sagemaker.py"
OPERATORS = f"{PROVIDER}/operators/sagemaker.py"
TRIGGERS = f"{PROVIDER}/triggers/sagemaker.py"
SAGEMAKER_CALL_SITES: dict[str, tuple[str, str]] = {
    "CreateTrainingJob": ("include/sagemaker_retrain/operators/training.py", "self.hook.create_training_job("),
    "DescribeTrainingJob": ("include/sagemaker_retrain/operators/training.py", "self.hook.describe_training_job("),
    "StopTrainingJob": ("include/sagemaker_retrain/cleanup.py", "sm.stop_training_job("),
    "CreateModel": ("include/sagemaker_retrain/pipeline.py", "sm.create_model(**model_request)"),
    # the transform operator's result (serialize_result) describes the scored model
    "DescribeModel": (OPERATORS, "self.hook.describe_model(job_description[\"ModelName\"])"),
    "DeleteModel": ("include/sagemaker_retrain/cleanup.py", "sm.delete_model"),
    "CreateEndpointConfig": ("include/sagemaker_retrain/operators/endpoint.py", "hook.create_endpoint_config("),
    "DescribeEndpointConfig": ("include/sagemaker_retrain/gate.py", "sagemaker_client.describe_endpoint_config("),
    "DeleteEndpointConfig": ("include/sagemaker_retrain/cleanup.py", "sm.delete_endpoint_config"),
    "CreateEndpoint": ("include/sagemaker_retrain/operators/endpoint.py", "hook.create_endpoint(endpoint"),
    "UpdateEndpoint": ("include/sagemaker_retrain/operators/endpoint.py", "hook.conn.update_endpoint(**request)"),
    "DescribeEndpoint": ("include/sagemaker_retrain/ownership.py", "sm.describe_endpoint(EndpointName=name)"),
    "DeleteEndpoint": ("include/sagemaker_retrain/cleanup.py", "sm.delete_endpoint"),
    "ListEndpointConfigs": ("include/sagemaker_retrain/cleanup.py", '"list_endpoint_configs"'),
    "ListModels": ("include/sagemaker_retrain/cleanup.py", '"list_models"'),
    "ListTransformJobs": ("include/sagemaker_retrain/cleanup.py", '"list_transform_jobs"'),
    "ListTrainingJobs": ("include/sagemaker_retrain/pipeline.py", 'get_paginator("list_training_jobs")'),
    "AddTags": ("include/sagemaker_retrain/operators/endpoint.py", "self.hook.conn.add_tags("),
    "ListTags": ("include/sagemaker_retrain/ownership.py", "sm.list_tags(**kwargs)"),
    "InvokeEndpoint": ("include/sagemaker_retrain/smoke.py", "runtime_client.invoke_endpoint("),
    "CreateTransformJob": (OPERATORS, "self.hook.create_transform_job("),
    # the provider's unique-name check (may ask for a missing name) and the job's result
    "DescribeTransformJob": (OPERATORS, "self.hook.describe_transform_job,"),
    "StopTransformJob": ("include/sagemaker_retrain/cleanup.py", "sm.stop_transform_job("),
    "CreateModelPackageGroup": ("include/sagemaker_retrain/registry.py", "sm.create_model_package_group("),
    "DescribeModelPackageGroup": ("include/sagemaker_retrain/registry.py", "sm.describe_model_package_group("),
    "CreateModelPackage": ("include/sagemaker_retrain/pipeline.py", "sm.create_model_package("),
    "DescribeModelPackage": ("include/sagemaker_retrain/registry.py", "sm.describe_model_package("),
    "UpdateModelPackage": ("include/sagemaker_retrain/registry.py", "sm.update_model_package("),
}
CLOUDWATCH_CALL_SITES: dict[str, tuple[str, str]] = {
    "PutMetricAlarm": ("include/sagemaker_retrain/operators/endpoint.py", "cloudwatch.put_metric_alarm(**alarm)"),
    # PutMetricAlarm's Tags (set when the alarm is created) are authorized as TagResource as well
    "TagResource": ("include/sagemaker_retrain/config.py", '"Tags": resource_tags,\n    }\n    return [\n'),
}


# --- lint ------------------------------------------------------------------------------------


def _lint_venv() -> Path:
    """``.venv-infra/`` with checkov from its lock (``tests/locked_venv.py``)."""
    return venv_from_lock(LINT_VENV, LINT_LOCK) / "checkov"


def test_cfn_lint_finds_nothing():
    # Errors, warnings and the informational (I…) rules alike.
    result = subprocess.run([VENV_BIN / "cfn-lint", "--include-checks", "I", "--format", "parseable", TEMPLATE],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_checkov_finds_nothing_and_every_skip_is_justified():
    checkov = _lint_venv()
    result = subprocess.run(
        [checkov, "-f", TEMPLATE, "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, cwd=PROJECT,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, failed
    assert summary["passed"] >= 20  # the S3 and IAM checks ran
    for check in report["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "")) > 40, check["check_id"]
    assert result.returncode == 0, result.stderr


# --- the template against the code ----------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict:
    from cfnlint.decode import decode

    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return decoded


def _statements(template: dict) -> list[dict]:
    resources = template["Resources"]
    role = resources["ExecutionRole"]["Properties"]
    out = list(role["AssumeRolePolicyDocument"]["Statement"])
    for policy in role["Policies"]:
        out += policy["PolicyDocument"]["Statement"]
    out += resources["AirflowPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    out += resources["ApiServerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    out += resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for name in ("ExecutionRoleKmsPolicy", "AirflowKmsPolicy"):
        out += resources[name]["Properties"]["PolicyDocument"]["Statement"]
    return out


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_every_statement_has_a_unique_sid(template):
    sids = [s.get("Sid") for s in _statements(template)]
    assert all(sids) and len(sids) == len(set(sids)), sids


def test_registry_accounts_match_the_image_table(template):
    from sagemaker_retrain.algorithms.accounts import FIRST_PARTY, FRAMEWORK

    mapping = template["Mappings"]["ImageRegistry"]
    assert {region: row["Account"] for region, row in mapping.items()} == LINEAR_LEARNER_ACCOUNTS
    assert all(FIRST_PARTY[region] == row["Account"] for region, row in mapping.items())  # k-NN's too
    assert {region: row["FrameworkAccount"] for region, row in mapping.items()} == {
        region: FRAMEWORK[region] for region in mapping}


def test_airflow_policy_grants_exactly_the_sagemaker_and_cloudwatch_actions_the_dag_calls(template):
    statements = template["Resources"]["AirflowPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for service, sites in (("sagemaker", SAGEMAKER_CALL_SITES), ("cloudwatch", CLOUDWATCH_CALL_SITES)):
        granted = {a.split(":", 1)[1] for s in statements for a in _actions(s) if a.startswith(f"{service}:")}
        assert granted == set(sites), service
        for action, (path, snippet) in sites.items():
            assert snippet in (PROJECT / path).read_text(), f"{action}: {snippet!r} not in {path}"
    dag = (PROJECT / "dags" / "sagemaker_retrain.py").read_text()
    assert "SageMakerShortWaitTransformOperator.partial(" in dag and "deferrable=True" in dag
    assert "(WatchShortJobsOnWorker, SageMakerTransformOperator)" in (
        PROJECT / "include/sagemaker_retrain/operators/short_waits.py").read_text()
    # Called through the Amazon provider: its hook checks the input channels (HeadBucket) and the
    # deferred wait polls DescribeTrainingJob through a botocore waiter.
    assert "self.check_training_config(config)" in (PROJECT / HOOKS).read_text()
    assert 'job_type="Training"' in (PROJECT / "include/sagemaker_retrain/operators/training.py").read_text()
    assert "self.check_s3_url(config[\"TransformInput\"]" in (PROJECT / HOOKS).read_text()
    assert "trigger=SageMakerTrigger(" in (PROJECT / OPERATORS).read_text() and (PROJECT / TRIGGERS).exists()


def test_the_tags_the_conditions_require_are_the_ones_the_code_sets():
    from sagemaker_retrain import config

    assert config.TAG_ENDPOINT == TAG_KEY
    assert (config.TAG_PROJECT, config.PROJECT) == (PROJECT_TAG_KEY, PROJECT_TAG_VALUE)
    tags = {t["Key"]: t["Value"] for t in config.tags("e", "r", training_job="j")}
    assert tags[PROJECT_TAG_KEY] == PROJECT_TAG_VALUE and tags[TAG_KEY] == "e"
    # Tag-on-create allows only tag keys under sagemaker-retrain:; an existing config only the rollback marker.
    assert all(key.startswith("sagemaker-retrain:") for key in tags), tags
    assert config.TAG_PREVIOUS_CONFIG == "sagemaker-retrain:previous-config"
    assert config.TAG_VERIFIED == "sagemaker-retrain:verified"
    # The alarm ARNs of the template: "<Prefix>-<endpoint>-invocation-5xx" / "-model-latency".
    assert config.alarm_names("p", "e") == {"errors": "p-e-invocation-5xx", "latency": "p-e-model-latency"}


# --- deployed on moto's CloudFormation --------------------------------------------------------


class _BucketPolicy:
    """``AWS::S3::BucketPolicy`` for moto's CloudFormation (which has none): PutBucketPolicy."""

    s3 = None  # set by moto_cfn_gaps

    def __init__(self, bucket: str):
        self.bucket = bucket
        self.physical_resource_id = bucket

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
        props = cloudformation_json["Properties"]
        cls.s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
        return cls(props["Bucket"])

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        cls.s3.delete_bucket_policy(Bucket=cloudformation_json["Properties"]["Bucket"])

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    def is_created(self) -> bool:
        return True


class _QueuePolicy:
    """``AWS::SQS::QueuePolicy`` for moto's CloudFormation (which has none): the queues' Policy attribute."""

    sqs = None  # set by moto_cfn_gaps

    def __init__(self, queues: list[str]):
        self.queues = queues
        self.physical_resource_id = ",".join(queues)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
        props = cloudformation_json["Properties"]
        for queue in props["Queues"]:
            cls.sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
        return cls(props["Queues"])

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        for queue in cloudformation_json["Properties"]["Queues"]:
            cls.sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": ""})

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    def is_created(self) -> bool:
        return True


def _queue_notification(rule: dict) -> dict:
    """One CloudFormation QueueConfiguration as the S3 API's."""
    return {"QueueArn": rule["Queue"], "Events": [rule["Event"]], "Filter": {"Key": {"FilterRules": [
        {"Name": r["Name"], "Value": r["Value"]} for r in rule["Filter"]["S3Key"]["Rules"]]}}}


def _lifecycle_rule(rule: dict) -> dict:
    """One CloudFormation lifecycle rule as the S3 API's LifecycleRule."""
    out = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return out


@pytest.fixture(scope="module")
def moto_cfn_gaps(emulator_clients):
    """Apply what moto's CloudFormation skips: the bucket properties beyond encryption/tags, and bucket policies."""
    from moto.cloudformation import parsing
    from moto.s3.models import FakeBucket

    s3 = emulator_clients["s3"]
    _BucketPolicy.s3 = s3
    _QueuePolicy.sqs = emulator_clients["sqs"]
    original_create = FakeBucket.create_from_cloudformation_json.__func__
    original_map = parsing.get_model_map

    def create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        bucket = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        props = cloudformation_json.get("Properties", {})
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=resource_name, VersioningConfiguration={
                "Status": props["VersioningConfiguration"]["Status"]})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(Bucket=resource_name, PublicAccessBlockConfiguration={
                k: str(v).lower() == "true" for k, v in props["PublicAccessBlockConfiguration"].items()})
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=resource_name, OwnershipControls=props["OwnershipControls"])
        if "NotificationConfiguration" in props:
            s3.put_bucket_notification_configuration(Bucket=resource_name, NotificationConfiguration={
                "QueueConfigurations": [_queue_notification(r) for r in
                                        props["NotificationConfiguration"].get("QueueConfigurations", [])]})
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(Bucket=resource_name, LifecycleConfiguration={
                "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]})
        return bucket

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FakeBucket, "create_from_cloudformation_json", classmethod(create_bucket))
        mp.setattr(parsing, "get_model_map", lambda: {**original_map(), "AWS::S3::BucketPolicy": _BucketPolicy,
                                                      "AWS::SQS::QueuePolicy": _QueuePolicy})
        yield


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator(time_scale=0)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def emulator_clients(emulator):
    kw = dict(endpoint_url=emulator.url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    return {name: boto3.client(name, **kw) for name in ("cloudformation", "s3", "iam", "sqs", "sagemaker")}


def _deploy(cf, name: str, **parameters) -> dict[str, str]:
    with warnings.catch_warnings():
        # moto warns (and creates nothing) for a resource type it does not support: fail instead.
        warnings.filterwarnings("error", message="Tried to parse .* not supported")
        cf.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


@pytest.fixture(scope="module")
def stack(emulator_clients, moto_cfn_gaps):
    outputs = _deploy(emulator_clients["cloudformation"], "sagemaker-retrain", ProjectTag="test-project")
    return outputs


def _document(value) -> dict:
    """A policy document as IAM returned it: a dict, or a string (moto stores a role's inline
    policies from CloudFormation as Python's repr of the dict rather than JSON)."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


def _policy_document(iam, arn: str) -> dict:
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    return _document(iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
                     ["PolicyVersion"]["Document"])


def _by_sid(document: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in document["Statement"]}


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def test_stack_outputs(stack, emulator_clients):
    assert {"BucketName", "ExecutionRoleArn", "AirflowPolicyArn", "ApiServerPolicyArn", "Region"} <= set(stack)
    assert stack["Region"] == REGION
    assert stack["ExecutionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/sagemaker-retrain-sagemaker-execution"
    assert stack["AirflowPolicyArn"] == f"arn:aws:iam::{ACCOUNT}:policy/sagemaker-retrain-airflow"
    assert stack["ApiServerPolicyArn"] == f"arn:aws:iam::{ACCOUNT}:policy/sagemaker-retrain-api-server"
    emulator_clients["s3"].head_bucket(Bucket=stack["BucketName"])


def test_bucket_is_encrypted_versioned_private_tls_only_and_expires_runs(stack, emulator_clients):
    s3, bucket = emulator_clients["s3"], stack["BucketName"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True)
    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert lifecycle["ExpireRunFolders"]["Filter"]["Prefix"] == "sagemaker-retrain/runs/"
    assert lifecycle["ExpireRunFolders"]["Expiration"]["Days"] == 30
    assert lifecycle["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "project", "Value": "test-project"}]


def test_execution_role_trusts_sagemaker_and_reaches_only_the_prefix(stack, emulator_clients):
    iam, bucket = emulator_clients["iam"], stack["BucketName"]
    role = iam.get_role(RoleName=stack["ExecutionRoleArn"].rsplit("/", 1)[1])["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert {"Key": "project", "Value": "test-project"} in role["Tags"]
    (name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
    statements = _by_sid(_document(document))
    runs = f"arn:aws:s3:::{bucket}/sagemaker-retrain/runs/"
    # read a run's inputs and model artifacts; write model artifacts and the scoring (.out) files only
    assert statements["TrainHostScoreReadRunInputsAndModels"]["Action"] == "s3:GetObject"
    assert statements["TrainHostScoreReadRunInputsAndModels"]["Resource"] == [
        f"{runs}*", f"{runs.removesuffix('runs/')}models/*"]
    assert statements["TrainWriteModelArtifacts"]["Resource"] == f"{runs.removesuffix('runs/')}models/*"
    assert statements["ScoreWriteTransformOutputs"]["Resource"] == f"{runs}*/scoring/*"
    writes = [s for s in statements.values() if "s3:PutObject" in _as_list(s["Action"])]
    assert sorted(s["Sid"] for s in writes) == ["ScoreWriteTransformOutputs", "TrainWriteModelArtifacts"]
    listing = statements["TrainScoreListRunInputPrefix"]
    assert listing["Resource"] == f"arn:aws:s3:::{bucket}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["sagemaker-retrain/runs/*"]}}
    alarms = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:sagemaker-retrain-sagemaker-retrain*"
    assert statements["HostReadRollbackAlarms"]["Action"] == "cloudwatch:DescribeAlarms"
    assert statements["HostReadRollbackAlarms"]["Resource"] == [f"{alarms}-invocation-5xx", f"{alarms}-model-latency"]
    from sagemaker_retrain.algorithms.accounts import FRAMEWORK

    # The images of every algorithm the pipeline runs (sagemaker_retrain.algorithms), nothing else.
    first, framework = LINEAR_LEARNER_ACCOUNTS[REGION], FRAMEWORK[REGION]
    assert statements["TrainHostTransformPullAlgorithmImages"]["Resource"] == [
        f"arn:aws:ecr:{REGION}:{first}:repository/linear-learner", f"arn:aws:ecr:{REGION}:{first}:repository/knn",
        f"arn:aws:ecr:{REGION}:{framework}:repository/sagemaker-xgboost",
        f"arn:aws:ecr:{REGION}:{framework}:repository/sagemaker-scikit-learn"]
    from sagemaker_retrain import algorithms

    pulled = {r.rsplit("/", 1)[1] for r in statements["TrainHostTransformPullAlgorithmImages"]["Resource"]}
    assert pulled == {a.repository for a in algorithms.ALGORITHMS.values()}
    assert statements["TrainHostTransformEcrLogin"]["Resource"] == "*"
    for resource in _as_list(statements["TrainHostTransformWriteLogs"]["Resource"]):
        assert resource.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/"), resource


def test_airflow_policy_is_scoped_to_the_prefix_the_role_and_the_tag(stack, emulator_clients):
    iam, bucket = emulator_clients["iam"], stack["BucketName"]
    statements = _by_sid(_policy_document(iam, stack["AirflowPolicyArn"]))
    sagemaker_arn = re.compile(
        rf"^arn:aws:sagemaker:{REGION}:{ACCOUNT}:(training-job|model|endpoint-config|endpoint|transform-job|model-package-group|model-package)"
        r"/sagemaker-retrain\*$")
    listing = "TeardownListConfigsModelsTransformJobs"
    for sid, statement in statements.items():
        assert statement["Effect"] == "Allow", sid
        if any(a.startswith("sagemaker:") for a in _as_list(statement["Action"])) and sid != listing:
            for resource in _as_list(statement["Resource"]):
                assert sagemaker_arn.match(resource), (sid, resource)
    assert statements[listing]["Resource"] == "*"  # List* take no resource ARN
    assert all(a.startswith("sagemaker:List") for a in statements[listing]["Action"])

    def owned(kind: str, operator: str = "") -> dict:
        return {f"StringEquals{operator}": {f"aws:{kind}/{PROJECT_TAG_KEY}": PROJECT_TAG_VALUE},
                f"StringLike{operator}": {f"aws:{kind}/{TAG_KEY}": "sagemaker-retrain*"}}

    types = {"ForAllValues:StringEquals": {"sagemaker:InstanceTypes": list(DEFAULT_INSTANCE_TYPES)}}
    assert statements["TrainCreateTaggedTrainingJob"]["Condition"] == {
        **owned("RequestTag"), **types, "Null": {"sagemaker:InstanceTypes": "false",
                                                 "sagemaker:MaxRuntimeInSeconds": "false"},
        "NumericLessThanEquals": {"sagemaker:MaxRuntimeInSeconds": str(DEFAULT_LIMITS["max_runtime_seconds"])}}
    assert statements["StageDeployCreateTaggedModelConfigEndpoint"]["Condition"] == {**owned("RequestTag"), **types}
    assert statements["ScoreCreateTaggedTransformJob"]["Condition"] == {
        **owned("RequestTag"), **types, "Null": {"sagemaker:InstanceTypes": "false"}}
    for sid in ("DeployPutTaggedRollbackAlarms", "RegisterCreateTaggedPackageGroup"):
        assert statements[sid]["Condition"] == owned("RequestTag"), sid
    for sid in ("DeployRollbackUpdateOwnEndpoint", "TeardownStopOwnJobs", "WaitSmokeInvokeOwnEndpoint",
                "RollbackTeardownDeleteOwnHostingResources"):  # deletes: no IfExists (issue 24, finding 4)
        assert statements[sid]["Condition"] == owned("ResourceTag"), sid
    assert "Condition" not in statements["RegisterCreateVersionInOwnGroup"]  # AWS: a version takes no Tags
    assert statements["TrainStageScoreDeployTagOnCreate"]["Condition"] == {
        **owned("RequestTag"), "ForAllValues:StringLike": {"aws:TagKeys": ["sagemaker-retrain:*"]}}
    assert statements["DeployRecordRollbackConfigOnOwnConfig"]["Condition"] == {
        **owned("ResourceTag"), "Null": {"aws:TagKeys": "false"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["sagemaker-retrain:previous-config",
                                                       "sagemaker-retrain:verified"]}}
    pass_role = statements["TrainStagePassExecutionRoleToSageMaker"]
    assert pass_role["Resource"] == stack["ExecutionRoleArn"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert statements["PrepareGateHistoryReadWriteObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/sagemaker-retrain/*"
    assert statements["PrepareTrainScoreGateHistoryListPrefix"]["Condition"] == {
        "StringLikeIfExists": {"s3:prefix": ["sagemaker-retrain", "sagemaker-retrain/*"]}}
    alarms = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:sagemaker-retrain-sagemaker-retrain*"
    assert statements["DeployPutTaggedRollbackAlarms"]["Resource"] == [
        f"{alarms}-invocation-5xx", f"{alarms}-model-latency"]
    # SageMaker reads UpdateEndpoint's rollback alarms as the execution role (HostReadRollbackAlarms), not
    # as the caller: test_least_privilege runs the update without any DescribeAlarms in this policy.
    assert not [s for s in statements.values() if "cloudwatch:DescribeAlarms" in _as_list(s["Action"])]
    for resource in _as_list(statements["TrainReadTrainingLogs"]["Resource"]):
        assert resource.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:"), resource


def test_existing_bucket_is_used_as_is(stack, emulator_clients):
    """With ExistingBucketName the stack creates no bucket and scopes role and policy to that one."""
    s3, iam = emulator_clients["s3"], emulator_clients["iam"]
    s3.create_bucket(Bucket="team-ml-data")
    outputs = _deploy(emulator_clients["cloudformation"], "other-pipeline", ExistingBucketName="team-ml-data",
                      Prefix="other-pipeline", ResourceNamePrefix="linear-learner-housing")
    assert outputs["BucketName"] == "team-ml-data"
    resources = emulator_clients["cloudformation"].describe_stack_resources(StackName="other-pipeline")["StackResources"]
    # (moto also lists an entry without a type for conditioned-out resources)
    # The new-data queue is made as well; an existing bucket's notifications are the owner's to add (README).
    assert sorted(r["ResourceType"] for r in resources if r.get("ResourceType")) == [
        "AWS::IAM::ManagedPolicy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role", "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy"]
    with pytest.raises(ClientError):
        s3.get_bucket_policy(Bucket="team-ml-data")  # left as it was
    assert not s3.get_bucket_notification_configuration(Bucket="team-ml-data").get("QueueConfigurations")
    queue_policy = json.loads(emulator_clients["sqs"].get_queue_attributes(
        QueueUrl=outputs["NewDataQueueUrl"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert queue_policy["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws:s3:::team-ml-data"
    statements = _by_sid(_policy_document(iam, outputs["AirflowPolicyArn"]))
    assert statements["PrepareGateHistoryReadWriteObjects"]["Resource"] == "arn:aws:s3:::team-ml-data/other-pipeline/*"
    assert statements["WaitSmokeInvokeOwnEndpoint"]["Resource"] == (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/linear-learner-housing*")
    assert statements["DeployPutTaggedRollbackAlarms"]["Resource"][0] == (
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:other-pipeline-linear-learner-housing*-invocation-5xx")
    page = _by_sid(_policy_document(iam, outputs["ApiServerPolicyArn"]))
    assert page["HistoryReadRecordsAndPlots"]["Resource"][0] == "arn:aws:s3:::team-ml-data/other-pipeline/history/*"


def test_new_data_under_the_watched_prefix_notifies_the_queue(stack, emulator_clients):
    """The stack's bucket notification and queue, used as the DAG's watcher uses them."""
    from sagemaker_retrain import data_events

    s3, sqs = emulator_clients["s3"], emulator_clients["sqs"]
    queue = stack["NewDataQueueUrl"]
    watch = data_events.Watch.parse(stack["NewDataPrefixUri"])
    assert (watch.bucket, watch.prefix) == (stack["BucketName"], "sagemaker-retrain/incoming/")
    sqs.purge_queue(QueueUrl=queue)  # S3's s3:TestEvent
    tls_only = s3.get_bucket_policy(Bucket=watch.bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=watch.bucket)  # the emulator speaks plain HTTP, which the policy denies
    keys_put = ("sagemaker-retrain/incoming/d.csv", "sagemaker-retrain/incoming/d.manifest.json",
                "sagemaker-retrain/incoming/d.txt", "sagemaker-retrain/runs/x/part.csv")
    try:
        for key in keys_put:
            s3.put_object(Bucket=watch.bucket, Key=key, Body=b"a,b\n1,2\n")
    finally:
        # leave no object behind a policy that denies plain HTTP: moto's state outlives this module's emulator,
        # and a later emulator of the same process saving its state (--state-dir) reads every object
        for version in s3.list_object_versions(Bucket=watch.bucket).get("Versions", []):
            s3.delete_object(Bucket=watch.bucket, Key=version["Key"], VersionId=version["VersionId"])
        s3.put_bucket_policy(Bucket=watch.bucket, Policy=tls_only)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    keys = sorted(o.key for o in data_events.objects_from_messages(messages))
    assert keys == ["sagemaker-retrain/incoming/d.csv", "sagemaker-retrain/incoming/d.manifest.json"]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]["Policy"])
    (statement,) = policy["Statement"]
    assert (statement["Principal"], statement["Action"]) == ({"Service": "s3.amazonaws.com"}, "sqs:SendMessage")


def test_airflow_policy_lets_the_watcher_receive_and_delete_only(stack, emulator_clients):
    iam = emulator_clients["iam"]
    arn = stack["AirflowPolicyArn"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = _document(iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])
    sqs_statements = [s for s in document["Statement"] if any(a.startswith("sqs:") for a in _as_list(s["Action"]))]
    assert len(sqs_statements) == 1
    assert sorted(_as_list(sqs_statements[0]["Action"])) == ["sqs:DeleteMessage", "sqs:ReceiveMessage"]
    assert sqs_statements[0]["Resource"].endswith(":" + stack["NewDataQueueUrl"].rsplit("/", 1)[-1])


# --- the API server's read-only policy (issue 24, finding 4) ----------------------------------

# starts with the default ResourceNamePrefix; not test_policy_covers_dag's endpoint (moto's state is per process)
HISTORY_ENDPOINT = "sagemaker-retrain-history-probe"
READ_ONLY = re.compile(r"^(s3|sagemaker):(Get|List|Describe)[A-Za-z]*$")
WRITE_WORDS = re.compile(r"(Put|Delete|Create|Update|Write|Modify|Restore)")  # anywhere in the name
SAGEMAKER_NAMES = {"DescribeEndpoint": ("endpoint", "EndpointName"),
                   "DescribeEndpointConfig": ("endpoint-config", "EndpointConfigName"),
                   "DescribeModel": ("model", "ModelName"), "DescribeTrainingJob": ("training-job", "TrainingJobName")}


def _api_server_statements(stack, emulator_clients) -> list[dict]:
    return _policy_document(emulator_clients["iam"], stack["ApiServerPolicyArn"])["Statement"]


def test_api_server_policy_only_reads(stack, emulator_clients):
    for statement in _api_server_statements(stack, emulator_clients):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, statement["Sid"]
        for action in _as_list(statement["Action"]):
            assert READ_ONLY.match(action) and not WRITE_WORDS.search(action.split(":", 1)[1]), action
            assert "*" not in action, action
        for resource in _as_list(statement["Resource"]):
            assert resource != "*", statement["Sid"]


def _iam_request(service: str, operation: str, params: dict) -> tuple[str, str, dict]:
    """(IAM action, resource ARN, condition context) of one API call, as AWS authorizes it."""
    if service == "s3" and operation in ("ListObjectsV2", "ListObjects"):
        context = {"s3:prefix": params["Prefix"]} if "Prefix" in params else {}
        return "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", context
    if service == "s3" and operation in ("GetObject", "HeadObject"):
        return "s3:GetObject", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {}
    sm = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
    if service == "sagemaker" and operation in SAGEMAKER_NAMES:
        kind, field = SAGEMAKER_NAMES[operation]
        return f"sagemaker:{operation}", f"{sm}{kind}/{params[field]}".lower(), {}
    if service == "sagemaker" and operation == "ListTags":
        return "sagemaker:ListTags", params["ResourceArn"].lower(), {}
    if service == "sagemaker" and operation == "DescribeModelPackage":
        return "sagemaker:DescribeModelPackage", params["ModelPackageName"].lower(), {}
    raise AssertionError(f"the history page made a call the test cannot map: {service}:{operation}")


def _train_and_serve(s3, sm, bucket: str, role_arn: str) -> str:
    """A trained model served from a registered package on HISTORY_ENDPOINT (the emulator runs Linear
    Learner); returns the package ARN."""
    import numpy as np

    data = np.genfromtxt(PROJECT / "include" / "data" / "housing.csv", delimiter=",", skip_header=1)
    rows = "\n".join(",".join(repr(float(v)) for v in (r[-1], *r[:-1])) for r in data[:200])
    s3.put_object(Bucket=bucket, Key="sagemaker-retrain/runs/r1/input/train/part-0.csv", Body=rows.encode())
    job = f"{HISTORY_ENDPOINT}-r1"
    sm.create_training_job(
        TrainingJobName=job, RoleArn=role_arn,
        AlgorithmSpecification={"TrainingImage": f"{LINEAR_LEARNER_ACCOUNTS[REGION]}.dkr.ecr.{REGION}.amazonaws.com/"
                                                 "linear-learner:1", "TrainingInputMode": "File"},
        HyperParameters={"predictor_type": "regressor", "mini_batch_size": "30", "feature_dim": str(data.shape[1] - 1)},
        InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/sagemaker-retrain/runs/r1/input/train"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/sagemaker-retrain/models/r1"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600})
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=job, WaiterConfig={"Delay": 1})
    described = sm.describe_training_job(TrainingJobName=job)
    sm.create_model_package_group(ModelPackageGroupName=HISTORY_ENDPOINT)
    package = sm.create_model_package(
        ModelPackageGroupName=HISTORY_ENDPOINT, ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"run-slug": "r1", "training-job": job},
        InferenceSpecification={"Containers": [{"Image": described["AlgorithmSpecification"]["TrainingImage"],
                                                "ModelDataUrl": described["ModelArtifacts"]["S3ModelArtifacts"]}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]
    from sagemaker_retrain.config import TAG_TRAINING_JOB

    sm.create_model(ModelName=job, ExecutionRoleArn=role_arn, Containers=[{"ModelPackageName": package}],
                    Tags=[{"Key": TAG_TRAINING_JOB, "Value": job}])
    sm.create_endpoint_config(EndpointConfigName=job, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": job, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=HISTORY_ENDPOINT, EndpointConfigName=job)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=HISTORY_ENDPOINT, WaiterConfig={"Delay": 1})
    return package


@pytest.fixture(scope="module")
def history_page_calls(stack, emulator, emulator_clients):
    """Every AWS call the model history page's code makes (all routes, each catalog model), recorded at
    botocore's ``_make_api_call`` while the page reads a served, registered model's history."""
    s3, bucket = emulator_clients["s3"], stack["BucketName"]
    tls_only = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)  # the emulator speaks plain HTTP, which the policy denies
    try:
        yield _read_the_history_page(emulator, s3, emulator_clients["sagemaker"], bucket, stack["ExecutionRoleArn"])
    finally:  # as test_new_data_under_the_watched_prefix_notifies_the_queue: no object left behind the policy
        for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        s3.put_bucket_policy(Bucket=bucket, Policy=tls_only)
        _delete_hosting(emulator_clients["sagemaker"], f"{HISTORY_ENDPOINT}-r1")


def _delete_hosting(sm, name: str) -> None:
    """Remove the probe's endpoint, config and model (later modules of this process see moto's state)."""
    for call, field, value in ((sm.delete_endpoint, "EndpointName", HISTORY_ENDPOINT),
                               (sm.delete_endpoint_config, "EndpointConfigName", name),
                               (sm.delete_model, "ModelName", name)):
        try:
            call(**{field: value})
        except ClientError:
            pass


def _read_the_history_page(emulator, s3, sm, bucket: str, role_arn: str) -> list[tuple[str, str, dict]]:
    """Serve a registered model, record its history, then GET every route of the page for each catalog model."""
    from botocore.client import BaseClient
    from fastapi.testclient import TestClient

    from sagemaker_retrain import history, history_access
    from sagemaker_retrain.history_view import _reader, create_app

    package = _train_and_serve(s3, sm, bucket, role_arn)
    plot = f"s3://{bucket}/sagemaker-retrain/runs/r1/evaluation/predicted_vs_actual.png"
    s3.put_object(Bucket=bucket, Key=plot.split(f"{bucket}/", 1)[1], Body=b"\x89PNG")
    models = history_access.catalog_models()
    for model in models:
        history.record_run(s3, bucket, "sagemaker-retrain", HISTORY_ENDPOINT, "r1",
                           {"recorded_at": "r1", "package": {"arn": package}, "plot": plot}, path=model.history_path)
    calls: list[tuple[str, str, dict]] = []
    original = BaseClient._make_api_call

    def recording(client, operation, params):
        calls.append((client.meta.service_model.service_name, operation, dict(params)))
        return original(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator.env().items():
            patch.setenv(key, value)
        patch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET", bucket)
        patch.setenv("SAGEMAKER_RETRAIN_AWS_CONN_ID", "")
        patch.setattr(BaseClient, "_make_api_call", recording)
        app = create_app()
        app.dependency_overrides[_reader] = lambda: models  # who may read is test_history_view's subject
        client = TestClient(app)
        for model in models:
            for path, query in (("/", {"model": model.name}), ("/", {"model": model.name, "endpoint": HISTORY_ENDPOINT}),
                                ("/api/endpoints", {"model": model.name}),
                                (f"/api/{HISTORY_ENDPOINT}", {"model": model.name}),
                                ("/plot", {"uri": plot, "model": model.name, "endpoint": HISTORY_ENDPOINT})):
                answer = client.get(path, params=query)
                assert answer.status_code == 200, (path, query, answer.text[:300])
    return calls


def test_api_server_policy_allows_every_call_the_history_page_makes(stack, emulator_clients, history_page_calls):
    from offline_aws.iam_enforcement import AuthRequest, decide

    statements = _api_server_statements(stack, emulator_clients)
    made = {(service, operation) for service, operation, _ in history_page_calls}
    # the page took the lineage path: endpoint -> config -> model -> package -> training job (and their tags)
    assert {("sagemaker", op) for op in ("DescribeEndpoint", "DescribeEndpointConfig", "DescribeModel",
                                         "DescribeModelPackage", "DescribeTrainingJob", "ListTags")} <= made
    assert {("s3", "ListObjectsV2"), ("s3", "GetObject")} <= made
    used = set()
    for service, operation, params in history_page_calls:
        action, resource, context = _iam_request(service, operation, params)
        allowed, sids = decide(statements, AuthRequest(action, resource, context))
        assert allowed, (action, resource, context)
        used.update(sids)
        used.add(action)
    granted = {a for s in statements for a in _as_list(s["Action"])}
    assert granted <= used, f"granted but never called: {granted - used}"


def test_api_server_policy_refuses_writes_and_other_keys(stack, emulator_clients):
    from offline_aws.iam_enforcement import AuthRequest, decide

    statements, bucket = _api_server_statements(stack, emulator_clients), stack["BucketName"]
    objects = f"arn:aws:s3:::{bucket}/sagemaker-retrain"
    sm = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
    refused = [
        ("s3:PutObject", f"{objects}/model-history/housing/x.json", {}),
        ("s3:DeleteObject", f"{objects}/history/x.json", {}),
        ("s3:GetObject", f"{objects}/runs/r1/input/train/part-0.csv", {}),  # a run's data: not the page's
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/other-team/history/x.json", {}),
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}", {}),  # a whole-bucket listing
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": "sagemaker-retrain/runs/"}),
        ("sagemaker:DescribeEndpoint", f"{sm}endpoint/other-team-prod", {}),
        ("sagemaker:UpdateModelPackage", f"{sm}model-package/{HISTORY_ENDPOINT}/1", {}),
        ("sagemaker:DeleteEndpoint", f"{sm}endpoint/{HISTORY_ENDPOINT}", {}),
        ("sagemaker:InvokeEndpoint", f"{sm}endpoint/{HISTORY_ENDPOINT}", {}),
    ]
    for action, resource, context in refused:
        assert not decide(statements, AuthRequest(action, resource, context))[0], (action, resource, context)


# --- the optional customer-managed KMS key (issue 24, finding 4) -------------------------------

KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KMS_SIDS = ("TrainHostScoreUseKmsKey", "TrainHostScoreGrantKmsKeyToVolumes", "PrepareGateHistoryUseKmsKey")


@pytest.fixture(scope="module")
def kms_stack(emulator_clients, moto_cfn_gaps):
    return _deploy(emulator_clients["cloudformation"], "kms-pipeline", Prefix="kms-pipeline", KmsKeyArn=KMS_KEY)


def test_without_a_kms_key_nothing_names_one(stack, emulator_clients):
    iam = emulator_clients["iam"]
    role = stack["ExecutionRoleArn"].rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    documents = [_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]),
                 _policy_document(iam, stack["AirflowPolicyArn"])]
    assert "kms" not in json.dumps(documents).lower()
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert not {"KmsKeyArn", "AirflowKmsPolicyArn"} & set(stack)


def _spend_request(operation: str, kms_key: str | None) -> tuple[str, dict]:
    """(resource ARN, condition context) of the DAG's create ``operation``, built by the pipeline's config builders."""
    from offline_aws.sagemaker.authorization import spend_context
    from sagemaker_retrain import algorithms, config
    from sagemaker_retrain.images import linear_learner_image

    params = {**algorithms.run_params({}), "training_instance_type": "ml.m5.large", "training_instance_count": 1,
              "max_runtime_seconds": 3600, "endpoint_instance_type": "ml.m5.large", "endpoint_instance_count": 1,
              "transform_instance_type": "ml.m5.large"}
    tags = config.tags("sagemaker-retrain-housing", "manual__r1")
    algorithm = algorithms.get("linear-learner")
    sm = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
    if operation == "CreateTrainingJob":
        request = config.build_training_config(
            algorithm=algorithm, job_name="sagemaker-retrain-housing-r1", image=linear_learner_image(REGION),
            role_arn="r", channel_uris={"train": "s3://b/p/t/"}, output_uri="s3://b/p/m/", params=params,
            feature_dim=12, resource_tags=tags, kms_key=kms_key)
        arn = f"{sm}training-job/sagemaker-retrain-housing-r1"
    elif operation == "CreateTransformJob":
        request = config.build_transform_config(
            algorithm=algorithm, job_name="sagemaker-retrain-housing-r1-challenger", model_name="m",
            input_uri="s3://b/p/t/", output_uri="s3://b/p/o/", params=params, resource_tags=tags, kms_key=kms_key)
        arn = f"{sm}transform-job/sagemaker-retrain-housing-r1-challenger"
    else:
        request = config.build_endpoint_config_config(config_name="sagemaker-retrain-housing-r1", model_name="m",
                                                      params=params, resource_tags=tags, kms_key=kms_key)
        arn = f"{sm}endpoint-config/sagemaker-retrain-housing-r1"
    context = {f"aws:RequestTag/{t['Key']}": t["Value"] for t in tags} | spend_context(operation, request)
    return arn, context


def test_a_kms_key_encrypts_the_bucket_and_every_create_that_spends_must_use_it(template, kms_stack, emulator_clients):
    from offline_aws.iam_enforcement import AuthRequest, decide

    s3, iam = emulator_clients["s3"], emulator_clients["iam"]
    assert kms_stack["KmsKeyArn"] == KMS_KEY
    (rule,) = s3.get_bucket_encryption(Bucket=kms_stack["BucketName"])["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_KEY}
    (asked,) = template["Resources"]["Bucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert asked["BucketKeyEnabled"] is True  # (moto's CloudFormation does not apply it)
    role = kms_stack["ExecutionRoleArn"].rsplit("/", 1)[1]
    (attached,) = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    execution = _by_sid(_policy_document(iam, attached["PolicyArn"]))
    airflow = _by_sid(_policy_document(iam, kms_stack["AirflowPolicyArn"]))
    airflow |= _by_sid(_policy_document(iam, kms_stack["AirflowKmsPolicyArn"]))  # attached together
    via = {"StringEquals": {"kms:ViaService": [f"s3.{REGION}.amazonaws.com", f"sagemaker.{REGION}.amazonaws.com"]}}
    for statement in (execution["TrainHostScoreUseKmsKey"], airflow["PrepareGateHistoryUseKmsKey"]):
        assert sorted(_as_list(statement["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert statement["Resource"] == KMS_KEY and statement["Condition"] == via
    assert execution["TrainHostScoreGrantKmsKeyToVolumes"]["Condition"] == {
        "Bool": {"kms:GrantIsForAWSResource": "true"}}
    other_key = KMS_KEY.replace("1234abcd", "99999999")
    for operation in ("CreateTrainingJob", "CreateTransformJob", "CreateEndpointConfig"):
        allowed = {}
        for key in (KMS_KEY, other_key, None):
            arn, context = _spend_request(operation, key)
            allowed[key] = decide(list(airflow.values()), AuthRequest(f"sagemaker:{operation}", arn, context))[0]
        # a job must name the key; an endpoint config's statement also covers CreateModel/CreateEndpoint (IfExists)
        assert allowed == {KMS_KEY: True, other_key: False, None: operation == "CreateEndpointConfig"}, operation
