"""One emulator and one Airflow home for the whole reliability suite; the report is rendered at the end.

The scenarios that need separate Airflow processes (``test_native_faults.py``) use the native
deployment of ``tests/native_deployment.py``, shared with ``tests/deployment`` and ``tests/browser``.
"""

from __future__ import annotations

from pathlib import Path

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


def _whole_suite(session) -> bool:
    """Did this session run every reliability test (no -k/-m, no deselect, no test picked by node id)?"""
    options = session.config.option
    if any(getattr(options, name, None) for name in ("keyword", "markexpr", "deselect", "lf", "last_failed")):
        return False
    here = Path(__file__).resolve().parent
    for arg in session.config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if "::" in arg or not (path == here or path in here.parents):  # one file of the suite is a part of it
            return False
    return not session.testsfailed


def pytest_sessionfinish(session, exitstatus):
    """Render the report from this session's rows: docs/reliability.md only after the whole suite passed.

    A partial run (one file, -k, a failure) renders to .airflow/reliability-partial.md instead, so the
    committed document never silently loses rows.
    """
    if RESULTS.exists() and RESULTS.read_text().strip():
        import report

        if _whole_suite(session):
            report.render()
        else:
            report.render(RESULTS.parent / "reliability-partial.md")
