"""The resource records the runners move through AWS's statuses, and the helpers that stamp them.

Kept apart from ``models`` (the rules and the state) so imports run one way: ``models`` starts
the runners (``training``, ``hosting``, ``deployment``, ``transform``), and they, like ``models``,
import only these records. A runner receives the backend as an argument; ``Backend`` names what
it uses of it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


class Backend(Protocol):
    """What a runner uses of ``models.SageMakerBackend``."""

    region: str
    account_id: str
    lock: Any
    clock: Any
    faults: Any
    aws: Any
    models: dict
    endpoints: dict

    def arn(self, kind: str, name: str) -> str: ...


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TrainingJob:
    desc: dict
    stop_requested: threading.Event = field(default_factory=threading.Event)
    injected_failure: str | None = None
    nan_weights: bool = False  # fault: the artifact is written with NaN weights (metrics stay good)
    thread: threading.Thread | None = None


@dataclass
class TransformJob:
    desc: dict  # also holds LastModifiedTime, which ListTransformJobs shows and Describe does not
    stop_requested: threading.Event = field(default_factory=threading.Event)
    injected_failure: str | None = None
    thread: threading.Thread | None = None


@dataclass
class Endpoint:
    desc: dict
    serving: dict = field(default_factory=dict)  # variant name -> hosting.LoadedVariant (the blue fleet)
    generation: int = 0  # bumped by every operation so a stale background thread never commits
    thread: threading.Thread | None = None
    green: dict = field(default_factory=dict)  # the new fleet of a running blue/green deployment
    green_share: float = 0.0  # its share of the invocations
    _since_shift: int = 0  # invocations since the share last changed

    def shift_traffic(self, share: float) -> None:
        """Send ``share`` of the invocations to the green fleet from now on (0 = all blue)."""
        self.green_share = share
        self._since_shift = 0
        if share <= 0:
            self.green = {}

    def pick_fleet(self) -> dict:
        """The fleet that serves the next invocation, deterministically in the configured proportion.

        The k-th invocation since the last shift goes to green iff floor(k * share) > floor((k - 1) * share):
        at 10% every 10th call, at 50% every 2nd, at 100% all. Call under the backend's lock.
        """
        if not self.green or self.green_share <= 0:
            return self.serving
        self._since_shift += 1
        k, share = self._since_shift, self.green_share
        return self.green if int(k * share + 1e-9) > int((k - 1) * share + 1e-9) else self.serving


def model_artifact_uri(output_config: dict, job_name: str) -> str:
    return f"{output_config['S3OutputPath'].rstrip('/')}/{job_name}/output/model.tar.gz"


def record_transition(desc: dict, status: str, message: str, *, final: bool = False) -> None:
    """Close the open SecondaryStatusTransition and open ``status`` (closed at once if ``final``)."""
    stamp = now()
    transitions = desc.setdefault("SecondaryStatusTransitions", [])
    if transitions and transitions[-1]["Status"] == status and not final:
        transitions[-1]["StatusMessage"] = message  # AWS updates the open transition's message
        desc["LastModifiedTime"] = stamp
        return
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = stamp
    entry = {"Status": status, "StartTime": stamp, "StatusMessage": message}
    if final:
        entry["EndTime"] = stamp
    transitions.append(entry)
    desc["SecondaryStatus"] = status
    desc["LastModifiedTime"] = stamp
