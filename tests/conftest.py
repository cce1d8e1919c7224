"""Shared test set-up: an isolated AIRFLOW_HOME (SQLite) per test session (per xdist worker), inside the project;
how the two workers share the modules; the reliability report."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
_HOME = PROJECT_DIR / ".airflow" / f"test-{os.getpid()}"

# Set before anything imports airflow: tests never touch a developer's own Airflow.
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_DIR / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME}/airflow.db")
os.environ.setdefault("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(_HOME / "logs"))
_HOME.mkdir(parents=True, exist_ok=True)

# --- two workers (pytest-xdist; `make test` runs `-n 2 --dist loadfile --no-loadscope-reorder`) ----------------
# Each module on one worker (its module fixtures made once). The modules that use the native deployment
# (tests/native_deployment.py) are one unit, so one worker starts it once (each worker would otherwise start its
# own: six Airflow processes, a database, about a minute of CPU, side by side) and runs them in the serial order
# (tests/deployment expects the DAG still paused when it starts).
NATIVE_DEPLOYMENT = ("tests/browser/", "tests/deployment/", "tests/reliability/test_native_")
# xdist hands units out in collection order, each worker taking the next when it runs dry: the longest start
# first (durations of the last serial run) so both workers finish together, the many quick unit modules fill
# the end. Not listed: after these, by directory in this order.
LONGEST_FIRST = ("native-deployment", "tests/reliability/test_fault_matrix.py", "tests/infra/test_least_privilege.py",
                 "tests/reliability/test_load.py", "tests/reliability/test_process_faults.py",
                 "tests/reliability/test_bad_inputs.py")
DIRECTORY_ORDER = ("tests/reliability/", "tests/e2e/", "tests/infra/", "tests/system/", "tests/deployment/",
                   "tests/dags/", "tests/docs/", "tests/security/", "tests/unit/")


def _unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, or the native deployment's modules together."""
    module = nodeid.split("::", 1)[0]
    return "native-deployment" if module.startswith(NATIVE_DEPLOYMENT) else module


def _rank(unit: str) -> tuple[int, int]:
    if unit in LONGEST_FIRST:
        return 0, LONGEST_FIRST.index(unit)
    return 1, next((i for i, d in enumerate(DIRECTORY_ORDER) if unit.startswith(d)), len(DIRECTORY_ORDER))


def pytest_collection_modifyitems(config, items):
    """Longest units first, each unit's tests together and in their own order; the same order serially,
    so a failure seen with two workers can be replayed with one."""
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(_unit(item.nodeid), index)
    items.sort(key=lambda item: (*_rank(_unit(item.nodeid)), first_seen[_unit(item.nodeid)]))  # stable
    users = [item.nodeid for item in items if "deployment" in item.fixturenames]
    config.stash[LAST_DEPLOYMENT_USER] = users[-1] if users else None


LAST_DEPLOYMENT_USER = pytest.StashKey[str | None]()


@pytest.hookimpl(trylast=True)  # after pytest's own teardown of the test
def pytest_runtest_teardown(item, nextitem):
    """Stop the native deployment once the last test that uses it has run, not at the session's end: left
    idle, its dag-processor, scheduler and api-server keep taking CPU from the other worker's tests."""
    if item.nodeid == item.config.stash.get(LAST_DEPLOYMENT_USER, None):
        import native_deployment

        native_deployment.stop_shared(keep_files=item.session.testsfailed > 0)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the native deployment's modules as one unit.

    Not ``--dist loadgroup`` with an ``xdist_group`` mark per unit: with pytest 9.2, xdist 3.8's loadgroup
    silently groups nothing (it renames the test's ``_nodeid``, which pytest no longer reads:
    pytest-dev/pytest-xdist#1386), so the modules' tests would be spread over both workers.
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return ModuleScheduling(config, log)


# --- the reliability report, from the rows every worker wrote ----------------------------------------------------
def pytest_configure(config):
    """One id for this pytest run, seen by its workers too (they inherit the environment): the reliability
    suite's results file is emptied once per run, by whichever worker needs it first."""
    if not hasattr(config, "workerinput"):
        os.environ["PROJECT_TEST_RUN"] = uuid.uuid4().hex


def _whole_reliability_suite(session) -> bool:
    """Did this run hold every reliability test (no -k/-m, no deselect, no test picked by node id), all passed?"""
    options = session.config.option
    if any(getattr(options, name, None) for name in ("keyword", "markexpr", "deselect", "lf", "last_failed")):
        return False
    here = PROJECT_DIR / "tests" / "reliability"
    for arg in session.config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if "::" in arg or not (path == here or path in here.parents):  # one file of the suite is a part of it
            return False
    return not session.testsfailed


def pytest_sessionfinish(session, exitstatus):
    """Render the reliability report once, in the process that saw every worker's results (with xdist the
    controller, which loads this file but not tests/reliability/conftest.py): docs/reliability.md only after the
    whole suite passed; a partial run (one file, -k, a failure) renders .airflow/reliability-partial.md instead,
    so the committed document never silently loses rows."""
    if hasattr(session.config, "workerinput") or not _reliability_ran():
        return
    sys.path.insert(0, str(PROJECT_DIR / "tests" / "reliability"))
    import report

    if _whole_reliability_suite(session):
        report.render()
    else:
        report.render(report.RESULTS.parent / "reliability-partial.md")


def _reliability_ran() -> bool:
    """Did a reliability scenario of this run write rows? (``reliability_harness.claim_results`` marks the file.)"""
    results, marker = (PROJECT_DIR / ".airflow" / f"reliability-results.{ext}" for ext in ("jsonl", "run"))
    return (marker.exists() and marker.read_text() == os.environ["PROJECT_TEST_RUN"]
            and results.exists() and bool(results.read_text().strip()))
