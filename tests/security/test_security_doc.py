"""docs/security.md, written from checks this test runs: every row of the document is an assertion here.

Each surface (who can reach it, what they get) and each Param limit is exercised against the real
code (the plugin's FastAPI app with real Airflow JWTs, the emulator's admin WSGI app, the admin
limits in ``sagemaker_retrain.limits``, the compose file evaluated with Compose's interpolation);
the document is written only if every check passes. Run it alone with
``.venv/bin/python -m pytest tests/security -q``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
import yaml
from doc_sections import write_sections  # tests/security/, on sys.path as the test's own folder
from fastapi.testclient import TestClient
from moto import mock_aws
from werkzeug.test import Client

PROJECT_DIR = Path(__file__).resolve().parents[2]
DOC = PROJECT_DIR / "docs" / "security.md"
BUCKET, PREFIX = "sec", "sagemaker-retrain"
PLOT = f"s3://{BUCKET}/{PREFIX}/runs/r1/evaluation/predicted_vs_actual.png"
SECRET = "pw-never-shown-42"


def _compose_helpers():
    spec = importlib.util.spec_from_file_location(
        "compose_checks", PROJECT_DIR / "tests" / "deployment" / "test_compose_in_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def history_client(monkeypatch):
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.dag import DagModel
    from airflow.models.revoked_token import RevokedToken

    from offline_aws.server import start_emulator
    from sagemaker_retrain import history
    from sagemaker_retrain.history_view import create_app

    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id, **_: None))
    purge_cached_app()
    manager = create_auth_manager()
    tokens = {role: manager.generate_jwt(SimpleAuthManagerUser(username=str(role), role=role))
              for role in ("viewer", None)}
    emulator = start_emulator(time_scale=0)
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET", BUCKET)
    monkeypatch.setenv("SAGEMAKER_RETRAIN_AWS_CONN_ID", "")
    s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=PLOT.split("/", 3)[3], Body=b"\x89PNG")
    history.record_run(s3, BUCKET, PREFIX, "ep", "r1", {"outcome": "deployed"})
    try:
        yield TestClient(create_app()), tokens
    finally:
        emulator.stop()
        purge_cached_app()


def _plugin_rows(http: TestClient, tokens: dict) -> list[str]:
    from sagemaker_retrain.history_view import MAX_LIMIT

    routes = [("/", {}), ("/", {"endpoint": "ep"}), ("/api/endpoints", {}), ("/api/ep", {}), ("/plot", {"uri": PLOT})]
    for path, query in routes:
        assert http.get(path, params=query).status_code == 401, path
        assert http.get(path, params=query, headers={"Authorization": f"Bearer {tokens[None]}"}).status_code == 403
        assert http.get(path, params=query, headers={"Authorization": f"Bearer {tokens['viewer']}"}).status_code == 200
        http.cookies.set("_token", tokens["viewer"])
        assert http.get(path, params=query).status_code == 200
        http.cookies.clear()
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert http.get(path, headers={"Authorization": f"Bearer {tokens['viewer']}"}).status_code == 404
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    assert http.get("/api/ep", params={"limit": MAX_LIMIT + 1}, headers=viewer).status_code == 422
    assert http.get("/plot", params={"uri": f"s3://{BUCKET}/{PREFIX}/history/ep/r1.json"}, headers=viewer).status_code == 400
    for answer in (http.get("/"), http.get("/", headers=viewer), http.get("/plot", params={"uri": PLOT}, headers=viewer)):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    shown = ", ".join(f"`{p.replace('/api/ep', '/api/{endpoint}')}`" for p in dict.fromkeys(p for p, _ in routes))
    return [
        f"| Model history plugin ({shown} under `/model-history`) | anyone who reaches the API server's port | "
        "no token: **401**; a token of a user the auth manager lets read no model's DAG runs and approvals: **403**; "
        "a user who may (Bearer header or the UI's `_token` cookie): the page / JSON / plot (**200**) of those models "
        "only, another model asked for by name **403** (`tests/unit/test_history_view.py`) |",
        "| Model history plugin: every answer | a browser | `Content-Security-Policy` (no script or style but the "
        "page's own, by hash; images from the page's origin; framed by the Airflow UI only) and "
        "`X-Content-Type-Options: nosniff`, refusals included |",
        "| Model history plugin: `/docs`, `/redoc`, `/openapi.json` | anyone | **404** (not served) |",
        f"| Model history plugin: paging and plots | a reader | `limit` above {MAX_LIMIT}: **422**; a page reads at most "
        f"`limit` records (newest first) after a bounded key listing; `/plot` serves only "
        "`s3://<bucket>/<prefix>/runs/<run>/evaluation/predicted_vs_actual.png` (else **400**) |",
    ]


def _emulator_rows() -> list[str]:
    from offline_aws.admin import TOKEN_ENV, TOKEN_HEADER, AdminApp
    from offline_aws.faults import Faults
    from offline_aws.sagemaker.models import SageMakerService
    from offline_aws.settings import Clock

    def status(token, remote, route="state", method="GET", headers=None):
        app = AdminApp(SageMakerService(clock=Clock(0)), Faults(), token=token)
        body = ({"moto": False} if route == "reset" else {}) if method == "POST" else None
        return Client(app).open(f"/_offline_aws/{route}", method=method, json=body, headers=headers or {},
                                environ_base={"REMOTE_ADDR": remote}).status_code

    for route, method in (("state", "GET"), ("faults", "POST"), ("reset", "POST"), ("config", "POST")):
        assert status("", "127.0.0.1", route, method) == 200
        assert status("", "172.18.0.5", route, method) == 403
        assert status("t0k", "127.0.0.1", route, method) == 401
        assert status("t0k", "172.18.0.5", route, method, {TOKEN_HEADER: "t0k"}) == 200
    assert status("", "172.18.0.5", "health") == 200
    assert status("", "127.0.0.1", headers={"Origin": "https://page.example"}) == 403
    assert status("t0k", "127.0.0.1", headers={TOKEN_HEADER: "t0k", "Sec-Fetch-Site": "same-origin"}) == 403

    def moto_api(token, remote, path, method="GET", headers=None):
        from offline_aws.server import Dispatcher

        app = Dispatcher(SageMakerService(clock=Clock(0)), Faults(), admin_token=token)
        return Client(app).open(path, method=method, headers=headers or {},
                                environ_base={"REMOTE_ADDR": remote}).status_code

    for path, method in (("/moto-api/data.json", "GET"), ("/moto-api/reset", "POST")):
        assert moto_api("", "172.18.0.5", path, method) == 403
        assert moto_api("t0k", "127.0.0.1", path, method) == 401
        assert moto_api("", "127.0.0.1", path, method, {"Origin": "https://page.example"}) == 403
    assert moto_api("", "127.0.0.1", "/moto-api/data.json") == 200
    assert moto_api("t0k", "172.18.0.5", "/moto-api/data.json", headers={TOKEN_HEADER: "t0k"}) == 200
    return [
        "| Emulator admin routes (`/_offline_aws/state`, `calls`, `faults`, `config`, `reset`) and moto's own "
        "`/moto-api/*` (`data.json` holds every IAM user's secret key; `reset` wipes S3) | "
        f"without `{TOKEN_ENV}`: loopback clients only; with it: anyone who sends it; never a browser's page | "
        f"other addresses without a token: **403**; with a token configured, a request without the "
        f"`{TOKEN_HEADER}` header (loopback included): **401**; a request a browser sends for a web page "
        "(`Origin`, or `Sec-Fetch-Site` other than `none`), token or not: **403**; otherwise state, call counts, "
        "fault injection, reset, moto's dashboard |",
        "| Emulator `/_offline_aws/health` | anyone who reaches the emulator's port | `{\"status\": \"ok\"}` only |",
    ]


def _param_rows(tmp_path: Path) -> list[str]:
    from sagemaker_retrain import limits
    from sagemaker_retrain.params import build_params

    project = tmp_path / "project"
    (project / "include" / "data").mkdir(parents=True)
    (project / "include" / "data" / "ok.csv").write_text("a,y\n" * 20)
    (project / "config").mkdir()
    (project / "config" / "simple_auth_manager_passwords.json").write_text(json.dumps({"admin": SECRET}))
    (project / "include" / "data" / "link.csv").symlink_to(project / "config" / "simple_auth_manager_passwords.json")
    store = {"sagemaker_retrain_bucket": BUCKET, "sagemaker_retrain_prefix": PREFIX}
    defaults = {k: v.value for k, v in build_params().items()}

    def refused(name, value, **variables) -> str:
        lookup = dict(store, **{f"sagemaker_retrain_{k}": json.dumps(v) for k, v in variables.items()})
        with pytest.raises(ValueError) as raised:
            limits.check_params({**defaults, name: value} if name else value, project, lookup.get)
        message = str(raised.value)
        assert SECRET not in message
        return message

    limits.check_params(defaults, project, store.get)
    types = ", ".join(f"`{t}`" for t in limits.DEFAULT_INSTANCE_TYPES)
    rows = []
    for name in limits.INSTANCE_TYPE_PARAMS:
        assert name in refused(name, "ml.p5.48xlarge")
        assert name in refused(name, "ml.c5.xlarge", allowed_instance_types=["ml.m5.large"])
        rows.append(f"| `{name}` | a type outside Variable `{limits.ALLOWED_INSTANCE_TYPES_VARIABLE}` (default: {types}; "
                    "the form's enum offers the default list), even one the form allowed | "
                    f"`{refused(name, 'ml.p5.48xlarge')}` |")
    for key, name in limits.CAPPED_PARAMS.items():
        over = limits.DEFAULT_LIMITS[key] + 1
        message = refused(name, over)
        assert name in message and key in message
        rows.append(f"| `{name}` | above `{key}` in Variable `{limits.LIMITS_VARIABLE}` "
                    f"(default {limits.DEFAULT_LIMITS[key]}) | `{message}` |")
    message = refused(None, {**defaults, "gate_metric": "test:mse", "gate_threshold": 12.0},
                      gate_floors={"mse": 10.0})
    assert "gate_threshold" in message
    assert "gate_threshold" in refused(None, {**defaults, "predictor_type": "binary_classifier",
                                              "gate_metric": "test:roc_auc_score", "gate_threshold": 0.4},
                                       gate_floors={"roc_auc_score": 0.5})
    unbounded = refused(None, {**defaults, "gate_metric": "test:mse", "gate_threshold": 1e308})
    assert "the default floor" in unbounded
    floors = ", ".join(f"`{metric}` {floor:g}" for metric, floor in limits.DEFAULT_GATE_FLOORS.items())
    rows.append(f"| `gate_threshold` | looser than the metric's floor in Variable `{limits.GATE_FLOORS_VARIABLE}` "
                "(a loss such as mse: above it; a score such as accuracy or roc_auc: below it); a metric the "
                f"Variable does not name has the default floor ({floors}): `gate_threshold=1e308` is refused | "
                f"`{message}`; without the Variable: `{unbounded}` |")
    cases = [
        ("an absolute path on the worker", "/etc/passwd"),
        ("a project file outside include/data/ (the UI password file)", "config/simple_auth_manager_passwords.json"),
        ("`..`", "include/data/../config/simple_auth_manager_passwords.json"),
        ("a symlink in include/data/ pointing out of it", "include/data/link.csv"),
        ("an s3:// object outside the allowed prefixes", "s3://someone-elses-bucket/data.csv"),
        ("a URI longer than 1024 characters", "include/data/" + "x" * 1100),
    ]
    refusals = []
    for what, uri in cases:
        assert "dataset_uri" in refused("dataset_uri", uri)
        refusals.append(what)
    big = refused("dataset_uri", "include/data/ok.csv", limits={"max_dataset_bytes": 10})
    assert "max_dataset_bytes" in big
    refusals.append(f"a local file larger than `max_dataset_bytes` (Variable `{limits.LIMITS_VARIABLE}`, "
                    f"default {limits.DEFAULT_LIMITS['max_dataset_bytes']} bytes)")
    with mock_aws():  # an S3 data set: its size (a drop's parts together) asked of S3 before a byte is read
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/big.csv", Body=b"a,y\n" * 20)
        with pytest.raises(ValueError, match=r"big.csv has 80 bytes, more than the limit max_dataset_bytes=10 "):
            limits.check_s3_dataset_size(s3, [{"uri": f"s3://{BUCKET}/{PREFIX}/big.csv"}], 10)
    refusals.append("an `s3://` data set larger than `max_dataset_bytes` (one object, or a multi-part drop's "
                    "parts together; their sizes asked of S3 before a byte is read or anything uploaded)")
    rows.append(f"| `dataset_uri` | {'; '.join(refusals)}. Allowed: an `s3://` URI under Variable "
                f"`{limits.ALLOWED_DATA_PREFIXES_VARIABLE}` (default `s3://<bucket>/<prefix>/` of the pipeline's "
                "settings) or a file under the project's `include/data/`. No message shows the file's content "
                f"(checked with a password file) | `{refused('dataset_uri', '/etc/passwd')}` |")
    return rows


def _request_rows() -> list[str]:
    """The requests themselves, re-checked by the task that sends them (the configs travel through XComs)."""
    from sagemaker_retrain import limits

    store = {"sagemaker_retrain_bucket": BUCKET}.get
    over = {
        "`train`: CreateTrainingJob (`limits.check_training_config`)": (limits.check_training_config, {
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 5 * 86400}}),
        "`deploy`: CreateEndpointConfig (`limits.check_deploy_config`)": (limits.check_deploy_config, {
            "ProductionVariants": [{"InstanceType": "ml.p5.48xlarge", "InitialInstanceCount": 1}]}),
        "scoring: CreateTransformJob (`limits.check_transform_config`)": (limits.check_transform_config, {
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 8}}),
    }
    rows = ["", "| Request (checked by) | Refused | Message (example) |", "|---|---|---|"]
    what = {"train": "instance type, instance count, `MaxRuntimeInSeconds` (missing: refused), instance groups",
            "`deploy`": "each variant's instance type and count, serverless and shadow variants",
            "scoring": "instance type and count"}
    for name, (check, request) in over.items():
        with pytest.raises(limits.LimitExceeded) as raised:
            check(request, store)
        refused = next(v for k, v in what.items() if name.startswith(k) or name.startswith(f"`{k}`"))
        rows.append(f"| {name} | {refused} | `{raised.value}` |")
    return rows


def _non_csv_row(tmp_path: Path) -> str:
    from sagemaker_retrain.data_prep.errors import DataValidationError
    from sagemaker_retrain.data_prep.prepare import prepare_dataset

    for content in (json.dumps({"admin": SECRET}), f"admin;{SECRET}\n", f"admin:{SECRET}\n"):
        path = tmp_path / "secret.json"
        path.write_text(content)
        with pytest.raises(DataValidationError) as raised, path.open("rb") as stream:
            prepare_dataset(stream, target_column="medv", predictor_type="regressor", validation_fraction=0.1,
                            test_fraction=0.1, seed=1, workdir=tmp_path / "w")
        assert SECRET not in str(raised.value)
    return ("| Data validation messages (task log) | whoever reads the prepare task's log | for a file that is not "
            "CSV (JSON, another delimiter, one column) the message names the problem, never the file's text |")


def _compose_rows() -> list[str]:
    checks = _compose_helpers()
    compose = yaml.safe_load(checks.COMPOSE_FILE.read_text())
    filled = checks._filled()
    for variable, service in checks.REQUIRED.items():
        with pytest.raises(checks.Refused):
            checks.service_env(compose, service, {k: v for k, v in filled.items() if k != variable})
    holders = {name for name in compose["services"] if "AKIAEXAMPLE" in
               " ".join(checks.service_env(compose, name, {**filled, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}).values())}
    assert holders == checks.CALL_AWS
    assert compose["services"]["offline-aws"]["profiles"] == ["offline"]
    real = {**filled, "OFFLINE_AWS_URL": "", "COMPOSE_PROFILES": ""}
    for name, service in compose["services"].items():
        if "offline-aws" in (service.get("depends_on") or {}):
            assert service["depends_on"]["offline-aws"]["required"] is False, name
        if name.startswith("airflow-") and "environment" in service:
            assert checks.service_env(compose, name, real)["AWS_ENDPOINT_URL"] == "", name
    return [
        "| `docker compose up` | whoever runs it | refused without `_AIRFLOW_WWW_USER_PASSWORD`, "
        "`AIRFLOW__CORE__FERNET_KEY`, `AIRFLOW__API_AUTH__JWT_SECRET`, `AIRFLOW__API__SECRET_KEY` (no defaults) and "
        "without an explicit `OFFLINE_AWS_URL` (emulator URL, or empty for real AWS) |",
        f"| Static AWS keys from `.env` | the containers that get them | only {', '.join(sorted(holders))}; "
        "never the api-server. Real AWS: no keys, the instance profile / task role; the emulator "
        "(compose profile `offline`) is not needed |",
    ]


def _duties_rows(monkeypatch) -> list[str]:
    """Separation of duties: each cell asserted against the Simple auth manager and the approval step."""
    from types import SimpleNamespace

    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.sdk import Variable

    from sagemaker_retrain import pipeline
    from sagemaker_retrain.operators import approval as step

    manager = SimpleAuthManager()
    rows = ["| Role (Simple auth manager) | Trigger a run | Answer a run's approval | Change the approval policy, "
            "approvers and limits (Variables) | Read the model history page |", "|---|---|---|---|---|"]
    for role in ("viewer", "user", "op", "admin"):
        user = SimpleAuthManagerUser(username=role, role=role)
        trigger = manager.is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN, user=user)
        answer = manager.is_authorized_dag(method="PUT", access_entity=DagAccessEntity.HITL_DETAIL, user=user)
        variables = manager.is_authorized_variable(method="PUT", user=user)
        read = manager.is_authorized_dag(method="GET", user=user)
        assert (trigger, answer, variables, read) == {"viewer": (False, False, False, True),
                                                      "user": (True, True, False, True),
                                                      "op": (True, True, True, True),
                                                      "admin": (True, True, True, True)}[role]
        # assigned users bind every role, admin included (unless [core] simple_auth_manager_all_admins)
        assert manager.is_authorized_hitl_task(assigned_users={"someone-else"}, user=user) is False
        assert manager.is_authorized_hitl_task(assigned_users={role}, user=user) is True
        rows.append(f"| {role} | {'yes' if trigger else 'no'} | "
                    + ("only if named in Variable `sagemaker_retrain_approvers` (any, without it), and never a run "
                       "they triggered" if answer else "no")
                    + f" | {'yes' if variables else 'no'} | {'yes' if read else 'no'} |")

    policy_rows = ["", "| Variable `sagemaker_retrain_require_approval` | Param `require_approval` | The run waits for "
                   "a person |", "|---|---|---|"]
    for variable in ("true", "false", None, "maybe"):
        for choice in ("yes", "no", "policy"):
            monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None, v=variable: v))
            required = pipeline.approval_policy({"mode": "persistent", "require_approval": choice})["required"]
            assert required is (variable in ("true", "maybe") or choice == "yes")
            policy_rows.append(f"| {variable or 'unset'} | `{choice}` | {'**yes**' if required else 'no'} |")

    answers = ["", "| Who answers *Approve* (Variable `sagemaker_retrain_approvers=alice, bob`) | Run triggered by "
               "`alice` |", "|---|---|"]
    monkeypatch.setattr(step, "read_approvers", lambda: step.parse_approvers("alice, bob"))
    monkeypatch.setattr(pipeline, "decide_approval", lambda plan, package, approved, description, **facts: {
        "status": "Approved" if approved else "Rejected", "description": description, **facts})
    operator = step.ModelApprovalOperator(
        task_id="approve", plan={"names": {"endpoint": "ep"}, "settings": {}},
        evidence={"package": None, "scores": {}, "rows": {"count": 1},
                  "decision": {"metric": "test:mse", "threshold": 1, "reason": "r"}})
    monkeypatch.setattr(operator, "do_branch", lambda context, branches: branches)
    params = {"mode": "persistent", "require_approval": "yes", "approval_timeout_hours": 24}

    class TI:
        pushed: dict = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    written = {}
    monkeypatch.setattr("airflow.providers.standard.operators.hitl.upsert_hitl_detail", lambda **kw: written.update(kw))
    from airflow.sdk.exceptions import TaskAwaitingInput

    with pytest.raises(TaskAwaitingInput):
        operator.execute({"ti": TI(), "task_instance": SimpleNamespace(id="ti"), "params": params,
                          "dag_run": SimpleNamespace(triggering_user_name="alice")})
    assert written["assigned_users"] == [{"id": "bob", "name": "bob"}]
    for who, expected in (("alice", "Rejected: alice triggered this run and may not approve it"),
                          ("mallory", "Rejected: mallory is not an assigned approver (Variable "
                                      "sagemaker_retrain_approvers)"),
                          ("bob", "Approved by bob: ok")):
        ti = TI()
        event = {"chosen_options": ["Approve"], "params_input": {"comment": "ok"},
                 "responded_at": __import__("datetime").datetime.now(__import__("datetime").UTC),
                 "responded_by_user": {"id": who, "name": who}}
        branch = operator.execute_complete({"ti": ti, "params": params,
                                            "dag_run": SimpleNamespace(triggering_user_name="alice")}, event)
        assert ti.pushed["approval"]["description"] == expected
        assert branch == (["deploy"] if who == "bob" else ["rejected"])
        note = {"alice": "Airflow already answers 403: `alice` is left out of the request's `assigned_users`; "
                         "if an auth manager lets the answer through, ",
                "mallory": "Airflow answers 403 (not in `assigned_users`); if an auth manager lets it through, ",
                "bob": ""}[who]
        answers.append(f"| `{who}` | {note}{'deploys' if who == 'bob' else 'a rejection'}: \"{expected}\" |")
    return rows + policy_rows + answers


# Issue 24 (security, third round): each finding's status and the tests that now guard it.
FINDINGS = [
    ("1. Separation of duties (high)", "closed",
     "the admins' policy wins over a Param; approvers assigned without the person who triggered the run; "
     "`deploy` refuses a package not `Approved`; `train`/`deploy`/scoring re-check the limits on the request",
     ["tests/unit/test_registry_approval.py::test_the_approvers_are_assigned_without_the_person_who_triggered_the_run",
      "tests/unit/test_registry_approval.py::test_the_admins_policy_beats_the_param",
      "tests/unit/test_undo_and_pinning.py::test_deploy_refuses_a_package_that_is_not_approved",
      "tests/unit/test_limits.py::test_a_request_beyond_the_limits_is_refused"]),
    ("2. Emulator `/moto-api/*` back door (high)", "closed", "behind the admin routes' check",
     ["tests/unit/emulator/test_emu_admin_access.py::test_moto_api_with_a_token_every_caller_must_send_it",
      "tests/unit/emulator/test_emu_admin_access.py::test_a_live_emulator_keeps_its_secrets_and_buckets_from_moto_api"]),
    ("3. IAM evaluation as AWS's (medium)", "closed in the emulator",
     "`*`/`?` the only wildcards, action names case-insensitive, ARNs per component, `StringLike` brackets literal, "
     "negated multivalued operators, Numeric operators; S3 judged on the bucket it serves (virtual-hosted `Host`) and "
     "version calls as `…Version` actions; bucket policies stated as not evaluated; a versioned `CreateModelPackage` "
     "takes no `Tags` (botocore: it uses its group's), so the pipeline sends none, the emulator refuses them and the "
     "template conditions the group, not the version",
     ["tests/unit/emulator/test_emu_iam_policy_evaluation.py::test_the_evaluation_gives_the_documented_answer",
      "tests/unit/emulator/test_emu_iam_enforcement.py::test_a_virtual_hosted_request_is_authorized_against_the_bucket_it_reads",
      "tests/unit/emulator/test_emu_iam_enforcement.py::test_a_head_of_a_version_is_get_object_version",
      "tests/unit/emulator/test_emu_registry.py::test_model_from_package_serves_the_package_artifact"]),
    ("4. Policy conditions (medium)", "partly",
     "deletes without `…IfExists` (another team's untagged `sagemaker-retrain-other-prod` refused); training, "
     "transform and endpoint-config creates limited by `sagemaker:InstanceTypes` and training by "
     "`sagemaker:MaxRuntimeInSeconds` (template parameters `AllowedInstanceTypes`, `MaxRuntimeSeconds`); the API "
     "server has a read-only policy of its own (`ApiServerPolicyArn`: history records and plots, the serving "
     "lineage and packages; its `ListBucket` requires an `s3:prefix` under the history paths), which allows every "
     "call the history page makes on the emulator and no write; an optional customer-managed KMS key (template "
     "parameter `KmsKeyArn`, Variable `sagemaker_retrain_kms_key_arn`): SSE-KMS bucket default, both roles may use "
     "it only through S3 and SageMaker (`kms:ViaService`), training and transform jobs are allowed only with it as "
     "`sagemaker:VolumeKmsKey` and `sagemaker:OutputKmsKey` (an endpoint config: not with another key), and the "
     "pipeline names it in those requests (KMS itself is evaluated by AWS only). Open: the Airflow policy's "
     "`ListBucket` cannot be scoped while the provider's `check_s3_url` sends HeadBucket (authorized as "
     "`ListBucket` without `s3:prefix`, like a whole-bucket listing)",
     ["tests/infra/test_policy_covers_dag.py::test_evaluator_refuses_what_the_policy_must_refuse",
      "tests/infra/test_template.py::test_airflow_policy_is_scoped_to_the_prefix_the_role_and_the_tag",
      "tests/infra/test_template.py::test_api_server_policy_allows_every_call_the_history_page_makes",
      "tests/infra/test_template.py::test_api_server_policy_only_reads",
      "tests/infra/test_template.py::test_api_server_policy_refuses_writes_and_other_keys",
      "tests/infra/test_template.py::test_a_kms_key_encrypts_the_bucket_and_every_create_that_spends_must_use_it",
      "tests/infra/test_template.py::test_without_a_kms_key_nothing_names_one",
      "tests/unit/test_config_builders.py::test_a_kms_key_encrypts_the_volumes_and_outputs_of_every_create_that_spends",
      "tests/unit/emulator/test_emu_iam_enforcement.py::test_the_creates_that_spend_carry_sagemakers_condition_keys"]),
    ("5. Cost and gate limits (medium)", "closed",
     "the transform instance type is limited; an S3 data set (or a drop's parts together) over `max_dataset_bytes` is "
     "refused before a byte is read; a default gate floor per metric",
     ["tests/unit/test_limits.py::test_transform_instance_type_param_is_checked_in_prepare_too",
      "tests/unit/test_data_events.py::test_an_s3_data_set_over_max_dataset_bytes_is_refused_before_it_is_read",
      "tests/unit/test_data_events.py::test_a_multi_part_drop_is_capped_by_its_parts_total",
      "tests/unit/test_limits.py::test_without_an_admin_floor_the_default_floor_holds"]),
    ("6. History page (low)", "closed",
     "a model's history is shown only to a user the auth manager lets read that DAG's runs (`DagAccessEntity.RUN`) "
     "and its human-in-the-loop details (`HITL_DETAIL`), as `/api/v2` checks them; the page lists only those models; "
     "a malformed record shows as unreadable (logged) and the page stays up; `Content-Security-Policy` and "
     "`X-Content-Type-Options: nosniff` on every answer",
     ["tests/unit/test_history_view.py::test_every_route_refuses_a_user_who_may_not_read_the_dag",
      "tests/unit/test_history_view.py::test_a_user_who_may_read_one_model_sees_only_that_model",
      "tests/unit/test_history_view.py::test_one_malformed_record_does_not_take_the_page_down",
      "tests/unit/test_history_view.py::test_headers_on_every_answer"]),
    ("7. Compose (low)", "closed",
     "the admin password is written with `json.dump` (a `\"` or `\\` in it works); Flower runs only with "
     "`--profile flower`; a second user, `operator` (role User), who may trigger but never approve a run they "
     "triggered (compose and the native deployment); PostgreSQL and Redis (`--requirepass`) take their passwords "
     "from the required secrets `POSTGRES_PASSWORD` and `REDIS_PASSWORD`",
     ["tests/deployment/test_compose_in_step.py::test_the_admin_password_is_written_as_json_whatever_it_contains",
      "tests/deployment/test_compose_in_step.py::test_the_database_and_the_broker_take_their_passwords_from_the_secrets",
      "tests/deployment/test_approval_native.py::test_the_person_who_triggered_a_run_cannot_approve_it"]),
    ("8. Emulator persistence (low)", "closed",
     "state-save files named by the key's sha256 and streamed (a 1,024-byte key or `..` is kept); an S3 upload over "
     "64 MiB refused before it is read (`EntityTooLarge`)",
     ["tests/unit/emulator/test_emu_hardening.py::test_keys_that_are_no_file_names_survive_a_save_and_a_restore",
      "tests/unit/emulator/test_emu_hardening.py::test_an_s3_upload_over_the_cap_is_refused_before_it_is_read"]),
    ("9. Supply chain (low)", "partly",
     "every lock carries sha256 hashes and every install requires them (bootstrap, Dockerfile, checkov's venv), uv "
     "itself from a hashed lock. Open: base images by digest (no registry reachable here to read a digest from)",
     ["tests/unit/test_supply_chain.py::test_every_pinned_distribution_has_its_hashes",
      "tests/unit/test_supply_chain.py::test_every_install_requires_the_hashes"]),
]


def _findings_rows() -> list[str]:
    rows = ["| Finding | Status | What holds now | Guarded by |", "|---|---|---|---|"]
    for finding, status, what, guards in FINDINGS:
        for guard in guards:  # each guard is a test that exists
            path, name = guard.split("::")
            assert f"def {name}(" in (PROJECT_DIR / path).read_text(), guard
        shown = "<br>".join(f"`{g}`" for g in guards) or "—"
        rows.append(f"| {finding} | {status} | {what} | {shown} |")
    return rows


def test_write_security_doc(history_client, tmp_path, monkeypatch):
    http, tokens = history_client
    surfaces = _plugin_rows(http, tokens) + _emulator_rows() + [_non_csv_row(tmp_path)]
    params = _param_rows(tmp_path)
    deployment = _compose_rows()
    duties = _duties_rows(monkeypatch)
    head = "\n".join([
        "# Security surfaces",
        "",
        "Written by `tests/security/test_security_doc.py` from the checks it runs (each row is asserted there,",
        "the file is rewritten only when all pass); the same cases are covered in more detail by",
        "`tests/unit/test_history_view.py`, `tests/unit/emulator/test_emu_admin_access.py`,",
        "`tests/unit/test_limits.py` and `tests/deployment/test_compose_in_step.py`. The IAM sections are",
        "written by `tests/infra/test_least_privilege.py` and `tests/unit/emulator/test_emu_iam_policy_evaluation.py`",
        "(each test replaces only its own sections, `tests/security/doc_sections.py`).",
        "",
        "",
    ])
    text = write_sections({
        "Who can reach what": ["| Surface | Who can reach it | What they get |", "|---|---|---|", *surfaces],
        "Params refused at the start of a run": [
            "Checked by `sagemaker_retrain.limits.check_params` in the `prepare` task, before the data set is",
            "opened and before any AWS client is made (`tests/unit/test_limits.py` runs `pipeline.prepare` with",
            "AWS clients that fail the test if made); the admins' Variables are read at run time (JSON; a",
            "malformed one refuses every run). The task fails with the message shown (it names the Param and",
            "the limit).",
            "",
            "| Param | Refused | Message (example) |",
            "|---|---|---|",
            *params,
            "",
            "The task that sends a request to AWS checks that very request again, against the same Variables",
            "read at that moment, before any call: the configs reach it through XComs and templates, which a",
            "User role may edit after `prepare` (`tests/unit/test_limits.py`,",
            "`tests/unit/test_reattaching_training.py`).",
            *_request_rows(),
        ],
        "Separation of duties": [
            "Who may trigger a run, approve its promotion, change the admins' policy and limits, and read the",
            "history (Airflow's Simple auth manager's roles, asserted against it), whether a run waits for a",
            "person (`pipeline.approval_policy`: the admins' Variable wins; a Param may only make it stricter),",
            "and what an *Approve* counts as (`operators/approval.py`, which also gives Airflow the approvers",
            "as the request's `assigned_users`, without the person who triggered the run). A rejection reads",
            "\"Rejected by USER: comment\" on the run page, in the history record and on the history page.",
            "",
            *duties,
        ],
        "docker-compose.yaml": ["| What | Who | Promise |", "|---|---|---|", *deployment],
        "Issue 24: each finding's status": _findings_rows(),
    }, head=head, doc=DOC)
    assert DOC.read_text() == text
