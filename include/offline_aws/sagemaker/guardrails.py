"""Deployment guardrails' rules: which ``DeploymentConfig`` an UpdateEndpoint may carry, and its traffic plan.

Pure functions (no threads, no HTTP), so every rule is unit-testable; botocore's input shape
(ranges such as WaitIntervalInSeconds 0-3600, MaximumExecutionTimeoutInSeconds 600-28800, 1-10
alarms) is already checked by ``validation``. What is checked here is what the shape cannot say,
worded after the API reference where it documents the rule:

- ``RollingUpdatePolicy`` is refused: the offline emulator runs blue/green deployments only.
- ``CANARY`` needs ``CanarySize`` (at most 50% of the fleet); ``LINEAR`` needs ``LinearStepSize``
  (10-50% of the fleet).
- ``MaximumExecutionTimeoutInSeconds`` must be larger than ``WaitIntervalInSeconds`` +
  ``TerminationWaitInSeconds``.

A ``DeploymentConfig`` with no update policy means blue/green, all at once (as AWS documents).
"""

from __future__ import annotations

import math

from .exceptions import ValidationException

DEFAULT_MAX_EXECUTION_SECONDS = 28800  # botocore's maximum; AWS documents no default
ALL_AT_ONCE = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}


def blue_green_policy(deployment_config: dict) -> dict:
    """The BlueGreenUpdatePolicy to run (all at once, no wait, when only alarms are given)."""
    return deployment_config.get("BlueGreenUpdatePolicy") or {"TrafficRoutingConfiguration": dict(ALL_AT_ONCE)}


def alarm_names(deployment_config: dict) -> list[str]:
    alarms = (deployment_config.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
    return [a["AlarmName"] for a in alarms if a.get("AlarmName")]


def max_execution_seconds(deployment_config: dict) -> int:
    return blue_green_policy(deployment_config).get("MaximumExecutionTimeoutInSeconds", DEFAULT_MAX_EXECUTION_SECONDS)


def fleet_instances(endpoint_config: dict) -> int:
    """The new fleet's instance count (all production variants)."""
    return sum(int(v.get("InitialInstanceCount") or 1) for v in endpoint_config["ProductionVariants"])


def _share(size: dict, instances: int) -> float:
    if size["Type"] == "CAPACITY_PERCENT":
        return size["Value"] / 100.0
    return size["Value"] / instances


def check_deployment_config(deployment_config: dict, endpoint_config: dict) -> None:
    """Raise ValidationException, as AWS would, for a DeploymentConfig the emulator must refuse."""
    if "RollingUpdatePolicy" in deployment_config:
        raise ValidationException(
            "DeploymentConfig.RollingUpdatePolicy is not supported by the offline emulator; use "
            "BlueGreenUpdatePolicy (or no update policy, which is blue/green all at once)."
        )
    policy = blue_green_policy(deployment_config)
    routing = policy["TrafficRoutingConfiguration"]
    kind = routing["Type"]
    instances = fleet_instances(endpoint_config)
    if kind == "CANARY":
        size = routing.get("CanarySize")
        if size is None:
            raise ValidationException("CanarySize must be specified when the traffic routing Type is CANARY.")
        if _share(size, instances) > 0.5:
            raise ValidationException(
                f"Invalid CanarySize {size['Type']} {size['Value']}: the canary must be less than or equal to 50% "
                f"of the variant's total instance count ({instances})."
            )
    if kind == "LINEAR":
        size = routing.get("LinearStepSize")
        if size is None:
            raise ValidationException("LinearStepSize must be specified when the traffic routing Type is LINEAR.")
        if not 0.1 <= _share(size, instances) <= 0.5:
            raise ValidationException(
                f"Invalid LinearStepSize {size['Type']} {size['Value']}: each step must be 10-50% of the variant's "
                f"total instance count ({instances})."
            )
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    waits = routing["WaitIntervalInSeconds"] + policy.get("TerminationWaitInSeconds", 0)
    if timeout is not None and timeout <= waits:
        raise ValidationException(
            f"MaximumExecutionTimeoutInSeconds ({timeout}) must be larger than the total waiting time specified in "
            f"TerminationWaitInSeconds and WaitIntervalInSeconds ({waits})."
        )


def traffic_steps(deployment_config: dict, endpoint_config: dict) -> list[float]:
    """The new fleet's share of traffic after each shift: ALL_AT_ONCE [1], CANARY [c, 1], LINEAR [s, 2s, ..., 1]."""
    routing = blue_green_policy(deployment_config)["TrafficRoutingConfiguration"]
    instances = fleet_instances(endpoint_config)
    if routing["Type"] == "CANARY":
        return [_share(routing["CanarySize"], instances), 1.0]
    if routing["Type"] == "LINEAR":
        step = _share(routing["LinearStepSize"], instances)
        count = math.ceil(1.0 / step - 1e-9)
        return [min(1.0, round(step * i, 6)) for i in range(1, count)] + [1.0]
    return [1.0]


def bakes_after(deployment_config: dict, share: float) -> bool:
    """Whether a baking period (WaitIntervalInSeconds) follows a shift to ``share``.

    Every partial shift bakes; the shift to 100% bakes only when it is the only one (ALL_AT_ONCE);
    after the last canary/linear step comes the TerminationWaitInSeconds instead.
    """
    routing = blue_green_policy(deployment_config)["TrafficRoutingConfiguration"]
    return share < 1.0 or routing["Type"] == "ALL_AT_ONCE"
