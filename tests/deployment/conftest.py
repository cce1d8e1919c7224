"""The native deployment (tests/native_deployment.py), shared with tests/browser for the session."""

from __future__ import annotations

import native_deployment
import pytest


@pytest.fixture(scope="session")
def deployment(request):
    started = native_deployment.acquire()
    yield started
    native_deployment.release(keep_files=request.session.testsfailed > 0)
