"""What to do with an endpoint when a run's deployment ends: every decision from what SageMaker says now.

The deployment's undo (the ``restore`` teardown of ``deploy``) asks this module, never a task's XCom
(a task skipped on a later pass of a cleared run keeps the XCom of an earlier pass). The facts:

- the endpoint's status and the config it serves (``DescribeEndpoint``);
- who made that config (its ``run-id`` tag) and whether that run verified it (its ``verified`` tag,
  written by ``publish`` once the endpoint served it and answered the smoke test);
- what it replaced (its ``previous-config`` tag, written by ``deploy`` before the switch);
- who created the endpoint (the endpoint's own ``run-id`` tag).

The rule: an endpoint that serves a config this run made and did not verify goes back to the config
that config replaced; a first deployment never verified is deleted; anything else is left as it is
(verified, or another run's, or rolled back by SageMaker already).
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_PREVIOUS_CONFIG, TAG_RUN, TAG_VERIFIED
from sagemaker_retrain.ownership import describe_endpoint, tags_of

TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
NONE, WAIT, SWITCH_BACK, DELETE_ENDPOINT, REFUSE = "none", "wait", "switch_back", "delete_endpoint", "refuse"


@dataclass(frozen=True)
class Undo:
    """One decision: ``action`` (none, wait, switch_back, delete_endpoint, refuse), why, and its target config."""

    action: str
    message: str
    config: str | None = None


def config_tags(sm, name: str | None) -> dict[str, str] | None:
    """The tags of endpoint config ``name``; None when there is no such config."""
    if not name:
        return None
    try:
        arn = sm.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigArn"]
    except ClientError as err:
        if err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    return tags_of(sm, arn)


def decide_undo(sm, endpoint_name: str, run_id: str) -> Undo:
    """What the end of ``run_id``'s deployment must do to ``endpoint_name``, from SageMaker's answers now."""
    run = run_id[:256]
    endpoint = describe_endpoint(sm, endpoint_name)
    if endpoint is None:
        return Undo(NONE, f"endpoint {endpoint_name} does not exist: nothing to restore")
    status, serving = endpoint["EndpointStatus"], endpoint.get("EndpointConfigName")
    if status in TRANSITIONAL:
        pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        return Undo(WAIT, f"endpoint {endpoint_name} is {status} (serving {serving}, pending {pending})",
                    pending or serving)
    created_here = tags_of(sm, endpoint["EndpointArn"]).get(TAG_RUN) == run
    if status == "Failed":
        if created_here:
            return Undo(DELETE_ENDPOINT, f"endpoint {endpoint_name} (created by this run) is Failed: "
                                         f"{endpoint.get('FailureReason') or 'no reason given'}")
        return Undo(NONE, f"endpoint {endpoint_name} is Failed and was not created by this run: left to its owner")
    tags = config_tags(sm, serving) or {}
    if tags.get(TAG_RUN) != run:
        reason = endpoint.get("FailureReason")
        why = f" (SageMaker rolled this run's deployment back: {reason})" if reason else ""
        return Undo(NONE, f"endpoint {endpoint_name} serves {serving}, not a config of this run{why}: left as is")
    if tags.get(TAG_VERIFIED):
        return Undo(NONE, f"endpoint {endpoint_name} serves {serving}, which this run verified "
                          f"({tags[TAG_VERIFIED]}): nothing to restore")
    previous = tags.get(TAG_PREVIOUS_CONFIG)
    if previous and config_tags(sm, previous) is not None:
        return Undo(SWITCH_BACK, f"endpoint {endpoint_name} serves this run's unverified {serving}: "
                                 f"switching back to {previous}", previous)
    if not previous and created_here:
        return Undo(DELETE_ENDPOINT, f"endpoint {endpoint_name} (first deployment, {serving} not verified) deleted")
    missing = f"the config it replaced ({previous}) no longer exists" if previous else "the config it replaced is unknown"
    return Undo(REFUSE, f"Endpoint {endpoint_name} serves this run's unverified {serving}, and {missing}: "
                        "put a verified config back by hand")
