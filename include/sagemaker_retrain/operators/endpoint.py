"""Deploy a run's model: create model and endpoint config, then create or update the endpoint.

The provider's SageMakerEndpointOperator creates the model and config unconditionally, so a retry
after a partial success fails on "Cannot create already existing model". This subclass makes
each step idempotent (skip what this run already created) and records the config that was
serving before, which the rollback and teardown steps need. It never waits: the pipeline's own
sensor does, on the triggerer.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_PREVIOUS_CONFIG


def _is_missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound")


class SageMakerDeployOperator(SageMakerEndpointOperator):
    """
    Create the run's model and endpoint config, then create the endpoint or switch it to the new config.

    :param config: ``{"Model": ..., "EndpointConfig": ..., "Endpoint": {"EndpointName", "EndpointConfigName"}}``
        as for :class:`SageMakerEndpointOperator` (templated).
    :return: ``{"endpoint_name", "endpoint_config_name", "model_name", "previous_config_name", "operation"}``;
        ``operation`` is ``create``, ``update`` or ``none`` (a retry found the endpoint already switched).
    """

    def __init__(self, **kwargs):
        kwargs["wait_for_completion"] = False
        kwargs["deferrable"] = False
        super().__init__(**kwargs)

    def _exists(self, describe, name: str) -> bool:
        try:
            describe(name)
        except ClientError as err:
            if _is_missing(err):
                return False
            raise
        return True

    def execute(self, context) -> dict:
        self.preprocess_config()
        model = self.config["Model"]
        endpoint_config = self.config["EndpointConfig"]
        endpoint = self.config["Endpoint"]
        hook = self.hook
        if self._exists(hook.describe_model, model["ModelName"]):
            self.log.info("Model %s exists already (earlier try); keeping it.", model["ModelName"])
        else:
            hook.create_model(model)
        if self._exists(hook.describe_endpoint_config, endpoint_config["EndpointConfigName"]):
            self.log.info("Endpoint config %s exists already; keeping it.", endpoint_config["EndpointConfigName"])
        else:
            hook.create_endpoint_config(endpoint_config)

        name, wanted = endpoint["EndpointName"], endpoint["EndpointConfigName"]
        result = {
            "endpoint_name": name,
            "endpoint_config_name": wanted,
            "model_name": model["ModelName"],
            "previous_config_name": None,
        }
        try:
            current = hook.describe_endpoint(name)
        except ClientError as err:
            if not _is_missing(err):
                raise
            self.log.info("Creating endpoint %s on config %s.", name, wanted)
            hook.create_endpoint(endpoint, wait_for_completion=False)
            return {**result, "operation": "create"}

        status, serving = current["EndpointStatus"], current.get("EndpointConfigName")
        if serving == wanted and status not in ("Failed",):
            self.log.info("Endpoint %s is already on %s (%s): nothing to do.", name, wanted, status)
            return {**result, "previous_config_name": self._previous_from_tags(current), "operation": "none"}
        if status != "InService":
            raise AirflowException(
                f"Endpoint {name} is {status} (config {serving}); it must be InService to be updated. "
                f"{current.get('FailureReason', '')}".strip()
            )
        self.log.info("Updating endpoint %s: %s -> %s (blue/green).", name, serving, wanted)
        self._remember_previous(wanted, serving)
        hook.update_endpoint({"EndpointName": name, "EndpointConfigName": wanted}, wait_for_completion=False)
        return {**result, "previous_config_name": serving, "operation": "update"}

    def _config_arn(self, config_name: str) -> str:
        return self.hook.describe_endpoint_config(config_name)["EndpointConfigArn"]

    def _remember_previous(self, config_name: str, previous: str) -> None:
        """Tag the new config with the one it replaces, so a retry (or rollback) can still find it."""
        self.hook.conn.add_tags(
            ResourceArn=self._config_arn(config_name), Tags=[{"Key": TAG_PREVIOUS_CONFIG, "Value": previous}]
        )

    def _previous_from_tags(self, current: dict) -> str | None:
        tags = self.hook.conn.list_tags(ResourceArn=self._config_arn(current["EndpointConfigName"]))["Tags"]
        return next((t["Value"] for t in tags if t["Key"] == TAG_PREVIOUS_CONFIG), None)
