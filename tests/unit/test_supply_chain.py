"""Every lock carries sha256 hashes and every install checks them (issue 24, finding 9).

A lock without hashes installs whatever bytes a registry or mirror serves for a pinned version;
with them, pip and uv refuse different bytes. The checks read the files that do the installing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.txt", "requirements-dev.txt", "requirements-uv.txt", "infra/requirements-lint.txt",
         "tests/e2e/sdk/requirements-sdk.txt")


def requirements(lock: Path) -> dict[str, list[str]]:
    """{'name==version': [sha256 hashes]} of a pip-format lock (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", lock.read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement, *options = line.split()
            entries[requirement] = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
    return entries


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pinned_distribution_has_its_hashes(lock):
    entries = requirements(PROJECT / lock)
    assert entries, lock
    for requirement, hashes in entries.items():
        assert re.fullmatch(r"[A-Za-z0-9._-]+(\[[a-z0-9,_-]+\])?==\S+", requirement), (lock, requirement)
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (lock, requirement)


def test_the_lock_target_generates_hashes_for_every_lock():
    makefile = (PROJECT / "Makefile").read_text()
    assert re.search(r"^COMPILE := .*uv pip compile .*--generate-hashes", makefile, re.MULTILINE)
    for lock in LOCKS:
        assert f"$(COMPILE) {lock.removesuffix('.txt')}.in -o {lock}" in makefile, lock


def test_every_install_requires_the_hashes():
    bootstrap = (PROJECT / "scripts" / "bootstrap.sh").read_text().replace("\\\n", " ")
    assert re.search(r"pip install .*--require-hashes -r requirements-uv\.txt", bootstrap)
    assert re.search(r"uv pip install .*--require-hashes .*-r requirements\.txt -r requirements-dev\.txt", bootstrap)
    dockerfile = (PROJECT / "Dockerfile").read_text()
    assert re.search(r"pip install .*--require-hashes -r /tmp/sagemaker-retrain/requirements\.txt", dockerfile)
    # the project's own distributions are built with the lock's setuptools, not a fresh unpinned one
    assert "--no-build-isolation" in bootstrap and "--no-build-isolation" in dockerfile
    # the tools' own venvs (checkov, the SageMaker SDK) are all made by one function, from their locks
    assert '"--require-hashes"' in (PROJECT / "tests" / "locked_venv.py").read_text()
    for own_venv in ("tests/infra/test_template.py", "tests/e2e/test_sagemaker_sdk_estimators.py"):
        assert "venv_from_lock(" in (PROJECT / own_venv).read_text(), own_venv
