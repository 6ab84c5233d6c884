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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's throwaway root (set MLOPS_KEEP_TEST_ROOT=1 to inspect it)."""
    if not os.environ.get("MLOPS_KEEP_TEST_ROOT"):
        import shutil

        shutil.rmtree(SESSION_ROOT, ignore_errors=True)
    else:
        print(f"\ntest runtime root kept: {SESSION_ROOT}")


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
    # BundleDagBag puts the dags folder on sys.path as Airflow 3's dag processor does for a bundle
    # (a plain DagBag does not, so `from _common import ...` would fail only in tests).
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags")


# --------------------------------------------------------------------------- quality gate (issue 2)
PUBLISHED_TEST_BATCHES = ["2013-01", "2013-02", "2013-03", "2013-04"]


@pytest.fixture(scope="session")
def published_batches(settings) -> list[dict]:  # type: ignore[no-untyped-def]
    """2013-01..2013-04 landed and passed through the real GX quality gate into the session root.

    Returns the ValidatedBatch dicts (``pipelines.data.validated``), oldest first. Training and
    serving tests build on these instead of re-validating; idempotent, so calling it from several
    test modules costs one validation per batch per session.
    """
    from pipelines.data.landing import land_batch
    from pipelines.data.validated import published
    from pipelines.quality import validate_batch

    out = []
    for batch_id in PUBLISHED_TEST_BATCHES:
        land_batch(settings, batch_id)
        validate_batch(settings, batch_id)
        batch = published(settings, batch_id)
        assert batch is not None, f"quality gate did not publish {batch_id}"
        out.append(batch.to_dict())
    return out


SECOND_DATASET_CONFIG = REPO / "tests" / "data" / "second_dataset" / "pipeline.yaml"


@pytest.fixture(scope="session")
def second_dataset_settings(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Settings of the second (non-flights, regression) dataset, with its own runtime root."""
    from pipelines.config import load_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS__PATHS__ROOT", str(tmp_path_factory.mktemp("second-dataset") / "var"))
        return load_settings(SECOND_DATASET_CONFIG)


@pytest.fixture(scope="session")
def second_dataset_published(second_dataset_settings) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every batch (2023-01..06) of the second dataset landed and passed through the real gate."""
    from pipelines.data.landing import available_batches, land_batch
    from pipelines.data.validated import published
    from pipelines.quality import validate_batch

    out = []
    for batch_id in available_batches(second_dataset_settings):
        land_batch(second_dataset_settings, batch_id)
        validate_batch(second_dataset_settings, batch_id)
        batch = published(second_dataset_settings, batch_id)
        assert batch is not None, f"quality gate did not publish {batch_id} of the second dataset"
        out.append(batch.to_dict())
    return out
