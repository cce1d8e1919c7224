"""Model registry requests (botocore's shapes, AWS's own patterns) and the approval step's paths."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest
from botocore.validate import ParamValidator

from offline_aws.sagemaker.models import SageMakerBackend
from offline_aws.sagemaker.validation import validate_request
from sagemaker_retrain import algorithms, config, pipeline, registry
from sagemaker_retrain.images import linear_learner_image
from sagemaker_retrain.operators import approval as approval_module
from sagemaker_retrain.operators.approval import ModelApprovalOperator, request_body

RUN_ID = "scheduled__2026-11-26T10:00:00+00:00"
TAGS = config.tags("linear-learner-housing", RUN_ID)
PARAMS = {"endpoint_instance_type": "ml.m5.large", "transform_instance_type": "ml.m5.xlarge"}
GATE_REASON = "test:rmse=3.1234 beats the serving model m-1 (3.5000)"


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("sagemaker")


def _valid(model, operation: str, request: dict) -> None:
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()
    validate_request(operation, request)  # the server side too: enums, lengths, patterns (metadata values)


def _package_request(**metadata) -> dict:
    return config.build_model_package_config(
        algorithm=algorithms.get("linear-learner"), group_name="linear-learner-housing", image=linear_learner_image("us-east-1"),
        model_data_url="s3://b/p/runs/x/output/job/output/model.tar.gz", params=PARAMS,
        metrics_uri="s3://b/p/runs/x/evaluation/metrics.json",
        customer_metadata=registry.metadata({"run-id": RUN_ID, "dataset-uri": "s3://b/data/housing.csv",
                                             "rows-test": 51, "gate-reason": GATE_REASON, **metadata}),
        client_token=registry.client_token(RUN_ID, "20261126-100000-abcdef"), description=f"Run {RUN_ID}",
    )


def test_registry_requests_are_valid(model):
    _valid(model, "CreateModelPackageGroup", config.build_model_package_group_config(
        group_name="linear-learner-housing", endpoint_name="linear-learner-housing", resource_tags=TAGS))
    request = _package_request()
    _valid(model, "CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json", "S3Uri": "s3://b/p/runs/x/evaluation/metrics.json"}
    assert request["InferenceSpecification"]["SupportedTransformInstanceTypes"] == ["ml.m5.xlarge"]
    _valid(model, "CreateModel", config.build_model_from_package_config(
        model_name="m", model_package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/g/3",
        role_arn="arn:aws:iam::123456789012:role/R", resource_tags=TAGS))
    _valid(model, "UpdateModelPackage", {
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/3",
        "ModelApprovalStatus": "Approved", "ApprovalDescription": "approved by admin: fine, ship it (v3)",
        "CustomerMetadataProperties": registry.metadata({"approver": "admin", "comment": "fine, ship it (v3)"})})


def test_metadata_values_keep_to_aws_characters():
    assert registry.metadata_value(GATE_REASON) == "test:rmse=3.1234 beats the serving model m-1  3.5000"
    assert registry.metadata_value("x" * 300) == "x" * 256
    assert registry.metadata_value("()") == "-"
    assert registry.metadata({"a": None, "b": 1}) == {"b": "1"}
    token = registry.client_token(RUN_ID, "slug")
    assert token == registry.client_token(RUN_ID, "slug") != registry.client_token(RUN_ID, "other")
    assert len(token) == 36


def test_lineage_hashes_the_bytes_read_as_they_stream():
    import io

    from sagemaker_retrain.lineage import HashingReader, describe_source

    reader = HashingReader(io.BytesIO(b"a,b\n1,2\n"))
    while reader.read(3):
        pass
    source = describe_source("d.csv", reader, {"ETag": '"abc"', "VersionId": "v1"})
    assert source == {"uri": "d.csv", "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(), "bytes": 8,
                      "etag": "abc", "version_id": "v1"}


# --- the registry against the emulator's backend (same method names and members as boto3) ---------
@pytest.fixture
def sm():
    backend = SageMakerBackend()
    backend.create_model_package_group(ModelPackageGroupName="linear-learner-housing", Tags=TAGS)
    return backend


def test_package_of_model_and_approval_recorded(sm):
    arn = sm.create_model_package(**_package_request())["ModelPackageArn"]
    assert arn.endswith("model-package/linear-learner-housing/1")
    sm.create_model(**config.build_model_from_package_config(
        model_name="m-1", model_package_arn=arn, role_arn="arn:aws:iam::123456789012:role/R", resource_tags=TAGS))
    found = registry.package_of_model(sm, "m-1")
    assert found["arn"] == arn and found["version"] == 1 and found["approval"] == "PendingManualApproval"
    assert found["metrics_uri"] == "s3://b/p/runs/x/evaluation/metrics.json"
    assert registry.package_of_model(sm, None) is None
    registry.set_approval(sm, arn, registry.APPROVED, "approved by alice: good", {"approver": "alice"})
    desc = sm.describe_model_package(ModelPackageName=arn)
    assert desc["ModelApprovalStatus"] == "Approved" and desc["ApprovalDescription"] == "approved by alice: good"
    assert desc["CustomerMetadataProperties"]["approver"] == "alice"
    assert desc["CustomerMetadataProperties"]["run-id"] == RUN_ID
    assert [p["ModelPackageArn"] for p in registry.list_packages(sm, "linear-learner-housing")] == [arn]


# --- approval policy: the admins' Variable wins; a Param may only make it stricter --------------------
@pytest.mark.parametrize(("choice", "variable", "required"), [
    ("yes", None, True), ("no", None, False), ("policy", None, False),
    ("yes", "false", True), ("no", "false", False), ("policy", "False", False),
    ("yes", "true", True), ("no", "true", True), ("policy", "true", True), (None, "yes", True),
    # a policy nobody can read fails closed
    ("no", "maybe", True), ("policy", "tru", True),
])
def test_approval_policy(monkeypatch, choice, variable, required):
    from airflow.sdk import Variable

    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None: variable))
    policy = pipeline.approval_policy({"mode": "persistent", "require_approval": choice,
                                       "approval_timeout_hours": 500})
    assert policy["required"] is required and policy["timeout_hours"] == pipeline.MAX_APPROVAL_TIMEOUT_HOURS
    if not required:
        assert policy["reason"].startswith("policy: no approval required")
    if choice == "no" and variable == "true":
        assert "Param require_approval=no cannot lower it" in policy["reason"]
    if variable == "maybe":
        assert "treated as required" in policy["reason"]


def test_ephemeral_runs_never_wait():
    policy = pipeline.approval_policy({"mode": "ephemeral", "require_approval": "yes", "approval_timeout_hours": 2})
    assert policy == {"required": False, "reason": "ephemeral run: nothing is promoted", "timeout_hours": 2,
                      "record": False}


# --- the approval step ----------------------------------------------------------------------------
EVIDENCE = {
    "decision": {"deploy": True, "reason": GATE_REASON, "metric": "test:mse", "candidate": 3.12, "champion": 3.5,
                 "champion_model": "m-1", "threshold": 10.0},
    "scores": {"challenger": {"mse": 3.1234}, "champion": {"mse": 3.5}},
    "rows": {"count": 51},
    "artifacts": {"plot": "s3://b/p/runs/x/evaluation/predicted_vs_actual.png",
                  "metrics": "s3://b/p/runs/x/evaluation/metrics.json"},
    "package": {"arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/linear-learner-housing/2",
                "group": "linear-learner-housing", "version": 2},
    "champion_package": {"arn": "arn:…/1", "version": 1},
}
PLAN = {"names": {"endpoint": "linear-learner-housing"}, "settings": {}}


class FakeTI:
    """A task instance that has no XCom to give: the operator's inputs are its arguments."""

    def __init__(self):
        self.pushed = {}
        self.id = "ti-1"

    def xcom_pull(self, *args, **kwargs):
        raise AssertionError(f"the approval step pulled an XCom: {args} {kwargs}")

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def variables(monkeypatch):
    """The admins' Variables as the step reads them (none set unless a test sets one)."""
    from airflow.sdk import Variable

    values: dict[str, str] = {}
    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None: values.get(key, default)))
    return values


@pytest.fixture
def step(monkeypatch, variables):
    decisions = []

    def decide(plan, package, approved, description, **facts):
        assert plan == PLAN
        decisions.append((approved, description, facts))
        return {"status": "Approved" if approved else "Rejected", "description": description, **facts}

    monkeypatch.setattr(pipeline, "decide_approval", decide)
    op = ModelApprovalOperator(task_id="approve", plan=PLAN, evidence=EVIDENCE)
    monkeypatch.setattr(op, "do_branch", lambda context, branches: branches)
    return op, decisions


def _params(required=True, hours=6, choice=None):
    return {"mode": "persistent", "require_approval": choice or ("yes" if required else "policy"),
            "approval_timeout_hours": hours}


def _context(ti, triggered_by=None, **policy):
    from types import SimpleNamespace

    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(triggering_user_name=triggered_by),
            "params": _params(**policy)}


def test_no_approval_needed_does_not_wait(step):
    op, decisions = step
    ti = FakeTI()
    assert op.execute(_context(ti, required=False)) == ["deploy"]
    assert decisions == [(True, "policy: no approval required", {"approver": "policy"})]
    assert ti.pushed["approval"]["status"] == "Approved"


def test_required_approval_parks_the_task_with_the_evidence(step, monkeypatch):
    from airflow.sdk.exceptions import TaskAwaitingInput

    op, decisions = step
    written = {}
    monkeypatch.setattr("airflow.providers.standard.operators.hitl.upsert_hitl_detail",
                        lambda **kw: written.update(kw))
    ti = FakeTI()
    with pytest.raises(TaskAwaitingInput) as parked:
        op.execute(_context(ti, hours=6))
    assert parked.value.timeout == timedelta(hours=6)
    assert written["options"] == ["Approve", "Reject"] and written["defaults"] == ["Reject"]
    assert written["subject"] == "Promote model version 2 to linear-learner-housing?"
    assert "| score | 3.1234 | 3.5000 |" in written["body"] and GATE_REASON in written["body"]
    assert "/model-history/plot?uri=s3%3A%2F%2Fb%2Fp%2Fruns%2Fx%2Fevaluation%2Fpredicted_vs_actual.png" in written["body"]
    assert set(written["params"]) == {"comment"}
    assert decisions == []


def _answer(option, user, comment="", timedout=False):
    return {"chosen_options": [option], "params_input": {"comment": comment},
            "responded_at": datetime.now(UTC), "responded_by_user": user, "timedout": timedout}


def test_approve_records_the_approver(step):
    op, decisions = step
    ti = FakeTI()
    assert op.execute_complete(_context(ti), _answer("Approve", {"id": "7", "name": "alice"}, "looks right")) == [
        "deploy"]
    assert decisions == [(True, "Approved by alice: looks right", {"approver": "alice", "comment": "looks right",
                                                                   "approver_id": "7"})]
    assert ti.pushed["approval"]["status"] == "Approved"


def test_reject_records_approver_and_comment(step):
    op, decisions = step
    ti = FakeTI()
    assert op.execute_complete(_context(ti), _answer("Reject", {"id": "bob", "name": "bob"}, "drift")) == ["rejected"]
    assert decisions == [(False, "Rejected by bob: drift", {"approver": "bob", "comment": "drift"})]
    assert ti.pushed["approval"]["description"] == "Rejected by bob: drift"


def test_timeout_is_a_rejection_with_that_reason(step):
    op, decisions = step
    ti = FakeTI()
    assert op.execute_complete(_context(ti, hours=6), _answer("Reject", None, timedout=True)) == ["rejected"]
    assert decisions[0][0] is False and decisions[0][1] == "Rejected: no answer within 6 h (timeout)"
    decisions.clear()
    assert op.execute_complete(_context(ti), {"error": "timed out", "error_type": "timeout"}) == ["rejected"]
    assert decisions[0][0] is False and decisions[0][2]["approver"] == "timeout"


def test_request_body_without_a_champion():
    body = request_body({**EVIDENCE, "champion_package": None, "scores": {"challenger": {"mse": 3.0},
                                                                          "champion": None}},
                        {"required": True, "reason": "r", "timeout_hours": 3, "record": True})
    assert "| score | 3.0000 | – |" in body and "within 3 h" in body
    assert approval_module.APPROVE == "Approve"


# --- separation of duties: assigned approvers, and not the person who triggered the run -----------------
def test_parse_approvers():
    assert approval_module.parse_approvers(None) == [] == approval_module.parse_approvers(" , ")
    assert approval_module.parse_approvers("alice, 7:bob ,alice") == [{"id": "alice", "name": "alice"},
                                                                      {"id": "7", "name": "bob"}]
    with pytest.raises(ValueError, match="no user id"):
        approval_module.parse_approvers(":bob")


@pytest.fixture
def written(monkeypatch):
    out = {}
    monkeypatch.setattr("airflow.providers.standard.operators.hitl.upsert_hitl_detail", lambda **kw: out.update(kw))
    return out


def test_the_approvers_are_assigned_without_the_person_who_triggered_the_run(step, written, variables):
    from airflow.sdk.exceptions import TaskAwaitingInput

    op, _ = step
    variables[approval_module.APPROVERS_VARIABLE] = "alice, 7:bob, carol"
    ti = FakeTI()
    with pytest.raises(TaskAwaitingInput):
        op.execute(_context(ti, triggered_by="bob"))
    assert written["assigned_users"] == [{"id": "alice", "name": "alice"}, {"id": "carol", "name": "carol"}]
    assert "**Who may answer**: `alice`, `carol`, not `bob`, who triggered this run." in written["body"]


def test_without_the_variable_anyone_allowed_may_answer_but_the_body_says_who_may_not(step, written):
    from airflow.sdk.exceptions import TaskAwaitingInput

    op, _ = step
    with pytest.raises(TaskAwaitingInput):
        op.execute(_context(FakeTI(), triggered_by="dave"))
    assert written["assigned_users"] is None
    assert "any user who may edit this DAG's runs, not `dave`" in written["body"]


def test_the_only_approver_triggered_the_run_fails_instead_of_opening_it_to_everyone(step, written, variables):
    from airflow.sdk.exceptions import AirflowFailException

    op, decisions = step
    variables[approval_module.APPROVERS_VARIABLE] = "alice"
    with pytest.raises(AirflowFailException, match="Variable sagemaker_retrain_approvers names no one but alice"):
        op.execute(_context(FakeTI(), triggered_by="alice"))
    assert written == {} and decisions == []


@pytest.mark.parametrize(("approvers", "triggered_by", "user", "option", "branch", "description"), [
    # the person who triggered the run answers Approve (no Variable, or an auth manager that lets all answer)
    ("", "alice", {"id": "alice", "name": "alice"}, "Approve", "rejected",
     "Rejected: alice triggered this run and may not approve it"),
    ("alice, bob", "alice", {"id": "alice", "name": "alice"}, "Approve", "rejected",
     "Rejected: alice triggered this run and may not approve it"),
    ("7:alice", "alice", {"id": "7", "name": "alice"}, "Approve", "rejected",
     "Rejected: alice triggered this run and may not approve it"),
    # someone the admins did not name
    ("bob", "alice", {"id": "mallory", "name": "mallory"}, "Approve", "rejected",
     "Rejected: mallory is not an assigned approver (Variable sagemaker_retrain_approvers)"),
    # a rejection by the person who triggered the run stands (as theirs)
    ("", "alice", {"id": "alice", "name": "alice"}, "Reject", "rejected", "Rejected by alice: c"),
    # an assigned approver who did not trigger it; a scheduled run (nobody triggered it)
    ("alice, bob", "alice", {"id": "bob", "name": "bob"}, "Approve", "deploy", "Approved by bob: c"),
    ("", None, {"id": "admin", "name": "admin"}, "Approve", "deploy", "Approved by admin: c"),
])
def test_the_answer_is_checked_again(step, variables, approvers, triggered_by, user, option, branch, description):
    op, decisions = step
    variables[approval_module.APPROVERS_VARIABLE] = approvers
    ti = FakeTI()
    assert op.execute_complete(_context(ti, triggered_by), _answer(option, user, "c")) == [branch]
    approved, said, facts = decisions[0]
    assert approved is (branch == "deploy") and said == description
    assert ti.pushed["approval"]["description"] == description
    assert ("refused" in facts) is description.startswith("Rejected: ")


def test_the_admins_policy_beats_the_param(step, written, variables):
    """Variable true, Param ``no``: the step waits (resolved here from the Params, from no XCom a User may edit)."""
    from airflow.sdk.exceptions import TaskAwaitingInput

    op, decisions = step
    variables[pipeline.APPROVAL_VARIABLE] = "true"
    with pytest.raises(TaskAwaitingInput) as parked:
        op.execute(_context(FakeTI(), choice="no", hours=3))
    assert parked.value.timeout == timedelta(hours=3) and decisions == [] and written["subject"]


def test_without_the_params_the_step_refuses_rather_than_guess(step):
    from airflow.sdk.exceptions import AirflowFailException

    op, decisions = step
    with pytest.raises(AirflowFailException, match="needs the run's Params"):
        op.execute({"ti": FakeTI()})
    assert decisions == []


# --- approval per model: the catalog's requirement and approvers, the Variables as defaults -------------
@pytest.mark.parametrize(("variable", "choice", "required"), [
    (None, "no", True), (None, "policy", True), ("false", "no", True), ("true", "no", True), (None, "yes", True),
])
def test_a_model_that_requires_approval_waits_whatever_the_param(variables, variable, choice, required):
    if variable is not None:
        variables[pipeline.APPROVAL_VARIABLE] = variable
    policy = pipeline.approval_policy(_params(choice=choice), model_requires=True)
    assert policy["required"] is required
    if variable != "true":
        assert "catalog entry approval.required=true" in policy["reason"]


def test_a_model_that_does_not_require_approval_cannot_waive_the_admins(variables):
    variables[pipeline.APPROVAL_VARIABLE] = "true"
    assert pipeline.approval_policy(_params(choice="no"), model_requires=False)["required"] is True
    variables[pipeline.APPROVAL_VARIABLE] = "false"
    assert pipeline.approval_policy(_params(choice="policy"), model_requires=False)["required"] is False


def test_the_models_requirement_makes_the_step_wait(variables, written, monkeypatch):
    from airflow.sdk.exceptions import TaskAwaitingInput

    op = ModelApprovalOperator(task_id="approve", plan=PLAN, evidence=EVIDENCE, require_approval=True)
    with pytest.raises(TaskAwaitingInput):
        op.execute(_context(FakeTI(), choice="no"))
    assert written["subject"] == "Promote model version 2 to linear-learner-housing?"


def test_the_models_approvers_replace_the_variables(step, written, variables, monkeypatch):
    from airflow.sdk.exceptions import TaskAwaitingInput

    variables[approval_module.APPROVERS_VARIABLE] = "alice, bob"
    op = ModelApprovalOperator(task_id="approve", plan=PLAN, evidence=EVIDENCE, approvers=["carol", "9:dan"])
    monkeypatch.setattr(op, "do_branch", lambda context, branches: branches)
    with pytest.raises(TaskAwaitingInput):
        op.execute(_context(FakeTI(), triggered_by="carol"))
    assert written["assigned_users"] == [{"id": "9", "name": "dan"}]
    ti = FakeTI()
    # an approver of the Variable is not one of this model's: their Approve is a rejection naming the source
    assert op.execute_complete(_context(ti, triggered_by="carol"), _answer("Approve", {"id": "alice", "name": "alice"})
                               ) == ["rejected"]
    assert ti.pushed["approval"]["description"] == (
        "Rejected: alice is not an assigned approver (the model's catalog entry)")
    assert op.execute_complete(_context(FakeTI(), triggered_by="carol"), _answer("Approve", {"id": "9", "name": "dan"})
                               ) == ["deploy"]


def test_the_only_model_approver_triggered_the_run(step, written):
    from airflow.sdk.exceptions import AirflowFailException

    op = ModelApprovalOperator(task_id="approve", plan=PLAN, evidence=EVIDENCE, approvers="alice")
    with pytest.raises(AirflowFailException, match="the model's catalog entry names no one but alice"):
        op.execute(_context(FakeTI(), triggered_by="alice"))
    assert written == {}


def test_the_inputs_are_templated_arguments():
    """The DAG passes XComArgs or templates; the operator renders them like any templated field."""
    from airflow.sdk import DAG

    assert {"plan", "evidence", "approvers"} <= set(ModelApprovalOperator.template_fields)
    with DAG("approval_templates", schedule=None):
        op = ModelApprovalOperator(task_id="approve", plan={"names": {"endpoint": "{{ params.ep }}"}},
                                   evidence={"package": None}, approvers="{{ params.who }}")
    op.render_template_fields({"params": {"ep": "ep-1", "who": "alice, bob"}})
    assert op.plan == {"names": {"endpoint": "ep-1"}} and op.approvers == "alice, bob"
