"""Wiring shared by every DAG: asset definitions, default task arguments, the step runner.

Only Airflow's light Task SDK (and PyYAML, to read the schedule from the dataset contract) is
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

#: Cron of each batch frequency: one run at the start of each period, in the contract's zone.
BATCH_SCHEDULES = {"month": "0 0 1 * *", "week": "0 0 * * 1", "day": "0 0 * * *"}


def dataset_contract() -> dict[str, Any]:
    """The schedule-relevant ``dataset`` keys of the config in use, read as plain YAML.

    Parse time must stay cheap (no pydantic settings, no pandas), so only the YAML file
    (``MLOPS_CONFIG`` or config/pipeline.yaml) and the matching ``MLOPS__DATASET__*`` variables are
    read, with the loader's precedence (environment over file).
    """
    import os
    from pathlib import Path

    import yaml

    default = Path(__file__).resolve().parent.parent / "config" / "pipeline.yaml"
    path = Path(os.environ.get("MLOPS_CONFIG") or default)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:  # no config on this host: the steps fail with the real reason at run time
        raw = {}
    contract = dict(raw.get("dataset") or {})
    for key in ("batch_frequency", "event_timezone"):
        env = os.environ.get(f"MLOPS__DATASET__{key.upper()}")
        if env:
            contract[key] = env
    return contract


def first_batch_start(contract: dict[str, Any]) -> pendulum.DateTime:
    """Start of the first configured batch, in the contract's zone (2000-01-01 when none is listed).

    With ``catchup=False`` the scheduler only ever creates the latest due run, so the start date
    only has to be no later than the data; taking the first batch's start keeps it honest.
    """
    from contextlib import suppress
    from datetime import date

    from pipelines.core.period_ids import period_start

    tz = str(contract.get("event_timezone") or "UTC")
    batches = [str(b) for b in contract.get("batches") or []]
    day = date(2000, 1, 1)
    # A malformed first batch is not a parse error: the steps refuse it at run time, with its reason.
    with suppress(ValueError):
        if batches:
            day = period_start(batches[0], str(contract.get("batch_frequency") or "month"))
    return pendulum.datetime(day.year, day.month, day.day, tz=tz)


def batch_schedule(contract: dict[str, Any]) -> str:
    """Cron of the contract's batch frequency (an unknown one fails at run time, in the steps)."""
    return BATCH_SCHEDULES.get(str(contract.get("batch_frequency") or "month"), BATCH_SCHEDULES["month"])


_CONTRACT = dataset_contract()
#: Period DAGs (quality, monitoring) run once per batch period of the contract, from its first batch.
START_DATE = first_batch_start(_CONTRACT)
BATCH_SCHEDULE = batch_schedule(_CONTRACT)


def task_succeeded(context: Any) -> None:
    """Task callback: the outcome as a metric (``mlops_airflow_task_last_success``), imported lazily."""
    from pipelines.core.metrics import task_outcome_callback

    task_outcome_callback(context, success=True)


def task_failed(context: Any) -> None:
    """Task callback after the last try failed: the metric the ``AirflowTaskFailed`` alert reads."""
    from pipelines.core.metrics import task_outcome_callback

    task_outcome_callback(context, success=False)


DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "on_success_callback": task_succeeded,
    "on_failure_callback": task_failed,
}


def call(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one step: JSON from XCom in, the step's typed contracts rebuilt, JSON out.

    ``step`` is a direct reference (``from pipelines.training import steps`` inside the task, then
    ``call(steps.train, window)``), so go-to-definition and mypy follow it, and nothing from
    ``pipelines/`` is imported at parse time. An error the kernel calls final
    (``pipelines.core.errors.is_final``: a rejected batch or canary, a bad window, a malformed id)
    fails the task at once with ``AirflowFailException``, since every retry would fail the same
    way; anything else, such as an unreachable registry or gateway, keeps Airflow's retries.
    A step with nothing to do (``is_skip``: a scheduled period without a batch) skips the task
    with its reason; the downstream tasks are skipped with it and no failure alert fires.
    """
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines.core.contracts import invoke
    from pipelines.core.errors import is_final, is_skip

    try:
        return invoke(step, *args, **kwargs)
    except Exception as exc:
        if is_skip(exc):  # a scheduled period with no batch (yet): skipped with its reason, no alert
            raise AirflowSkipException(f"{type(exc).__name__}: {exc}") from exc
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
