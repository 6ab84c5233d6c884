"""Wiring shared by every DAG: asset definitions, default task arguments, the step runner.

Only Airflow's light Task SDK is imported here; nothing from pipelines/ runs at
parse time. The ``_`` prefix keeps this file from being read as a DAG file
(it holds no DAG), and Airflow puts the dags folder on ``sys.path`` so DAG files
can import it as ``_common``.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset

# A batch passed the quality gate; the event's extra carries {"batch_id", "uri", "rows", ...}.
VALIDATED_BATCH = Asset(name="validated_batch", uri="mlops://validated-batch")
# A candidate passed the evaluation gate and holds the @challenger alias; extra: {"version", ...}.
CHALLENGER_MODEL = Asset(name="challenger_model", uri="mlops://challenger-model")

START_DATE = pendulum.datetime(2013, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
}


def run_step(module: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``<module>.<name>``; an error the module's ``is_final(exc)`` calls final ends the task.

    A rejected canary, a bad training window or a search space that does not fit fail the same
    way on every try, so they raise ``AirflowFailException`` (no retries); anything else, such as
    an unreachable registry or gateway, keeps Airflow's retries. The module is imported inside
    the task, never at parse time.
    """
    from airflow.sdk.exceptions import AirflowFailException

    steps = importlib.import_module(module)
    try:
        return getattr(steps, name)(*args, **kwargs)
    except Exception as exc:
        if steps.is_final(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise
