"""Test harness: one throwaway Airflow home and runtime root per test session.

Environment variables are set here, before anything imports Airflow, because
Airflow reads its configuration at import time (see shared STACK_NOTES §1).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SESSION_ROOT = Path(tempfile.mkdtemp(prefix="mlops-test-"))

os.environ.update(
    AIRFLOW_HOME=str(SESSION_ROOT / "airflow"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{SESSION_ROOT / 'airflow' / 'airflow.db'}",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    MLOPS__PATHS__ROOT=str(SESSION_ROOT / "var"),
    MLFLOW_DISABLE_TELEMETRY="true",
    DO_NOT_TRACK="true",
    GX_ANALYTICS_ENABLED="False",
)
os.environ.pop("MLOPS_CONFIG", None)
(SESSION_ROOT / "airflow").mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def session_root() -> Path:
    return SESSION_ROOT


@pytest.fixture(scope="session")
def settings():  # type: ignore[no-untyped-def]
    """Default (nycflights13) settings with a session-wide runtime root."""
    from pipelines.config import load_settings

    return load_settings()


@pytest.fixture
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Default settings whose runtime root is a fresh folder for this one test."""
    from pipelines.config import load_settings

    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    return load_settings()


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[None]:
    """A migrated Airflow metadata DB (SQLite) shared by every DAG test in the session."""
    from airflow.utils.db import initdb

    initdb()
    yield


@pytest.fixture(scope="session")
def dagbag(airflow_db: None):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))
