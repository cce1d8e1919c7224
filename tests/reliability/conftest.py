"""One emulator and one Airflow home for the reliability suite (per xdist worker); tests/conftest.py renders the
report at the end.

The scenarios that need separate Airflow processes (``test_native_faults.py``) use the native
deployment of ``tests/native_deployment.py``, shared with ``tests/deployment`` and ``tests/browser``.
"""

from __future__ import annotations

import native_deployment
import pytest
from reliability_harness import NativeEmulator, Reliability, claim_results


@pytest.fixture(scope="session")
def results():
    """The run's results file, emptied once per pytest run (both xdist workers append to it): every scenario
    appends its row; tests/conftest.py renders the report from it at the end."""
    return claim_results()


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
