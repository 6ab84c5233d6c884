"""Run the project's real DAGs in-process on an embedded Airflow (SQLite), for the demo.

``dag.test()`` executes every task of a DAG run in this process, through Airflow's
own task runner and Execution API, and records the run in the metadata DB just
like the scheduler would. What it does *not* do is start the DAGs that listen to
the run's asset events or ``TriggerDagRunOperator`` targets (they are recorded
and queued, not executed; STACK_NOTES §1). The caller therefore starts the
consumer DAG itself, passing the same references the scheduler would; the
compose stack's end-to-end test exercises the scheduler's own wiring.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.config import REPO_ROOT, Settings


@dataclass
class DagRunRecord:
    """What one DAG run did, with the split between task compute and orchestration."""

    dag_id: str
    run_id: str
    state: str
    wall_seconds: float
    task_states: dict[str, str] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)
    xcom: dict[str, Any] = field(default_factory=dict)

    @property
    def compute_seconds(self) -> float:
        return sum(self.task_seconds.values())

    @property
    def ok(self) -> bool:
        return self.state == "success"


def configure_embedded_airflow(settings: Settings) -> Path:
    """Point Airflow at var/airflow (SQLite) before it is imported; return AIRFLOW_HOME.

    Airflow reads its configuration when first imported, so this must run first;
    it refuses to continue if Airflow was already imported with another home.
    """
    home = settings.paths.root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    }
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != env["AIRFLOW_HOME"]:
        raise RuntimeError("Airflow was imported before configure_embedded_airflow(); call it first")
    os.environ.update(env)
    return home


def init_metadata_db() -> None:
    """Create or upgrade the embedded metadata DB (idempotent)."""
    from airflow.utils.db import initdb

    initdb()


def load_dags() -> dict[str, Any]:
    """Parse dags/ and fail loudly on any import error (a broken DAG must not be skipped)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    # As Airflow's dag processor does for a bundle: the dags folder goes on sys.path so DAG
    # files can import their shared `_common` module.
    dags_dir = REPO_ROOT / "dags"
    bag = BundleDagBag(dag_folder=str(dags_dir), bundle_path=dags_dir)
    if bag.import_errors:
        details = "\n".join(f"{path}: {err}" for path, err in bag.import_errors.items())
        raise RuntimeError(f"DAG import errors:\n{details}")
    return dict(bag.dags)


def run_dag(
    dag: Any,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    xcom_tasks: tuple[str, ...] = (),
) -> DagRunRecord:
    """Run one DAG with ``dag.test()``; collect states, task durations and selected XComs."""
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    dr = dag.test(**kwargs)
    wall = time.perf_counter() - t0
    record = DagRunRecord(dag.dag_id, dr.run_id, str(dr.state), wall)
    for ti in dr.get_task_instances():
        record.task_states[ti.task_id] = str(ti.state)
        if ti.start_date and ti.end_date:
            record.task_seconds[ti.task_id] = (ti.end_date - ti.start_date).total_seconds()
    if xcom_tasks:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = (
                session.query(XComModel)
                .filter(XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id)
                .filter(XComModel.task_id.in_(xcom_tasks), XComModel.key == "return_value")
                .all()
            )
            for row in rows:
                record.xcom[row.task_id] = XComModel.deserialize_value(row)
    return record
