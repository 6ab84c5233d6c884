"""Read-only queries on Airflow's metadata DB: the DAG runs the scorecard counts.

The only module that knows Airflow's tables. It connects with the URL the configuration names
(``optimize.airflow_db_url``), the one Airflow itself uses (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``)
or the embedded demo's SQLite file, and never writes. Unreachable is a stated reason, not an error:
the card is still written without the figures that need it.
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.config import Settings


def airflow_db_url(settings: Settings) -> str | None:
    if settings.optimize.airflow_db_url:
        return settings.optimize.airflow_db_url
    env = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if env:
        return env
    local = settings.paths.root / "airflow" / "airflow.db"
    return f"sqlite:///{local}" if local.exists() else None


def airflow_runs(settings: Settings) -> dict[str, Any]:
    """DAG runs from the Airflow metadata DB (read-only), or the reason they are unavailable."""
    url = airflow_db_url(settings)
    if url is None:
        return {"available": False, "reason": "no Airflow metadata DB configured or found"}
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT dag_id, run_id, run_type, state, start_date, end_date FROM dag_run")
            ).fetchall()
        engine.dispose()
    except Exception as exc:
        safe = sa.make_url(url).render_as_string(hide_password=True)
        return {
            "available": False,
            "reason": f"Airflow DB {safe} unreadable: {type(exc).__name__}: {exc}"[:400],
        }
    runs = [
        {
            "dag_id": r[0],
            "run_id": r[1],
            "run_type": str(r[2]),
            "state": str(r[3]),
            "start_date": str(r[4]) if r[4] else None,
            "end_date": str(r[5]) if r[5] else None,
        }
        for r in rows
    ]
    return {"available": True, "source": sa.make_url(url).render_as_string(hide_password=True), "runs": runs}
