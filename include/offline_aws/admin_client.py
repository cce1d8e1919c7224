"""Client of the emulator's admin routes (``/_offline_aws/*``), for tests, benchmarks and scripts."""

from __future__ import annotations

import json
import os
import urllib.request

from .settings import ADMIN_TOKEN_ENV as TOKEN_ENV
from .settings import ADMIN_TOKEN_HEADER as TOKEN_HEADER


def call_admin(url: str, route: str, body: dict | None = None, method: str | None = None,
               timeout: float = 30, token: str | None = None) -> dict:
    """``method`` (GET without a body, POST with one by default) ``url/_offline_aws/route``; the JSON answer.

    Sends the admin token (``token``, else ``$OFFLINE_AWS_ADMIN_TOKEN``) when there is one.
    """
    token = token or os.environ.get(TOKEN_ENV)
    headers = {"Content-Type": "application/json", **({TOKEN_HEADER: token} if token else {})}
    request = urllib.request.Request(
        f"{url}/_offline_aws/{route}",
        data=None if body is None else json.dumps(body).encode(),
        method=method or ("GET" if body is None else "POST"),
        headers=headers,
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")
