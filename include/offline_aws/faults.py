"""Fault injection and call counting, so tests can prove retry/failure handling and "no calls made".

Faults are deterministic: a share of 0.5 hits every second matching call (error diffusion),
not a random half, so tests never flake.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass
class _ShareRule:
    """Hit ``share`` of the calls to ``operations`` (all when empty), at most ``count`` times,
    after letting the first ``after`` matching calls through."""

    share: float = 0.0
    count: int | None = None
    operations: frozenset[str] = frozenset()
    status: int = 500
    after: int = 0
    _acc: float = 0.0

    def hit(self, operation: str) -> bool:
        if self.operations and operation not in self.operations:
            return False
        if self.after > 0:
            self.after -= 1
            return False
        if self.count is not None and self.count <= 0:
            return False
        self._acc += self.share
        if self._acc < 1.0 - 1e-9:
            return False
        self._acc -= 1.0
        if self.count is not None:
            self.count -= 1
        return True

    def describe(self) -> dict:
        return {
            "share": self.share,
            "count": self.count,
            "operations": sorted(self.operations),
            "status": self.status,
            "after": self.after,
        }


@dataclass
class Faults:
    """The fault plan of one emulator and its per-operation call counter (thread-safe)."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    fail_training: deque = field(default_factory=deque)
    fail_endpoint_create: deque = field(default_factory=deque)
    fail_endpoint_update: deque = field(default_factory=deque)
    fail_transform: deque = field(default_factory=deque)
    alarm_next_bake: deque = field(default_factory=deque)  # alarm names to set to ALARM at the next bakes
    nan_weights_training: int = 0
    throttle: _ShareRule | None = None
    server_error: _ShareRule | None = None
    latency_seconds: float = 0.0
    latency_operations: frozenset[str] = frozenset()
    s3_error: dict | None = None  # {"key_contains", "method", "status", "remaining"}: fail matching S3 calls
    calls: Counter = field(default_factory=Counter)

    # --- configuration -------------------------------------------------------------------
    def configure(self, spec: dict) -> None:
        """Apply a JSON fault spec (see the admin API in ``offline_aws.admin``)."""
        known = {
            "fail_next_training_job",
            "fail_next_endpoint_create",
            "fail_next_endpoint_update",
            "fail_next_transform_job",
            "alarm_during_next_bake",
            "nan_weights_next_training_job",
            "throttle",
            "server_error",
            "latency",
            "s3_error",
        }
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            for key, queue in (
                ("fail_next_training_job", self.fail_training),
                ("fail_next_endpoint_create", self.fail_endpoint_create),
                ("fail_next_endpoint_update", self.fail_endpoint_update),
                ("fail_next_transform_job", self.fail_transform),
                ("alarm_during_next_bake", self.alarm_next_bake),
            ):
                if key in spec:
                    value = spec[key]
                    reasons = value if isinstance(value, list) else [value]
                    queue.extend(str(r) for r in reasons)
            if "nan_weights_next_training_job" in spec:
                self.nan_weights_training += int(spec["nan_weights_next_training_job"])
            if "throttle" in spec:
                self.throttle = self._share_rule(spec["throttle"], 400)
            if "server_error" in spec:
                self.server_error = self._share_rule(spec["server_error"], 500)
            if "s3_error" in spec:
                rule = spec["s3_error"]
                if rule is not None and not str(rule.get("key_contains", "")):
                    raise ValueError("s3_error needs a non-empty key_contains")
                self.s3_error = None if rule is None else {
                    "key_contains": str(rule["key_contains"]), "method": str(rule.get("method", "PUT")).upper(),
                    "status": int(rule.get("status", 500)), "remaining": rule.get("count"),
                }
            if "latency" in spec:
                lat = spec["latency"]
                if isinstance(lat, int | float):
                    lat = {"seconds": lat}
                self.latency_seconds = float(lat.get("seconds", 0.0))
                self.latency_operations = frozenset(lat.get("operations") or ())

    @staticmethod
    def _share_rule(value, default_status: int) -> _ShareRule | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            value = {"share": value}
        share = float(value.get("share", 1.0 if "count" in value else 0.0))
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within [0, 1], got {share}")
        count = value.get("count")
        status = int(value.get("status", default_status))
        if default_status >= 500 and status not in (500, 502, 503, 504):
            raise ValueError("server_error status must be 500, 502, 503 or 504")
        return _ShareRule(
            share=share,
            count=None if count is None else int(count),
            operations=frozenset(value.get("operations") or ()),
            status=status,
            after=int(value.get("after", 0)),
        )

    def clear(self) -> None:
        """Drop every fault (the call counter is kept)."""
        with self._lock:
            self.fail_training.clear()
            self.fail_endpoint_create.clear()
            self.fail_endpoint_update.clear()
            self.fail_transform.clear()
            self.alarm_next_bake.clear()
            self.nan_weights_training = 0
            self.throttle = None
            self.server_error = None
            self.latency_seconds = 0.0
            self.latency_operations = frozenset()
            self.s3_error = None

    def reset(self) -> None:
        """Drop every fault and zero the call counter."""
        self.clear()
        with self._lock:
            self.calls.clear()

    # --- hooks used by the services -----------------------------------------------------
    def take_training_failure(self) -> str | None:
        with self._lock:
            return self.fail_training.popleft() if self.fail_training else None

    def take_endpoint_create_failure(self) -> str | None:
        with self._lock:
            return self.fail_endpoint_create.popleft() if self.fail_endpoint_create else None

    def take_endpoint_update_failure(self) -> str | None:
        with self._lock:
            return self.fail_endpoint_update.popleft() if self.fail_endpoint_update else None

    def take_transform_failure(self) -> str | None:
        with self._lock:
            return self.fail_transform.popleft() if self.fail_transform else None

    def take_bake_alarm(self) -> str | None:
        """The alarm a blue/green deployment sets to ALARM as it starts baking (``alarm_during_next_bake``)."""
        with self._lock:
            return self.alarm_next_bake.popleft() if self.alarm_next_bake else None

    def take_nan_weights(self) -> bool:
        with self._lock:
            if self.nan_weights_training <= 0:
                return False
            self.nan_weights_training -= 1
            return True

    def on_call(self, operation: str, probe: bool = False) -> tuple[str, int] | None:
        """Count one API call; apply latency; return (kind, HTTP status) if it must fail.

        ``kind`` is ``"throttle"`` or ``"server_error"``. A ``probe`` call (header
        ``X-Offline-Aws-Probe``: a test's monitor of the serving endpoint) is neither counted nor
        faulted, so it measures the endpoint and not the fault plan.
        """
        if probe:
            return None
        with self._lock:
            self.calls[operation] += 1
            delay = self.latency_seconds
            if self.latency_operations and operation not in self.latency_operations:
                delay = 0.0
            verdict = None
            if self.throttle is not None and self.throttle.hit(operation):
                verdict = ("throttle", self.throttle.status)
            elif self.server_error is not None and self.server_error.hit(operation):
                verdict = ("server_error", self.server_error.status)
        if delay > 0:
            time.sleep(delay)
        return verdict

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "fail_next_training_job": list(self.fail_training),
                "fail_next_endpoint_create": list(self.fail_endpoint_create),
                "fail_next_endpoint_update": list(self.fail_endpoint_update),
                "fail_next_transform_job": list(self.fail_transform),
                "alarm_during_next_bake": list(self.alarm_next_bake),
                "nan_weights_next_training_job": self.nan_weights_training,
                "throttle": self.throttle.describe() if self.throttle else None,
                "server_error": self.server_error.describe() if self.server_error else None,
                "latency": {"seconds": self.latency_seconds, "operations": sorted(self.latency_operations)},
                "s3_error": dict(self.s3_error) if self.s3_error else None,
            }

    def on_s3_call(self, method: str, path: str) -> int | None:
        """The HTTP status an S3 request must fail with (``s3_error`` fault), or None."""
        with self._lock:
            rule = self.s3_error
            if rule is None or method.upper() != rule["method"] or rule["key_contains"] not in path:
                return None
            if rule["remaining"] is not None:
                if rule["remaining"] <= 0:
                    return None
                rule["remaining"] -= 1
            return rule["status"]

    def call_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)
