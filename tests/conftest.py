"""Shared test set-up: an isolated AIRFLOW_HOME (SQLite) per test session, inside the project."""

from __future__ import annotations

import os
from pathlib import Path

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
