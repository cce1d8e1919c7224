"""Deployment-wide settings, read at run time (never while a DAG file is parsed).

Each comes from an Airflow Variable, so it can be set in the UI, by the CLI, by a secrets
backend, or as the environment variable ``AIRFLOW_VAR_<NAME>`` (what docker-compose and the
demo do). Region falls back to the AWS connection's / boto3's region.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

VARIABLE_PREFIX = "sagemaker_retrain_"


@dataclass(frozen=True)
class DeploymentSettings:
    bucket: str
    role_arn: str
    region: str
    prefix: str = "sagemaker-retrain"
    aws_conn_id: str | None = "aws_default"

    def as_dict(self) -> dict:
        return asdict(self)


class SettingsError(ValueError):
    """A deployment setting is missing or malformed; the message names the Variable to set."""


def _variable(name: str, default: str | None = None) -> str | None:
    from airflow.sdk import Variable

    return Variable.get(VARIABLE_PREFIX + name, default=default)


def load_settings(aws_conn_id: str | None = "aws_default") -> DeploymentSettings:
    """Read the settings; raise SettingsError naming each missing Variable."""
    bucket = _variable("bucket")
    role_arn = _variable("role_arn")
    missing = [
        f"{VARIABLE_PREFIX}{name} (or env AIRFLOW_VAR_{(VARIABLE_PREFIX + name).upper()})"
        for name, value in (("bucket", bucket), ("role_arn", role_arn))
        if not value
    ]
    if missing:
        raise SettingsError("Missing deployment setting(s): " + ", ".join(missing))
    region = _variable("region") or _region_from_connection(aws_conn_id)
    prefix = (_variable("prefix") or "sagemaker-retrain").strip("/")
    return DeploymentSettings(bucket=bucket, role_arn=role_arn, region=region, prefix=prefix, aws_conn_id=aws_conn_id)


def _region_from_connection(aws_conn_id: str | None) -> str:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    region = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts").conn_region_name
    if not region:
        raise SettingsError(
            "No AWS region: set Variable sagemaker_retrain_region, the connection's region_name, "
            "or AWS_DEFAULT_REGION"
        )
    return region
