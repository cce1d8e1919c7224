"""Sensor: the run's endpoint config is live and answers sensibly.

Waits (deferred, on the triggerer) until the endpoint is InService on the config this run
deployed, fails at once on Failed or a rolled-back update with SageMaker's reason, then sends a
smoke request of held-out rows and checks one finite prediction per row comes back.

Those verdicts are final (``AirflowFailException``, no retry): a retry cannot un-fail an endpoint,
and a model that answered garbage would otherwise keep serving through every retry delay before
the rollback task may run.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import XComArg, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from sagemaker_retrain.links import SageMakerEndpointLink, SageMakerModelPackageLink
from sagemaker_retrain.smoke import SmokeTestError, smoke_test
from sagemaker_retrain.triggers.endpoint import EndpointDeployedTrigger, classify, seconds_until


class EndpointDeployedSensor(AwsBaseSensor[SageMakerHook]):
    """
    Wait until ``endpoint_name`` serves ``endpoint_config_name``, then smoke-test it.

    The task page links to the endpoint and to the model package it serves in the SageMaker console.

    :param endpoint_name: SageMaker endpoint (templated).
    :param endpoint_config_name: the config this run deployed (templated).
    :param smoke_rows: feature rows (no label) to send once InService (templated); empty skips it.
    :param deadline: ISO 8601 time after which to stop waiting (templated), whatever the retries:
        one total cap on the wait. None: ``timeout`` seconds from each try's start.
    :param algorithm: the name of the algorithm that made the deployed model (templated): the smoke
        request is sent and its answer parsed in that algorithm's formats; None tries each parser.
    :param predictor_type: ``regressor`` (None), ``binary_classifier`` or ``multiclass_classifier``
        (templated): how the answer is read (a classifier may answer each class's probability).
    :param deferrable: wait on the triggerer instead of holding a worker slot (default: Airflow's
        ``[operators] default_deferrable``).
    :param start_from_trigger: with ``deferrable``, the scheduler hands the wait to the triggerer at once
        (Airflow's ``start_from_trigger``): no worker slot until the wait ends, and the links are written
        when the task resumes (none while it waits). The triggerer renders the wait's inputs, so each must be
        a string, a template or a plain ``XComArg``; a template's ``xcom_pull`` must name ``map_indexes``
        (docs/upstream.md §9). ``airflow dags test`` ignores it and starts on the worker.
    :param poll_interval: seconds between status checks.
    :param aws_conn_id: Airflow AWS connection (templated).
    :param region_name: AWS region, None for the connection's (templated).
    :param verify: whether to verify SSL certificates (templated).
    :param botocore_config: botocore client configuration (a dict).
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields(
        "endpoint_name", "endpoint_config_name", "smoke_rows", "deadline", "algorithm", "predictor_type")
    operator_extra_links = (SageMakerEndpointLink(), SageMakerModelPackageLink())

    def __init__(
        self,
        *,
        endpoint_name: str,
        endpoint_config_name: str,
        smoke_rows: list[list[float]] | None = None,
        deadline: str | None = None,
        algorithm: str | None = None,
        predictor_type: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30,
        start_from_trigger: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("timeout", 3 * 3600)
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.endpoint_config_name = endpoint_config_name
        self.smoke_rows = smoke_rows or []
        self.deadline = deadline
        self.algorithm = algorithm
        self.predictor_type = predictor_type
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.start_from_trigger = bool(start_from_trigger and deferrable)
        if self.start_from_trigger:
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=f"{EndpointDeployedTrigger.__module__}.{EndpointDeployedTrigger.__qualname__}",
                trigger_kwargs={
                    "endpoint_name": _template(endpoint_name, "endpoint_name"),
                    "endpoint_config_name": _template(endpoint_config_name, "endpoint_config_name"),
                    "deadline": _template(deadline, "deadline"),
                    "poll_interval": poll_interval,
                    # Used only without a deadline: ``timeout`` seconds of polls, as the worker path waits.
                    "max_attempts": max(1, int(float(self.timeout) / max(poll_interval, 0.1))),
                    "aws_conn_id": _template(self.aws_conn_id, "aws_conn_id"),
                    "region_name": _template(self.region_name, "region_name"),
                    "verify": _template(self.verify, "verify"),
                    "botocore_config": _plain(self.botocore_config, "botocore_config"),
                },
                next_method="execute_complete",
                # None: the trigger ends the wait itself, at the deadline (however far: the deployment's own
                # limit) or after max_attempts; Airflow still stops it at the task's execution_timeout.
                timeout=None,
            )

    def _verdict(self) -> tuple[str, str]:
        return classify(self.hook.describe_endpoint(self.endpoint_name), self.endpoint_config_name)

    def poke(self, context) -> bool:
        verdict, message = self._verdict()
        self.log.info(message)
        if verdict == "failure":
            raise AirflowFailException(message)
        return verdict == "success"

    def _remaining_seconds(self) -> float:
        if not self.deadline:
            return float(self.timeout)
        return seconds_until(self.deadline)

    def execute(self, context) -> Any:
        self._persist_links(context)
        remaining = self._remaining_seconds()
        if remaining <= 0:
            raise AirflowFailException(
                f"Gave up waiting for endpoint {self.endpoint_name} to serve {self.endpoint_config_name}: "
                f"the deployment's time limit passed at {self.deadline}"
            )
        if not self.deferrable:
            super().execute(context)
            return self._smoke()
        verdict, message = self._verdict()
        if verdict == "failure":
            raise AirflowFailException(message)
        if verdict == "success":
            return self._smoke()
        self.log.info("%s; deferring to the triggerer.", message)
        self.defer(
            trigger=EndpointDeployedTrigger(
                endpoint_name=self.endpoint_name,
                endpoint_config_name=self.endpoint_config_name,
                poll_interval=self.poll_interval,
                max_attempts=max(1, int(remaining / max(self.poll_interval, 0.1))),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining),
        )

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> Any:
        if self.start_from_trigger:
            # First, whatever the verdict: no worker execution came before this one (but under `airflow dags
            # test`, which starts on the worker: the same links again).
            self._persist_links(context)
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "Endpoint wait ended without an event")
            if (event or {}).get("status") == "failure":
                raise AirflowFailException(message)
            raise AirflowException(message)
        self.log.info(event["message"])
        return self._smoke()

    def _persist_links(self, context) -> None:
        """The endpoint's console link, and the model package of the config this run deployed (if from one)."""
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        SageMakerEndpointLink.persist(context=context, operator=self, region_name=region, aws_partition=partition,
                                      endpoint_name=urllib.parse.quote(self.endpoint_name, safe=""))
        try:
            variants = self.hook.conn.describe_endpoint_config(
                EndpointConfigName=self.endpoint_config_name)["ProductionVariants"]
            container = self.hook.describe_model(variants[0]["ModelName"]).get("PrimaryContainer", {})
        except Exception as err:  # noqa: BLE001 - a link is never worth failing the wait for
            self.log.info("No model package link: %s", err)
            return
        package_arn = container.get("ModelPackageName", "")
        if ":model-package/" not in package_arn:
            return
        group, _, version = package_arn.split(":model-package/", 1)[1].partition("/")
        SageMakerModelPackageLink.persist(context=context, operator=self, region_name=region, aws_partition=partition,
                                          model_package_group=urllib.parse.quote(group, safe=""),
                                          version=urllib.parse.quote(version, safe=""))

    def _smoke(self) -> dict:
        result = {"endpoint_name": self.endpoint_name, "endpoint_config_name": self.endpoint_config_name}
        if not self.smoke_rows:
            return {**result, "smoke_scores": []}
        runtime = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="sagemaker-runtime",
                              region_name=self.region_name, verify=self.verify, config=self.botocore_config).conn
        try:
            from sagemaker_retrain import algorithms

            made_by = algorithms.get(self.algorithm) if self.algorithm else None
            scores = smoke_test(runtime, self.endpoint_name, self.smoke_rows, made_by, self.predictor_type or None)
        except SmokeTestError as err:
            raise AirflowFailException(f"Smoke test of {self.endpoint_name} failed: {err}") from err
        self.log.info("Smoke test: %d rows answered, scores %s", len(scores), scores)
        return {**result, "smoke_scores": scores}


def _plain(value: Any, name: str) -> Any:
    """A wait input the triggerer takes as it is (not rendered): no XComArg."""
    if isinstance(value, XComArg):
        raise ValueError(f"{name}: start_from_trigger needs a plain value here, not {value!r}")
    return value


def _template(value: Any, name: str) -> Any:
    """A wait input the triggerer can render: a plain XComArg becomes the template that pulls it."""
    if not isinstance(value, XComArg):
        return value
    operator, key = getattr(value, "operator", None), getattr(value, "key", None)
    if operator is None or not isinstance(key, str):
        raise ValueError(f"{name}: start_from_trigger takes a string, a template or a plain XComArg, not {value!r}")
    # map_indexes given: a pull of all map indexes asks for a sequence slice, which Airflow 3.3.2's triggerer
    # cannot answer, and the trigger then hangs (docs/upstream.md §9).
    return f"{{{{ ti.xcom_pull(task_ids={operator.task_id!r}, key={key!r}, map_indexes=-1) }}}}"
