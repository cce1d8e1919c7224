"""Pin the champion: exactly what the endpoint serves when the challenger is about to be compared with it.

The gate compares the challenger with this champion on the same rows, and ``deploy`` refuses to
switch an endpoint that no longer serves it (another run, or a person, changed it in between), so
a model is only ever promoted over the model it beat. An endpoint that is changing (Updating,
SystemUpdating, RollingBack, Creating) has no settled champion yet: the operator waits, deferred,
until it settles, instead of treating it as "no model serving".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sagemaker_retrain.ownership import ForeignResourceError, require_owned_endpoint
from sagemaker_retrain.triggers.endpoint import EndpointDeployedTrigger
from sagemaker_retrain.undo import TRANSITIONAL


def pin(sm, endpoint_name: str) -> dict:
    """What ``endpoint_name`` serves now: ``{"endpoint", "status", "endpoint_config", "model", "package"}``.

    ``endpoint_config`` is None when nothing serves (no endpoint, or one whose first create failed).
    Raises ForeignResourceError for an endpoint without the pipeline's tags.
    """
    from sagemaker_retrain import registry

    current = require_owned_endpoint(sm, endpoint_name)
    pinned = {"endpoint": endpoint_name, "status": (current or {}).get("EndpointStatus"),
              "endpoint_config": None, "model": None, "package": None}
    if current is None or current["EndpointStatus"] != "InService":
        return pinned
    config_name = current["EndpointConfigName"]
    variants = sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    model = variants[0]["ModelName"]
    return {**pinned, "endpoint_config": config_name, "model": model,
            "package": registry.package_of_model(sm, model)}


class PinChampionOperator(AwsBaseOperator[SageMakerHook]):
    """
    Record the champion exactly (endpoint config, model, registry package), waiting for a changing endpoint.

    :param endpoint_name: the endpoint the run may promote to (templated).
    :param mode: the run's mode (templated); an ``ephemeral`` run deploys to its own endpoint: no champion.
    :param poll_interval: seconds between DescribeEndpoint calls while deferred.
    :param max_wait_seconds: how long an endpoint may keep changing before the run gives up (fails).
    :param aws_conn_id: Airflow AWS connection; ``region_name`` etc. as for every ``AwsBaseOperator``.
    :return: ``{"endpoint", "status", "endpoint_config", "model", "package"}`` (``endpoint_config``
        None: nothing serves).
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("endpoint_name", "mode")

    def __init__(self, *, endpoint_name: str, mode: str = "persistent", poll_interval: float = 30,
                 max_wait_seconds: int = 3 * 3600, **kwargs):
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.mode = mode
        self.poll_interval = poll_interval
        self.max_wait_seconds = max_wait_seconds

    def execute(self, context) -> Any:
        if self.mode == "ephemeral":
            return {"endpoint": self.endpoint_name, "status": None, "endpoint_config": None, "model": None,
                    "package": None}
        sm = self.hook.conn
        try:
            current = require_owned_endpoint(sm, self.endpoint_name)
        except ForeignResourceError as err:
            raise AirflowFailException(str(err)) from err
        if current is not None and current["EndpointStatus"] in TRANSITIONAL:
            target = ((current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
                      or current.get("EndpointConfigName"))
            self.log.info("Endpoint %s is %s (towards %s): waiting (deferred) for it to settle before the champion "
                          "is pinned.", self.endpoint_name, current["EndpointStatus"], target)
            self.defer(
                trigger=EndpointDeployedTrigger(
                    endpoint_name=self.endpoint_name, endpoint_config_name=target, poll_interval=self.poll_interval,
                    max_attempts=max(1, int(self.max_wait_seconds / max(self.poll_interval, 0.1))),
                    aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                ),
                method_name="settled",
                timeout=timedelta(seconds=self.max_wait_seconds + 60),
            )
        pinned = pin(sm, self.endpoint_name)
        self.log.info("Champion of %s: %s", self.endpoint_name,
                      f"config {pinned['endpoint_config']}, model {pinned['model']}, package "
                      f"{(pinned['package'] or {}).get('arn')}" if pinned["endpoint_config"]
                      else f"none (endpoint {pinned['status'] or 'absent'})")
        return pinned

    def settled(self, context, event: dict | None = None) -> Any:
        """Any end of the change (success, a rollback, a failure) settles it; only a timeout does not."""
        if (event or {}).get("status") == "timeout":
            raise AirflowException(f"Endpoint {self.endpoint_name} kept changing: {event.get('message')}")
        return self.execute(context)
