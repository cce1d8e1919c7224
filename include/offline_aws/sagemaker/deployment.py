"""Blue/green endpoint deployments with guardrails: the timed work of an UpdateEndpoint with DeploymentConfig.

The new (green) fleet is loaded while the old (blue) one serves; then traffic shifts in the
steps of ``guardrails.traffic_steps`` (all at once, canary then the rest, or linear steps), each
partial shift followed by a baking period of ``WaitIntervalInSeconds``, the last one by
``TerminationWaitInSeconds``; then blue is gone and the endpoint is InService on the new config.
The endpoint stays ``Updating`` throughout; ``PendingDeploymentSummary`` shows the green variants'
status (Creating, ActivatingTraffic, Baking).

While baking and during the termination wait, the named CloudWatch alarms are polled through
boto3 (about every 0.1 s of real time, and at least at the start and end of every phase). An
alarm in ALARM, or ``MaximumExecutionTimeoutInSeconds`` of emulated time passed, rolls back:
all traffic to blue, green dropped, InService on the old config with a FailureReason. Durations
run on the emulator's Clock, so at time scale 0 a whole deployment takes a few alarm polls.
"""

from __future__ import annotations

import copy
import logging
import threading

from .alarms import alarms_in_alarm, trip
from .guardrails import alarm_names, bakes_after, blue_green_policy, max_execution_seconds, traffic_steps
from .hosting import UPDATING_SECONDS, DeployFailed, load_variants, variant_summaries
from .records import Backend, Endpoint, now

log = logging.getLogger(__name__)

POLL_REAL_SECONDS = 0.1  # how often (real time) alarms are polled while a phase is held open

# Our wording: AWS documents that tripped alarms roll the deployment back, not the FailureReason text.
ALARM_REASON = (
    "Endpoint update rolled back: the CloudWatch alarm(s) {alarms} went into ALARM state during the "
    "blue/green deployment (DeploymentConfig.AutoRollbackConfiguration)."
)
TIMEOUT_REASON = (
    "Endpoint update rolled back: the blue/green deployment did not complete within "
    "MaximumExecutionTimeoutInSeconds ({seconds} s)."
)


class RolledBack(Exception):
    """Ends a deployment with a rollback; the message is the endpoint's FailureReason."""


class Superseded(Exception):
    """The endpoint was deleted (or reset) meanwhile: drop the deployment silently."""


def pending_variants(config: dict, status: str, started, *, message: str | None = None, loaded: dict | None = None,
                     share: float = 0.0) -> list[dict]:
    """PendingProductionVariantSummary entries of the new fleet in ``status``."""
    images = {v["VariantName"]: v["DeployedImages"] for v in variant_summaries(loaded)} if loaded else {}
    out = []
    for variant in config["ProductionVariants"]:
        weight = float(variant.get("InitialVariantWeight", 1.0))
        count = int(variant.get("InitialInstanceCount") or 1)
        entry = {
            "VariantName": variant["VariantName"],
            "CurrentWeight": round(weight * share, 6),
            "DesiredWeight": weight,
            "CurrentInstanceCount": 0 if status == "Creating" else count,
            "DesiredInstanceCount": count,
            "VariantStatus": [{"Status": status, "StatusMessage": message or _MESSAGES[status], "StartTime": started}],
        }
        if variant["VariantName"] in images:
            entry["DeployedImages"] = images[variant["VariantName"]]
        if "InstanceType" in variant:
            entry["InstanceType"] = variant["InstanceType"]
        out.append(entry)
    return out


_MESSAGES = {
    "Creating": "Launching the new fleet's instances and loading the model.",
    "ActivatingTraffic": "Shifting traffic to the new fleet.",
    "Baking": "Monitoring the CloudWatch alarms.",
}


def start_blue_green(backend: Backend, endpoint: Endpoint, config: dict, deployment_config: dict, *,
                     previous: str, injected_failure: str | None) -> None:
    """Called under ``backend.lock`` right after the record went Updating."""
    endpoint.generation += 1
    run = BlueGreenDeployment(backend, endpoint, endpoint.generation, config, deployment_config, previous,
                              injected_failure)
    endpoint.thread = threading.Thread(target=run.run, name=f"blue-green-{endpoint.desc['EndpointName']}", daemon=True)
    endpoint.thread.start()


class BlueGreenDeployment:
    """One blue/green deployment of ``config`` onto ``endpoint`` (run in its own thread)."""

    def __init__(self, backend: Backend, endpoint: Endpoint, generation: int, config: dict,
                 deployment_config: dict, previous: str, injected_failure: str | None):
        self.backend = backend
        self.endpoint = endpoint
        self.generation = generation
        self.config = config
        self.deployment_config = deployment_config
        self.previous = previous
        self.injected_failure = injected_failure
        self.policy = blue_green_policy(deployment_config)
        self.alarms = alarm_names(deployment_config)
        self.timeout = max_execution_seconds(deployment_config)
        self.elapsed = 0.0  # emulated seconds since the deployment started
        self.green: dict = {}
        self.baked = False

    # --- the timeline ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.green = self._create_green()
            wait = self.policy["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"]
            for share in traffic_steps(self.deployment_config, self.config):
                self._shift(share)
                if bakes_after(self.deployment_config, share):
                    self._bake(wait, share, f"Baking {wait} s with {_pct(share)} of the traffic on the new fleet.")
            termination = self.policy.get("TerminationWaitInSeconds", 0)
            self._bake(termination, 1.0, f"Waiting TerminationWaitInSeconds ({termination} s) before terminating "
                                         "the old fleet.")
            self._finish()
        except RolledBack as exc:
            self._roll_back(str(exc))
        except Superseded:
            return
        except Exception as exc:  # noqa: BLE001 - never leave an endpoint stuck in Updating
            log.exception("blue/green deployment failed")
            self._roll_back(f"Internal error while deploying: {type(exc).__name__}: {exc}")

    def _create_green(self) -> dict:
        if self.injected_failure is not None:
            self._wait(UPDATING_SECONDS, watch=False)
            raise RolledBack(self.injected_failure)
        try:
            loaded = load_variants(self.backend, self.config)
        except DeployFailed as exc:
            raise RolledBack(str(exc)) from None
        self._wait(UPDATING_SECONDS, watch=False)
        return loaded

    def _shift(self, share: float) -> None:
        with self.backend.lock:
            self._check_current()
            self.endpoint.green = self.green
            self.endpoint.shift_traffic(share)
            self._status("ActivatingTraffic", share, f"Shifting {_pct(share)} of the traffic to the new fleet.")

    def _bake(self, seconds: float, share: float, message: str) -> None:
        with self.backend.lock:
            self._check_current()
            self._status("Baking", share, message)
        if not self.baked:
            self.baked = True
            alarm = self.backend.faults.take_bake_alarm()
            if alarm is not None:
                trip(self.backend.aws, alarm)
        self._wait(seconds, watch=True)

    def _finish(self) -> None:
        with self.backend.lock:
            self._check_current()
            self.endpoint.serving = self.green
            self.endpoint.shift_traffic(0.0)
            desc = self.endpoint.desc
            desc.pop("PendingDeploymentSummary", None)
            desc.pop("FailureReason", None)
            desc.update(EndpointStatus="InService", LastModifiedTime=now(),
                        ProductionVariants=variant_summaries(self.green),
                        LastDeploymentConfig=copy.deepcopy(self.deployment_config))

    def _roll_back(self, reason: str) -> None:
        with self.backend.lock:
            try:
                self._check_current()
            except Superseded:
                return
            self.endpoint.shift_traffic(0.0)  # all traffic back to blue; green is dropped
            desc = self.endpoint.desc
            desc.pop("PendingDeploymentSummary", None)
            desc.update(EndpointStatus="InService", EndpointConfigName=self.previous, FailureReason=reason,
                        LastModifiedTime=now(), LastDeploymentConfig=copy.deepcopy(self.deployment_config))

    # --- time, alarms, timeout ---------------------------------------------------------------
    def _wait(self, seconds: float, *, watch: bool) -> None:
        """Let ``seconds`` of emulated time pass, checking the timeout (and alarms if ``watch``) as it goes."""
        remaining = float(seconds)
        while True:
            self._check(watch)
            if remaining <= 1e-9:
                return
            scale = self.backend.clock.time_scale
            chunk = remaining if scale <= 0 else min(remaining, POLL_REAL_SECONDS / scale)
            chunk = min(chunk, self.timeout - self.elapsed)
            self.backend.clock.pause(chunk)
            self.elapsed += chunk
            remaining -= chunk

    def _check(self, watch: bool) -> None:
        with self.backend.lock:
            self._check_current()
        if self.elapsed >= self.timeout - 1e-9:
            raise RolledBack(TIMEOUT_REASON.format(seconds=self.timeout))
        if watch:
            tripped = alarms_in_alarm(self.backend.aws, self.alarms)
            if tripped:
                raise RolledBack(ALARM_REASON.format(alarms=", ".join(tripped)))

    def _check_current(self) -> None:
        """Raise Superseded if the endpoint was deleted or reset; call under the lock."""
        key = self.endpoint.desc["EndpointName"].lower()
        if self.endpoint.generation != self.generation or self.backend.endpoints.get(key) is not self.endpoint:
            raise Superseded()

    def _status(self, status: str, share: float, message: str) -> None:
        pending = self.endpoint.desc.get("PendingDeploymentSummary")
        if pending is not None:
            pending["ProductionVariants"] = pending_variants(
                self.config, status, now(), message=message, loaded=self.green, share=share
            )
        self.endpoint.desc["LastModifiedTime"] = now()


def _pct(share: float) -> str:
    return f"{share * 100:g}%"
