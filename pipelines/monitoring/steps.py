"""The drift-monitoring DAG's entry points: one typed function per task, each loads its settings.

Per window, in order::

    collect(window, as_of, interval_start, interval_end) -> CollectedWindow   # log -> parquet refs
    monitor(collected, reference)                         -> MonitoredWindow   # Evidently, reports
    decide(monitored, trigger_dag_id)                     -> RetrainDecision   # policy, record, lock
    branch(decision)                                      -> RetrainAction     # the DAG's path

The work happens in :mod:`~pipelines.monitoring.inputs`, :mod:`~pipelines.monitoring.monitor`
and :mod:`~pipelines.monitoring.retrain`; these functions only turn the orchestrator's values
(params, the data interval) into theirs. A malformed window is an ``InvalidInputError``, which
the orchestrator does not retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.monitoring.contracts import CollectedWindow, MonitoredWindow, RetrainAction, RetrainDecision


def resolve_window_id(
    requested: str | None, interval_start: Any, interval_end: Any, frequency: str, timezone: str
) -> str:
    """The ``window`` param, else the batch period that just closed at the run's data interval end.

    A monthly run at 2013-06-01 monitors 2013-05: with a real interval its midpoint, with a
    trigger-style schedule (start == end) the instant just before the run.

    Raises:
        InvalidInputError: a malformed window id, or no window and no interval to derive one from.
    """
    from pipelines.core.periods import parse_window, period_for_interval

    if requested and requested.strip():
        return parse_window(requested.strip(), frequency, timezone).id
    return period_for_interval(interval_start, interval_end, frequency, timezone, closed_end=True)


def _reference_batches(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [b.strip() for b in value.split(",") if b.strip()] or None
    return [str(b) for b in value] or None


def collect(
    window: str | None = None,
    as_of: str | None = None,
    interval_start: Any = None,
    interval_end: Any = None,
) -> CollectedWindow:
    """Collect the requested window (or the one the data interval closed) from the prediction log."""
    from pipelines.config import load_settings
    from pipelines.monitoring.inputs import collect_window

    settings = load_settings()
    c = settings.dataset
    window_id = resolve_window_id(window, interval_start, interval_end, c.batch_frequency, c.event_timezone)
    if not (window and window.strip()):
        _skip_unbatched_period(settings, window_id)
    return collect_window(settings, window_id, as_of or None)


def _skip_unbatched_period(settings: Any, window_id: str) -> None:
    """A scheduled run whose period has no configured batch skips (no evidence can exist for it).

    Without this, the scheduler's own run for the current calendar period recorded a
    ``no_decision`` and an alert for a period that simply has no data. An explicit ``window``
    param is never skipped: asking for a window stays a judgement (``no_decision`` if empty).
    """
    from pipelines.core.errors import NothingToDoError
    from pipelines.data.landing import available_batches

    known = available_batches(settings)
    if window_id not in known:
        span = f"{known[0]}..{known[-1]}" if known else "none"
        raise NothingToDoError(
            f"skipped: the scheduled period is window {window_id!r}, which is not among the "
            f"configured batches ({span}); trigger with conf {{'window': ...}} for another one"
        )


def monitor(collected: CollectedWindow, reference: str | Sequence[str] | None = None) -> MonitoredWindow:
    """Judge the collected window in Evidently; pass on its status and where its reports are."""
    from pipelines.config import load_settings
    from pipelines.core.metrics import emit_window
    from pipelines.monitoring.monitor import run_monitoring

    settings = load_settings()
    result = run_monitoring(
        settings,
        collected.window,
        as_of=collected.as_of,
        reference_batches=_reference_batches(reference),
        collected=collected,
    )
    emit_window(settings, result)
    return MonitoredWindow(
        window=result.window,
        status=result.status,
        reason=result.reason,
        model_version=result.model_version,
        drift_share=result.drift_share,
        n_predictions=result.n_predictions,
        artifacts=dict(result.artifacts),
    )


def decide(monitored: MonitoredWindow, trigger_dag_id: str | None = None) -> RetrainDecision:
    """Apply the retrain policy to the monitored window and record the decision."""
    from pipelines.config import load_settings
    from pipelines.core.metrics import emit_retrain_decision
    from pipelines.monitoring.records import decision_for
    from pipelines.monitoring.retrain import decide_retrain

    settings = load_settings()
    decision = decide_retrain(settings, monitored.window, trigger_dag_id=trigger_dag_id)
    checks = (decision_for(settings, decision.window) or {}).get("checks") or []
    violated = [str(c["name"]) for c in checks if c.get("status") == "violated"]
    emit_retrain_decision(settings, decision.window, decision.action.value, violated, decision.blocked_by)
    return decision


def branch(decision: RetrainDecision) -> RetrainAction:
    """The path after the decision (a ``RETRAIN`` always carries its training request)."""
    return decision.action
