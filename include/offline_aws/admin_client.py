"""Client of the emulator's admin routes (``/_offline_aws/*``), for tests, benchmarks and scripts."""

from __future__ import annotations

import json
import urllib.request


def call_admin(url: str, route: str, body: dict | None = None, method: str | None = None,
               timeout: float = 30) -> dict:
    """``method`` (GET without a body, POST with one by default) ``url/_offline_aws/route``; the JSON answer."""
    request = urllib.request.Request(
        f"{url}/_offline_aws/{route}",
        data=None if body is None else json.dumps(body).encode(),
        method=method or ("GET" if body is None else "POST"),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")
