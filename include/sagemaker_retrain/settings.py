"""Deployment-wide settings, read at run time (never while a DAG file is parsed).

Each comes from an Airflow Variable, so it can be set in the UI, by the CLI, by a secrets
backend, or as the environment variable ``AIRFLOW_VAR_<NAME>`` (what docker-compose and the
demo do). Region falls back to the AWS connection's / boto3's region.

Per model: a catalog entry's ``settings.variables_prefix`` (e.g. ``lstat_``) makes its runs read
``lstat_bucket`` first and the deployment-wide ``sagemaker_retrain_bucket`` only when that is unset
(the same for role_arn, region, prefix); its ``history_path`` says where its history records go.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass

VARIABLE_PREFIX = "sagemaker_retrain_"
AWS_CONN_ID_ENV = "SAGEMAKER_RETRAIN_AWS_CONN_ID"
# A key ARN, not an alias or a bare id: the template's conditions compare sagemaker:VolumeKmsKey/OutputKmsKey to it.
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


def aws_conn_id_from_env() -> str | None:
    """The Airflow connection of the pipeline's AWS calls: env ``SAGEMAKER_RETRAIN_AWS_CONN_ID``, else
    ``aws_default``; set empty, None: no connection, boto3's own chain, and no hook asks Airflow for one."""
    return os.environ.get(AWS_CONN_ID_ENV, "aws_default") or None


@dataclass(frozen=True)
class DeploymentSettings:
    bucket: str
    role_arn: str
    region: str
    prefix: str = "sagemaker-retrain"
    aws_conn_id: str | None = "aws_default"
    # Under ``prefix``: where this model's history records go (a plan made before this field keeps the old place).
    history_path: str = "history"
    # A customer-managed KMS key (its ARN) for the jobs' volumes and outputs; empty: the default encryption.
    kms_key_arn: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class SettingsError(ValueError):
    """A deployment setting is missing or malformed; the message names the Variable to set."""


def model_variable(name: str, variables_prefix: str | None = None, default: str | None = None) -> str | None:
    """Variable ``<variables_prefix><name>`` (the model's own), else ``sagemaker_retrain_<name>`` (the deployment's)."""
    from airflow.sdk import Variable

    if variables_prefix and variables_prefix != VARIABLE_PREFIX:
        value = Variable.get(variables_prefix + name, default=None)
        if value:
            return value
    return Variable.get(VARIABLE_PREFIX + name, default=default)


def _names(name: str, variables_prefix: str | None) -> str:
    names = [f"{VARIABLE_PREFIX}{name} (or env AIRFLOW_VAR_{(VARIABLE_PREFIX + name).upper()})"]
    if variables_prefix and variables_prefix != VARIABLE_PREFIX:
        names.insert(0, f"{variables_prefix}{name}")
    return " or ".join(names)


def load_settings(aws_conn_id: str | None = "aws_default", variables_prefix: str | None = None,
                  history_path: str = "history") -> DeploymentSettings:
    """Read one model's settings (its own Variables first); raise SettingsError naming each missing Variable."""
    bucket = model_variable("bucket", variables_prefix)
    role_arn = model_variable("role_arn", variables_prefix)
    missing = [_names(name, variables_prefix) for name, value in (("bucket", bucket), ("role_arn", role_arn))
               if not value]
    if missing:
        raise SettingsError("Missing deployment setting(s): " + ", ".join(missing))
    region = model_variable("region", variables_prefix) or _region_from_connection(aws_conn_id)
    prefix = (model_variable("prefix", variables_prefix) or "sagemaker-retrain").strip("/")
    return DeploymentSettings(bucket=bucket, role_arn=role_arn, region=region, prefix=prefix, aws_conn_id=aws_conn_id,
                              history_path=history_path, kms_key_arn=kms_key_arn(variables_prefix))


def kms_key_arn(variables_prefix: str | None = None) -> str:
    """Variable ``sagemaker_retrain_kms_key_arn`` (the stack's ``KmsKeyArn``): empty for none; anything but a key
    ARN is refused, since AWS would refuse the creates the policy conditions on that ARN only."""
    value = (model_variable("kms_key_arn", variables_prefix) or "").strip()
    if value and not KMS_KEY_ARN.match(value):
        raise SettingsError(f"Variable {_names('kms_key_arn', variables_prefix)} must be a KMS key ARN "
                            f"(arn:aws:kms:REGION:ACCOUNT:key/ID), not {value!r}")
    return value


def _region_from_connection(aws_conn_id: str | None) -> str:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    region = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts").conn_region_name
    if not region:
        raise SettingsError(
            "No AWS region: set Variable sagemaker_retrain_region, the connection's region_name, "
            "or AWS_DEFAULT_REGION"
        )
    return region
