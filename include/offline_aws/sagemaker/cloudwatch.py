"""Write a container's stdout to CloudWatch Logs, as SageMaker does, through boto3.

The Amazon provider's ``print_log`` reads ``/aws/sagemaker/TrainingJobs`` streams named
``<job>/algo-1-<epoch>``; writing there is what makes the training log show in Airflow.
"""

from __future__ import annotations

import threading
import time

from ..aws_clients import AwsClients

FLUSH_LINES = 100
FLUSH_SECONDS = 1.0


class LogWriter:
    """Buffered lines -> PutLogEvents; creates the group and stream on first flush."""

    def __init__(self, aws: AwsClients, group: str, stream: str):
        self.aws = aws
        self.group = group
        self.stream = stream
        self._buffer: list[dict] = []
        self._created = False
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._buffer.append({"timestamp": int(time.time() * 1000), "message": line})
            due = len(self._buffer) >= FLUSH_LINES or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            events, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
            if not events:
                return
            logs = self.aws.client("logs")
            if not self._created:
                for call, kwargs in (
                    (logs.create_log_group, {"logGroupName": self.group}),
                    (logs.create_log_stream, {"logGroupName": self.group, "logStreamName": self.stream}),
                ):
                    try:
                        call(**kwargs)
                    except logs.exceptions.ResourceAlreadyExistsException:
                        pass
                self._created = True
            logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)
