"""One emulator and one Airflow home for the whole reliability suite; the report is rendered at the end.

The scenarios that need separate Airflow processes (``test_native_faults.py``) use the native
deployment of ``tests/native_deployment.py``, shared with ``tests/deployment`` and ``tests/browser``.
"""

from __future__ import annotations

import native_deployment
import pytest
from reliability_harness import RESULTS, NativeEmulator, Reliability


@pytest.fixture(scope="session")
def results():
    """The session's results file, emptied once: every scenario of the session appends its row."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")
    return RESULTS


@pytest.fixture(scope="session")
def rel(results, tmp_path_factory):
    harness = Reliability(tmp_path_factory.mktemp("reliability-home"), tmp_path_factory.mktemp("emulator-state"))
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture(scope="session")
def deployment(request):
    """The native deployment (started once per session, whichever suite asks first)."""
    started = native_deployment.acquire()
    yield started
    native_deployment.release(keep_files=request.session.testsfailed > 0)


@pytest.fixture(scope="session")
def native(results, deployment):
    return NativeEmulator(deployment.emulator_url, deployment.bucket)


def pytest_sessionfinish(session, exitstatus):
    """Render docs/reliability.md from this session's rows (only when reliability scenarios ran)."""
    if RESULTS.exists() and RESULTS.read_text().strip():
        import report

        report.render()
