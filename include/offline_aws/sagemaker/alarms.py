"""CloudWatch alarms as SageMaker's deployment guardrails see them: through boto3, like any client.

The alarms live in moto's CloudWatch on the emulator's own port (``monitoring`` scope), so a
test or a DAG sets them with the real ``put_metric_alarm`` / ``set_alarm_state`` calls.
"""

from __future__ import annotations

import logging

from ..aws_clients import AwsClients

log = logging.getLogger(__name__)

FAULT_REASON = "offline-aws fault alarm_during_next_bake"


def _describe(aws: AwsClients, names: list[str]) -> list[dict]:
    cloudwatch = aws.client("cloudwatch")
    found: list[dict] = []
    for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
        response = cloudwatch.describe_alarms(AlarmNames=names[start : start + 100])
        found += response.get("MetricAlarms", []) + response.get("CompositeAlarms", [])
    return found


def missing_alarms(aws: AwsClients, names: list[str]) -> list[str]:
    """The names among ``names`` that CloudWatch does not know."""
    if not names:
        return []
    known = {a["AlarmName"] for a in _describe(aws, names)}
    return [n for n in names if n not in known]


def alarms_in_alarm(aws: AwsClients, names: list[str]) -> list[str]:
    """The names among ``names`` whose state is ALARM (an unreachable CloudWatch counts as none)."""
    if not names:
        return []
    try:
        return [a["AlarmName"] for a in _describe(aws, names) if a.get("StateValue") == "ALARM"]
    except Exception as exc:  # noqa: BLE001 - a monitoring hiccup must not end a deployment
        log.warning("describe_alarms failed during a deployment: %s", exc)
        return []


def trip(aws: AwsClients, name: str) -> None:
    """Set alarm ``name`` to ALARM (the ``alarm_during_next_bake`` fault)."""
    try:
        aws.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=FAULT_REASON)
    except Exception as exc:  # noqa: BLE001 - e.g. the alarm does not exist: the fault has no effect
        log.warning("alarm_during_next_bake could not set %r to ALARM: %s", name, exc)
