"""boto3 clients the emulated SageMaker uses to reach S3 and CloudWatch Logs, like any client would.

Pointing them at the emulator's own URL keeps SageMaker honest: it only sees what a real
client put in S3, through the same wire protocol.
"""

from __future__ import annotations

import secrets
import threading

import boto3
from botocore.config import Config

from . import DEFAULT_REGION

# In the User-Agent of every client below (random per process, so no other process sends it): while the
# emulator restores ``--state-dir`` it serves only its own requests (``server.Dispatcher``).
INTERNAL_AGENT = f"offline-aws-internal/{secrets.token_hex(8)}"


class AwsClients:
    """Cached boto3 clients for ``endpoint_url`` (None = boto3's default, e.g. under moto's mock).

    Clients are thread-safe once built; building them (sessions) is not, hence the lock.
    """

    def __init__(self, endpoint_url: str | None = None, region: str = DEFAULT_REGION,
                 credentials: tuple[str, str] = ("test", "test")):
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials  # an enforcing emulator's service identity (iam_enforcement)
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], object] = {}

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        with self._lock:
            if key not in self._clients:
                session = boto3.session.Session(
                    aws_access_key_id=self.credentials[0], aws_secret_access_key=self.credentials[1],
                    region_name=key[1],
                )
                self._clients[key] = session.client(
                    service,
                    endpoint_url=self.endpoint_url,
                    region_name=key[1],
                    config=Config(retries={"total_max_attempts": 3, "mode": "standard"},
                                  user_agent_extra=INTERNAL_AGENT),
                )
            return self._clients[key]
