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

from sagemaker_retrain.config import TAG_PREVIOUS_CONFIG, TAG_RUN
from sagemaker_retrain.ownership import ForeignResourceError, require_owned_endpoint, tags_of


def _is_missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound")


def _is_update_in_progress(err: ClientError) -> bool:
    error = err.response["Error"]
    return error["Code"] == "ValidationException" and "Cannot update in-progress endpoint" in error.get("Message", "")


class SageMakerDeployOperator(SageMakerEndpointOperator):
    """
    Create the run's endpoint config and alarms, then create the endpoint or switch it blue/green.

    Before any mutating call it refuses (failing the task, no retry) an endpoint config outside the
    admins' limits (instance types and counts), an endpoint the pipeline does not own, an endpoint that no longer serves the champion the gate compared (``Champion``), and a model
    package that is not ``Approved``.

    :param config: ``{"EndpointConfig": ..., "Endpoint": {"EndpointName", "EndpointConfigName", "Tags"},
        "DeploymentConfig": ... | None, "Alarms": [PutMetricAlarm requests], "MaxWaitSeconds": int,
        "Champion": {"EndpointConfigName": str | None}, "ModelPackageArn": str | None,
        "Model": CreateModel request | None}``
        (templated). The model must exist already (the pipeline creates it to score it first).
        ``Champion`` is the config the endpoint served when the champion was pinned (None: nothing).
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
        self._check_limits(endpoint_config)
        self._refuse_unless_approved(self.config.get("ModelPackageArn"))
        if not self._already_ours(current, wanted):
            self._refuse_unless_champion(name, current, (self.config.get("Champion") or {}).get("EndpointConfigName"))
        self._ensure_model(self.config.get("Model"))
        if self._exists(hook.describe_endpoint_config, endpoint_config["EndpointConfigName"]):
            self._require_this_runs_config(endpoint_config)
            self.log.info("Endpoint config %s exists already (this run's, by its tags); keeping it.",
                          endpoint_config["EndpointConfigName"])
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

    @staticmethod
    def _check_limits(endpoint_config: dict) -> None:
        """The admins' limits on the very request sent (it came through an XCom, which a User may edit)."""
        from sagemaker_retrain import limits

        try:
            limits.check_deploy_config(endpoint_config)
        except limits.LimitExceeded as err:
            raise AirflowFailException(str(err)) from err

    def _ensure_model(self, request: dict | None) -> None:
        """Create the run's model again if it is gone (the clean-up of a failed pass deleted it); keep it otherwise."""
        if not request or self._exists(lambda name: self.hook.conn.describe_model(ModelName=name),
                                       request["ModelName"]):
            return
        self.log.info("Model %s is gone (cleaned up after an earlier pass): creating it again from %s.",
                      request["ModelName"], (request.get("PrimaryContainer") or {}).get("ModelPackageName"))
        self.hook.conn.create_model(**request)

    def _require_this_runs_config(self, endpoint_config: dict) -> None:
        """An existing config of this name is reused only if it carries this run's tag (trust tags, not names)."""
        wanted = {t["Key"]: t["Value"] for t in endpoint_config.get("Tags") or []}.get(TAG_RUN)
        found = tags_of(self.hook.conn, self._config_arn(endpoint_config["EndpointConfigName"])).get(TAG_RUN)
        if wanted is None or found != wanted:
            raise AirflowFailException(
                f"Endpoint config {endpoint_config['EndpointConfigName']} exists but carries {TAG_RUN}={found!r}, "
                f"not this run's {wanted!r}: not this run's config. Refusing to deploy it.")

    @staticmethod
    def _already_ours(current: dict | None, wanted: str) -> bool:
        """The endpoint already serves (or is switching to) this run's config: a retry or a cleared task."""
        if current is None:
            return False
        pending = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        return ((current.get("EndpointConfigName") == wanted and current["EndpointStatus"] != "Failed")
                or (current["EndpointStatus"] == "Updating" and pending == wanted))

    @staticmethod
    def _refuse_unless_champion(name: str, current: dict | None, champion: str | None) -> None:
        """The gate compared the challenger with ``champion``: replace nothing else."""
        serving = (current or {}).get("EndpointConfigName") if (current or {}).get("EndpointStatus") != "Failed" \
            else None
        if serving == champion:
            return
        said = f"serves {serving}" if serving else ("does not exist" if current is None else
                                                      f"is {current['EndpointStatus']}, serving nothing")
        compared = f"the champion config {champion}" if champion else "no champion (nothing served)"
        raise AirflowFailException(
            f"Endpoint {name} {said}, but the gate compared this run's model with {compared}: the endpoint "
            "changed since the champion was pinned (another run or a person). Refusing to deploy a model "
            "over one it was not compared with; trigger a new run to compare it with what serves now.")

    def _refuse_unless_approved(self, package_arn: str | None) -> None:
        """Only a package the registry says is Approved (by a person, or by the admins' policy) is deployed."""
        if not package_arn:
            return
        package = self.hook.conn.describe_model_package(ModelPackageName=package_arn)
        status = package.get("ModelApprovalStatus")
        if status != "Approved":
            raise AirflowFailException(
                f"Model package {package_arn} is {status}, not Approved "
                f"({package.get('ApprovalDescription') or 'no approval description'}): refusing to deploy it")

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
