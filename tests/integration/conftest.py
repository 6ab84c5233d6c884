"""Session fixtures of the integration tier: Airflow's metadata DB and DagBag, GX-published months.

Each is built once per session and only read by the tests (a test that changes published data
works on its own copy or restores what it changed), so any test can run alone, in any order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


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

    bag = BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags")
    _PARAM_DEFAULTS.update(
        {
            (dag.dag_id, task.task_id, key): copy.deepcopy(task.params.get_param(key).value)
            for dag in bag.dags.values()
            for task in dag.tasks
            for key in task.params
        }
    )
    return bag


# (dag id, task id, param) -> the value the DAG file declares.
_PARAM_DEFAULTS: dict[tuple[str, str, str], Any] = {}


@pytest.fixture(autouse=True)
def _dag_params_as_declared(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that ran DAGs, put every task's params back to the DAG file's defaults.

    ``dag.test(run_conf=...)`` resolves the conf into the task's own ``Param`` objects (Airflow's
    ``ParamsDict.__setitem__`` updates a Param in place), so in one process a later run of the same
    DAG object would inherit an earlier run's conf, e.g. ``rollback=True``. A scheduled task runs in
    a fresh process and never sees that; the tests share one DagBag, so they reset it instead.
    """
    yield
    if "dagbag" not in request.fixturenames:
        return
    bag = request.getfixturevalue("dagbag")
    for (dag_id, task_id, key), value in _PARAM_DEFAULTS.items():
        bag.dags[dag_id].get_task(task_id).params.get_param(key).value = copy.deepcopy(value)


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
