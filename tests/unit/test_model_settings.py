"""Per-model settings: a model's own Variables before the deployment's, its history path, its alert recipients."""

from __future__ import annotations

import jinja2
import pytest

from sagemaker_retrain import alerts
from sagemaker_retrain.settings import SettingsError, load_settings


@pytest.fixture()
def variables(monkeypatch):
    """Variables as the deployments set them (``AIRFLOW_VAR_…``), none but these."""
    for name in ("BUCKET", "ROLE_ARN", "REGION", "PREFIX", "KMS_KEY_ARN"):
        monkeypatch.delenv(f"AIRFLOW_VAR_SAGEMAKER_RETRAIN_{name}", raising=False)

    def set_(**values):
        for name, value in values.items():
            monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", value)
    return set_


def test_a_models_variables_come_before_the_deployments(variables):
    variables(sagemaker_retrain_bucket="shared", sagemaker_retrain_role_arn="arn:aws:iam::1:role/shared",
              sagemaker_retrain_region="eu-west-1", team_a_bucket="team-a", team_a_prefix="/teams/a/")
    own = load_settings(None, variables_prefix="team_a_", history_path="model-history/a")
    assert (own.bucket, own.prefix, own.role_arn, own.region) == ("team-a", "teams/a", "arn:aws:iam::1:role/shared",
                                                                   "eu-west-1")
    assert own.history_path == "model-history/a"
    shared = load_settings(None)  # no prefix of its own: the deployment's Variables, the old history place
    assert (shared.bucket, shared.prefix, shared.history_path) == ("shared", "sagemaker-retrain", "history")


def test_a_missing_setting_names_the_models_variable_and_the_deployments(variables):
    variables(sagemaker_retrain_role_arn="arn:aws:iam::1:role/r", sagemaker_retrain_region="eu-west-1")
    with pytest.raises(SettingsError) as err:
        load_settings(None, variables_prefix="team_a_")
    assert str(err.value) == ("Missing deployment setting(s): team_a_bucket or sagemaker_retrain_bucket "
                              "(or env AIRFLOW_VAR_SAGEMAKER_RETRAIN_BUCKET)")


def test_the_kms_key_is_optional_and_must_be_a_key_arn(variables):
    variables(sagemaker_retrain_bucket="b", sagemaker_retrain_role_arn="arn:aws:iam::1:role/r",
              sagemaker_retrain_region="eu-west-1")
    assert load_settings(None).kms_key_arn == ""  # no Variable: SageMaker's and S3's default encryption
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    variables(sagemaker_retrain_kms_key_arn=f" {key} ")
    assert load_settings(None).kms_key_arn == key
    variables(team_a_kms_key_arn=key.replace("eu-west-1", "us-east-1"))
    assert load_settings(None, variables_prefix="team_a_").kms_key_arn.startswith("arn:aws:kms:us-east-1:")
    variables(sagemaker_retrain_kms_key_arn="alias/ml")  # the policy's conditions compare key ARNs
    with pytest.raises(SettingsError, match="must be a KMS key ARN"):
        load_settings(None)


class _Vars:
    def __init__(self, values: dict):
        self.values = values

    def get(self, name, default=None):
        return self.values.get(name, default)


def _to(template: str, **values) -> str:
    return jinja2.Template(template).render(var={"value": _Vars(values)})


def test_alert_recipients_per_model():
    assert alerts.recipients(("a@example.com", "b@example.com"), "team_a_") == "a@example.com, b@example.com"
    own = alerts.recipients((), "team_a_")
    assert _to(own, team_a_alert_emails="team@a.com", sagemaker_retrain_alert_emails="all@x.com") == "team@a.com"
    assert _to(own, sagemaker_retrain_alert_emails="all@x.com") == "all@x.com"
    assert _to(own) == "ml-team@example.com"
    assert alerts.recipients() == alerts.RECIPIENTS and _to(alerts.RECIPIENTS, sagemaker_retrain_alert_emails="all@x.com") == "all@x.com"


def test_each_dags_failure_mail_goes_to_its_models_recipients(monkeypatch):
    sent = []
    monkeypatch.setattr(alerts, "_configured", lambda: True)
    monkeypatch.setattr(alerts, "_notifier", lambda subject, body, to: (lambda context: sent.append((to, context))))
    alerts.failure_callback("lstat@example.com")({"run_id": "r"})
    assert sent == [("lstat@example.com", {"run_id": "r"})]


def test_the_factory_gives_each_model_its_recipients_history_link_and_settings(monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "dags" / "sagemaker_retrain.py"
    spec = importlib.util.spec_from_file_location("sagemaker_retrain_dag_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lstat = module.retrain_housing_lstat
    assert "(/model-history/?model=housing_lstat)" in lstat.doc_md
    assert "`PREFIX/model-history/housing_lstat/`" in lstat.doc_md
    assert "(/model-history/?model=housing)" in module.sagemaker_retrain.doc_md
    sent = []
    monkeypatch.setattr(alerts, "task_failed", lambda context, to: sent.append(to))
    lstat.default_args["on_failure_callback"][0]({})
    assert sent == [alerts.RECIPIENTS]  # housing_lstat names no recipients of its own: the deployment's Variable
