"""Runtime settings of the emulator (time scale), shared by the state machines.

A single mutable object so the admin route and tests can change the pace of a running
emulator without restarting it.
"""

from __future__ import annotations

import os
import threading

from .limits import check_time_scale

TIME_SCALE_ENV = "OFFLINE_AWS_TIME_SCALE"
# The admin routes' token (see admin.py): its environment variable and the header that carries it.
ADMIN_TOKEN_ENV = "OFFLINE_AWS_ADMIN_TOKEN"
ADMIN_TOKEN_HEADER = "X-Offline-AWS-Admin-Token"


def _env_time_scale(default: float = 1.0) -> float:
    raw = os.environ.get(TIME_SCALE_ENV)
    if raw is None or raw == "":
        return default
    try:
        return check_time_scale(raw)
    except ValueError as exc:
        raise ValueError(f"{TIME_SCALE_ENV}: {exc}") from None


class Clock:
    """Scales the emulated durations: 0 = as fast as possible, 1 = realistic seconds."""

    def __init__(self, time_scale: float | None = None):
        self.time_scale = _env_time_scale() if time_scale is None else time_scale

    @property
    def time_scale(self) -> float:
        return self._time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        """Finite, 0 to ``limits.MAX_TIME_SCALE``: NaN or inf would make ``pause`` wait forever."""
        self._time_scale = check_time_scale(value)

    def pause(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of emulated time; return True if ``interrupt`` was set meanwhile.

        The scale is re-read every tick, so a test can hold a phase open with a huge scale and
        release it by setting the scale to 0.
        """
        interrupt = interrupt or threading.Event()
        done = 0.0
        while True:
            scale = self.time_scale
            if scale <= 0 or done >= seconds:
                return interrupt.is_set()
            step = min(0.05, (seconds - done) * scale)
            if interrupt.wait(step):
                return True
            done += step / scale
