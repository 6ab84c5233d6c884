"""Wiring shared by every DAG: asset definitions, default task arguments, the step runner.

Only Airflow's light Task SDK is imported here; nothing from pipelines/ runs at
parse time. The ``_`` prefix keeps this file from being read as a DAG file
(it holds no DAG), and Airflow puts the dags folder on ``sys.path`` so DAG files
can import it as ``_common``.
"""

from __future__ import annotations

from collections.abc import Callable
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


def call(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one step: JSON from XCom in, the step's typed contracts rebuilt, JSON out.

    ``step`` is a direct reference (``from pipelines.training import steps`` inside the task, then
    ``call(steps.train, window)``), so go-to-definition and mypy follow it, and nothing from
    ``pipelines/`` is imported at parse time. An error the kernel calls final
    (``pipelines.core.errors.is_final``: a rejected batch or canary, a bad window, a malformed id)
    fails the task at once with ``AirflowFailException``, since every retry would fail the same
    way; anything else, such as an unreachable registry or gateway, keeps Airflow's retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.core.contracts import invoke
    from pipelines.core.errors import is_final

    try:
        return invoke(step, *args, **kwargs)
    except Exception as exc:
        if is_final(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def event_extras(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """The ``extra`` of every triggering asset event, oldest first, as plain dicts.

    Steps receive these instead of Airflow's event objects, so they stay testable without Airflow.
    An empty list means the run was not started by an asset event.
    """
    if not triggering_asset_events:
        return []
    return [
        dict(getattr(ev, "extra", None) or {})
        for events in triggering_asset_events.values()
        for ev in events or []
    ]
