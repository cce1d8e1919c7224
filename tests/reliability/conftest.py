"""One emulator and one Airflow home for the whole reliability suite; the report is rendered at the end."""

from __future__ import annotations

import pytest
from reliability_harness import RESULTS, Reliability


@pytest.fixture(scope="session")
def rel(tmp_path_factory):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")
    harness = Reliability(tmp_path_factory.mktemp("reliability-home"), tmp_path_factory.mktemp("emulator-state"))
    try:
        yield harness
    finally:
        harness.stop()


def pytest_sessionfinish(session, exitstatus):
    """Render docs/reliability.md from this session's rows (only when reliability scenarios ran)."""
    if RESULTS.exists() and RESULTS.read_text().strip():
        import report

        report.render()
