"""Write one channel's rows into local part files of about ``part_bytes``, handing each on when finished.

A channel may write several files side by side ("lanes"), so the train channel has one file per
training instance for ``ShardedByS3Key``. ``on_part(channel, path)`` is called as each file is
closed, so the caller can upload it while the rest is being prepared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Small enough that uploading starts early and little is left to send after the last chunk
# (every open part file is sent at the end), large enough that requests stay few.
PART_BYTES = 16 * 1024 * 1024


class ChannelWriter:
    """One channel's part files; ``lanes`` files are written side by side (for sharding)."""

    def __init__(self, folder: Path, channel: str, lanes: int, part_bytes: int, suffix: str,
                 on_part: Callable[[str, Path], None] | None):
        self.folder, self.channel, self.part_bytes, self.suffix = folder, channel, part_bytes, suffix
        self.on_part = on_part
        self.handles: list[IO[bytes] | None] = [None] * lanes
        self.paths: list[Path | None] = [None] * lanes
        self.parts: list[Path] = []
        self.rows = 0

    @property
    def lanes(self) -> int:
        return len(self.handles)

    def write(self, lane: int, payload: bytes | memoryview | np.ndarray, rows: int) -> None:  # bytes-like
        if not rows:
            return
        handle = self.handles[lane]
        if handle is not None and handle.tell() >= self.part_bytes:
            self._finish(lane)
            handle = None
        if handle is None:
            path = self.folder / f"{self.channel}-part-{len(self.parts):05d}{self.suffix}"
            self.parts.append(path)
            self.paths[lane] = path
            handle = self.handles[lane] = path.open("wb")
        handle.write(payload)
        self.rows += rows

    def _finish(self, lane: int) -> None:
        handle, path = self.handles[lane], self.paths[lane]
        if handle is None:
            return
        handle.close()
        self.handles[lane] = self.paths[lane] = None
        if self.on_part is not None:
            self.on_part(self.channel, path)

    def close(self, notify: bool = True) -> None:
        for lane in range(self.lanes):
            if notify:
                self._finish(lane)
            elif self.handles[lane] is not None:
                self.handles[lane].close()
                self.handles[lane] = None
