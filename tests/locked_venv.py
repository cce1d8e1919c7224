"""A tool's own venv, from its own hashed lock, for tools whose pins conflict with Airflow's (checkov, the
SageMaker Python SDK): made with the project's uv, reinstalled only when the lock changes."""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def venv_from_lock(venv: Path, lock: Path) -> Path:
    """``venv`` holding exactly ``lock`` (``--require-hashes``); its ``bin/`` directory.

    Under a file lock beside the venv (``.venv-NAME.lock``): two pytest workers, or two runs, asking at
    once would otherwise both ``uv venv --clear`` the same directory; the second waits, then finds it made.
    """
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp, python = venv / ".lock-sha256", venv / "bin" / "python"
    with open(venv.with_name(venv.name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == digest:
            return venv / "bin"
        uv = VENV_BIN / "uv"
        subprocess.run([uv, "venv", "-q", "--clear", "--python", sys.executable, venv], check=True, timeout=300)
        subprocess.run([uv, "pip", "install", "-q", "--require-hashes", "--python", python, "-r", lock],
                       check=True, timeout=600)
        stamp.write_text(digest)
    return venv / "bin"
