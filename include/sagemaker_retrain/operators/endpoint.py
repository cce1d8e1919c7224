"""Deploy a run's model: endpoint config, rollback alarms, then create the endpoint or update it blue/green.

The provider's SageMakerEndpointOperator creates the model and config unconditionally, so a retry
after a partial success fails on "Cannot create already existing ...". This subclass makes each
step idempotent, refuses an endpoint the pipeline does not own before any change, switches an
existing endpoint with SageMaker's deployment guardrails (canary/linear/all-at-once traffic
shifting with auto-rollback on CloudWatch alarms), and records the config that was serving
before, which the rollback and teardown steps need. It never waits: the pipeline's own sensor
does, on the triggerer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_PREVIOUS_CONFIG
from sagemaker_retrain.ownership import ForeignResourceError, require_owned_endpoint


def _is_missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound")


def _is_update_in_progress(err: ClientError) -> bool:
    error = err.response["Error"]
    return error["Code"] == "ValidationException" and "Cannot update in-progress endpoint" in error.get("Message", "")


class SageMakerDeployOperator(SageMakerEndpointOperator):
    """
    Create the run's endpoint config and alarms, then create the endpoint or switch it blue/green.

    :param config: ``{"EndpointConfig": ..., "Endpoint": {"EndpointName", "EndpointConfigName", "Tags"},
        "DeploymentConfig": ... | None, "Alarms": [PutMetricAlarm requests], "MaxWaitSeconds": int}``
        (templated). The model must exist already (the pipeline creates it to score it first).
    :return: ``{"endpoint_name", "endpoint_config_name", "model_name", "previous_config_name", "operation",
        "wait_deadline"}``; ``operation`` is ``create``, ``update`` or ``none`` (a retry found the
        endpoint already on, or switching to, this config); ``wait_deadline`` (ISO 8601, UTC) caps
        the total wait for the deployment, whatever the retries.
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
        endpoint_config = self.config["EndpointConfig"]
        endpoint = self.config["Endpoint"]
        hook = self.hook
        name, wanted = endpoint["EndpointName"], endpoint["EndpointConfigName"]
        try:
            current = require_owned_endpoint(hook.conn, name)
        except ForeignResourceError as err:
            raise AirflowFailException(str(err)) from err
        if self._exists(hook.describe_endpoint_config, endpoint_config["EndpointConfigName"]):
            self.log.info("Endpoint config %s exists already; keeping it.", endpoint_config["EndpointConfigName"])
        else:
            hook.create_endpoint_config(endpoint_config)
        self._put_alarms(self.config.get("Alarms") or [])
        deadline = datetime.now(UTC) + timedelta(seconds=int(self.config.get("MaxWaitSeconds", 4500)))
        result = {
            "endpoint_name": name,
            "endpoint_config_name": wanted,
            "model_name": endpoint_config["ProductionVariants"][0]["ModelName"],
            "previous_config_name": None,
            "wait_deadline": deadline.isoformat(),
        }
        if current is None:
            self.log.info("Creating endpoint %s on config %s.", name, wanted)
            hook.create_endpoint(endpoint, wait_for_completion=False)
            return {**result, "operation": "create"}

        status, serving = current["EndpointStatus"], current.get("EndpointConfigName")
        pending = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if (serving == wanted and status != "Failed") or (status == "Updating" and pending == wanted):
            self.log.info("Endpoint %s is already on (or switching to) %s (%s): nothing to do.", name, wanted, status)
            return {**result, "previous_config_name": self._previous_from_tags(wanted), "operation": "none"}
        if status != "InService":
            raise AirflowException(
                f"Endpoint {name} is {status} (config {serving}); it must be InService to be updated. "
                f"{current.get('FailureReason', '')}".strip()
            )
        request = {"EndpointName": name, "EndpointConfigName": wanted}
        deployment = self.config.get("DeploymentConfig")
        if deployment:
            request["DeploymentConfig"] = deployment
        routing = (deployment or {}).get("BlueGreenUpdatePolicy", {}).get("TrafficRoutingConfiguration", {})
        self.log.info("Updating endpoint %s: %s -> %s (blue/green, %s).", name, serving, wanted,
                      routing.get("Type", "ALL_AT_ONCE"))
        self._remember_previous(wanted, serving)
        try:
            hook.conn.update_endpoint(**request)
        except ClientError as err:
            if not _is_update_in_progress(err):
                raise
            # Another deployment started between our DescribeEndpoint and this call: the same refusal as above.
            raise AirflowException(
                f"Endpoint {name} is Updating (another deployment started just now); it must be InService to be "
                f"updated. SageMaker said: {err.response['Error'].get('Message', '')}"
            ) from err
        return {**result, "previous_config_name": serving, "operation": "update"}

    def _put_alarms(self, alarms: list[dict]) -> None:
        """Create (or refresh) the alarms SageMaker watches to roll a deployment back."""
        if not alarms:
            return
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        cloudwatch = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="cloudwatch",
                                 region_name=self.region_name).conn
        for alarm in alarms:
            cloudwatch.put_metric_alarm(**alarm)
            self.log.info("Rollback alarm %s on %s.", alarm["AlarmName"], alarm["MetricName"])

    def _config_arn(self, config_name: str) -> str:
        return self.hook.describe_endpoint_config(config_name)["EndpointConfigArn"]

    def _remember_previous(self, config_name: str, previous: str) -> None:
        """Tag the new config with the one it replaces, so a retry (or rollback) can still find it."""
        self.hook.conn.add_tags(
            ResourceArn=self._config_arn(config_name), Tags=[{"Key": TAG_PREVIOUS_CONFIG, "Value": previous}]
        )

    def _previous_from_tags(self, config_name: str) -> str | None:
        tags = self.hook.conn.list_tags(ResourceArn=self._config_arn(config_name))["Tags"]
        return next((t["Value"] for t in tags if t["Key"] == TAG_PREVIOUS_CONFIG), None)
