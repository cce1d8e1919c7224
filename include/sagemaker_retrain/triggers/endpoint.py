"""Trigger that waits, on the triggerer, until an endpoint serves a given endpoint config.

``EndpointStatus == InService`` alone is not enough: an update that fails is rolled back by
SageMaker to InService *on the old config*. Success therefore means InService on the expected
config; InService on another config is a failed deployment, reported with SageMaker's reason.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

RETRYABLE_ERRORS = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable",
                    "InternalFailure", "InternalServerError"}


def seconds_until(deadline: str) -> float:
    """Seconds from now to an ISO 8601 ``deadline`` (UTC when it names no zone); negative once it has passed.

    :raises ValueError: ``deadline`` is not an ISO 8601 time.
    """
    when = datetime.fromisoformat(str(deadline).strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


def classify(description: dict, expected_config: str) -> tuple[str, str]:
    """Map a DescribeEndpoint answer to ``(verdict, message)``; verdict is success, failure or wait.

    Pure, so every status (and the rollback case) is unit-tested without AWS.
    """
    status = description["EndpointStatus"]
    serving = description.get("EndpointConfigName")
    reason = description.get("FailureReason")
    name = description.get("EndpointName", "?")
    if status == "InService" and serving == expected_config:
        return "success", f"Endpoint {name} is InService on {expected_config}"
    if status == "InService":
        if reason:
            return "failure", (
                f"Endpoint {name} is InService on {serving}, not on {expected_config}: "
                f"the update failed and was rolled back: {reason}"
            )
        # No FailureReason: nothing failed; another deployment (a concurrent run) replaced ours.
        return "failure", (
            f"Endpoint {name} is InService on {serving}, not on {expected_config}, with no FailureReason: "
            "another deployment replaced this run's config (overlapping runs?), or it was rolled back"
        )
    if status in EndpointDeployedTrigger.failed_states:
        return "failure", f"Endpoint {name} is {status}: {reason or '(no FailureReason given)'}"
    return "wait", f"Endpoint {name} is {status} (config {serving})"


class EndpointDeployedTrigger(BaseTrigger):
    """
    Poll DescribeEndpoint until the endpoint is InService on ``endpoint_config_name``.

    Why not ``AwsBaseWaiterTrigger``: that trigger runs a botocore waiter and reports success when
    the waiter's acceptors match. Acceptors compare a response path with an ``expected`` value fixed
    in the waiter's JSON model, so a waiter cannot express "InService *on this run's config*" (a
    value known only at run time); and "InService on another config" must end the wait as a
    *failure* carrying SageMaker's ``FailureReason`` (a rolled-back update), which a waiter that
    succeeds on InService would report as success. The events are also what the sensor and
    ``EndpointRestoreOperator`` read (``status`` success/failure/timeout with a ``message``), and
    throttling and 5xx answers are retried, not fatal. So this is a ``BaseTrigger`` whose verdict is
    the pure, unit-tested :func:`classify`; the hook it polls with is the provider's
    ``SageMakerHook`` built from the same connection fields as the provider's triggers.

    :param endpoint_name: the SageMaker endpoint.
    :param endpoint_config_name: the config this run deployed.
    :param poll_interval: seconds between DescribeEndpoint calls.
    :param max_attempts: polls before giving up with a timeout event.
    :param deadline: ISO 8601 time after which to stop waiting, or None (also empty or ``"None"``, as a
        triggerer's lenient template rendering gives it). When given (a task that starts on the triggerer:
        its deploy task set it), the polls that fit before it replace ``max_attempts``; a deadline already
        past, or not a time, is a failure event before any poll.
    :param aws_conn_id: Airflow AWS connection.
    :param region_name: AWS region (None: the connection's).
    :param verify: whether to verify SSL certificates (None: botocore's default).
    :param botocore_config: botocore client configuration (a dict).
    """

    non_terminal_states = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
    failed_states = frozenset({"Failed", "OutOfService", "Deleting", "UpdateRollbackFailed"})

    def __init__(
        self,
        endpoint_name: str,
        endpoint_config_name: str,
        poll_interval: float = 30,
        max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
        deadline: str | None = None,
    ):
        super().__init__()
        self.endpoint_name = endpoint_name
        self.endpoint_config_name = endpoint_config_name
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_config_name": self.endpoint_config_name,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "deadline": self.deadline,
            },
        )

    def _hook(self):
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                             config=self.botocore_config)

    async def describe(self, client) -> dict:
        return await client.describe_endpoint(EndpointName=self.endpoint_name)

    def _attempts(self) -> int:
        """``max_attempts``, or the polls that fit before ``deadline`` when one is given (0 when it has passed).

        :raises ValueError: ``deadline`` is not an ISO 8601 time.
        """
        if str(self.deadline or "").strip() in ("", "None"):
            return self.max_attempts
        remaining = seconds_until(self.deadline)
        if remaining <= 0:
            return 0
        return max(1, math.ceil(remaining / max(float(self.poll_interval), 0.1)))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event_base = {"endpoint_name": self.endpoint_name, "endpoint_config_name": self.endpoint_config_name}
        try:
            attempts = self._attempts()
        except ValueError as err:
            yield TriggerEvent({**event_base, "status": "failure",
                                "message": f"The wait's deadline {self.deadline!r} is not an ISO 8601 time: {err}"})
            return
        if attempts == 0:
            yield TriggerEvent({**event_base, "status": "failure", "message": (
                f"Gave up waiting for endpoint {self.endpoint_name} to serve {self.endpoint_config_name}: "
                f"the deployment's time limit passed at {self.deadline}")})
            return
        async with await self._hook().get_async_conn() as client:
            message = "never polled"
            for attempt in range(1, attempts + 1):
                try:
                    description = await self.describe(client)
                except ClientError as err:
                    code = err.response["Error"]["Code"]
                    if code in RETRYABLE_ERRORS or err.response["ResponseMetadata"].get("HTTPStatusCode", 0) >= 500:
                        self.log.warning("Attempt %s: transient error %s, polling again", attempt, code)
                        await asyncio.sleep(self.poll_interval)
                        continue
                    yield TriggerEvent({**event_base, "status": "failure",
                                        "message": f"DescribeEndpoint {self.endpoint_name} failed: {err}"})
                    return
                verdict, message = classify(description, self.endpoint_config_name)
                if verdict != "wait":
                    yield TriggerEvent({**event_base, "status": verdict, "message": message})
                    return
                self.log.info("Attempt %s: %s", attempt, message)
                await asyncio.sleep(self.poll_interval)
        yield TriggerEvent({**event_base, "status": "timeout",
                            "message": f"Gave up after {attempts} polls; last: {message}"})
