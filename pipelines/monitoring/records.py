"""Where monitoring keeps its state: window folders, recorded events, the retrain lock, the history.

State lives in files, so every step is idempotent and a re-run of a window replaces its own
outputs:

* ``<monitoring>/windows/<window>/`` served.parquet, labelled.parquet, result.json, and the
  Evidently HTML reports / snapshots;
* ``<events>/monitoring_window/<window>.json`` and ``<events>/retrain_decision/<window>.json``
  (the policy's memory: earlier windows' decisions are read back from these);
* ``<monitoring>/retrain_lock.json``: the retrain in flight (released by a ``gate_verdict``
  event recorded after it, by :func:`release_retrain_lock`, or after ``retrain_lock_ttl_hours``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.core.observability import get_logger, read_events, record_event, write_json_atomic
from pipelines.core.periods import Window, parse_window
from pipelines.monitoring.evidence import WindowResult
from pipelines.monitoring.policy import PastWindow, PolicyHistory, RetrainLock

log = get_logger(__name__)

WINDOW_EVENT = "monitoring_window"
DECISION_EVENT = "retrain_decision"
LOCK_FILE = "retrain_lock.json"


def window_of(settings: Settings, window_id: str) -> Window:
    c = settings.dataset
    return parse_window(window_id, c.batch_frequency, c.event_timezone)


def window_dir(settings: Settings, window_id: str) -> Path:
    return settings.paths.monitoring / "windows" / window_id


# --------------------------------------------------------------------------- window results
def write_result(settings: Settings, result: WindowResult, seconds: float) -> dict[str, Any]:
    """Write ``result.json`` and the ``monitoring_window`` event; return the document written."""
    doc = result.to_dict()
    doc["seconds"] = round(seconds, 3)
    write_json_atomic(window_dir(settings, result.window) / "result.json", doc)
    drift = {c: d.score for c, d in result.feature_drift.items() if c in result.important_features}
    record_event(
        settings.paths.events,
        WINDOW_EVENT,
        result.window,
        window=result.window,
        status=result.status,
        reason=result.reason,
        as_of=result.as_of,
        model_version=result.model_version,
        reference_batches=result.reference_batches,
        rows=result.n_predictions,
        drift_share=result.drift_share,
        important_drift=drift,
        prediction_drift=result.prediction_drift.score if result.prediction_drift else None,
        performance=result.performance.to_dict() if result.performance else None,
        report=result.artifacts.get("drift_html"),
    )
    return doc


def load_result(settings: Settings, window_id: str) -> WindowResult:
    path = window_dir(settings, window_id) / "result.json"
    if not path.exists():
        raise FileNotFoundError(f"window {window_id} was not monitored: no {path} (run run_monitoring first)")
    return WindowResult.from_dict(json.loads(path.read_text()))


# --------------------------------------------------------------------------- decisions, lock
def policy_history(settings: Settings, exclude: str | None = None) -> PolicyHistory:
    """Earlier decisions (from the recorded events) and the retrain in flight, if any."""
    past = [
        PastWindow(e["window"], int(e["ordinal"]), e.get("reference_key", ""), e.get("violated"), e["action"])
        for e in read_events(settings.paths.events, DECISION_EVENT)
        if e.get("window") != exclude and "ordinal" in e
    ]
    return PolicyHistory(tuple(sorted(past, key=lambda w: w.ordinal)), active_lock(settings))


def record_decision(settings: Settings, window_id: str, doc: dict[str, Any]) -> None:
    record_event(settings.paths.events, DECISION_EVENT, window_id, **doc)


def decision_for(settings: Settings, window_id: str) -> dict[str, Any] | None:
    """The recorded decision of a window (what a caller chaining DAGs by hand reads back)."""
    path = settings.paths.events / DECISION_EVENT / f"{window_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def active_lock(settings: Settings) -> RetrainLock | None:
    """The retrain lock unless a gate verdict was recorded after it or it outlived its TTL."""
    path = settings.paths.monitoring / LOCK_FILE
    if not path.exists():
        return None
    lock = json.loads(path.read_text())
    triggered = datetime.fromisoformat(lock["triggered_at"])
    if datetime.now(UTC) - triggered > timedelta(hours=settings.monitoring.retrain_lock_ttl_hours):
        log.warning("retrain lock expired", window=lock["window"], triggered_at=lock["triggered_at"])
        return None
    for ev in read_events(settings.paths.events, "gate_verdict"):
        if ev.get("recorded_at", "") >= lock["triggered_at"]:
            return None
    return RetrainLock(lock["window"], lock["triggered_at"])


def take_lock(settings: Settings, window_id: str) -> None:
    path = settings.paths.monitoring / LOCK_FILE
    if path.exists():
        current = json.loads(path.read_text())
        if current.get("window") == window_id:
            return  # re-run of the window that triggered: keep the original time
    write_json_atomic(
        path, {"window": window_id, "triggered_at": datetime.now(UTC).isoformat(timespec="seconds")}
    )


def release_retrain_lock(settings: Settings, reason: str) -> bool:
    """Drop the lock by hand (a retrain that will never report back); returns whether one existed."""
    path = settings.paths.monitoring / LOCK_FILE
    if not path.exists():
        return False
    lock = json.loads(path.read_text())
    path.unlink()
    log.warning("retrain lock released", window=lock.get("window"), reason=reason)
    return True


# --------------------------------------------------------------------------- history
def history_table(settings: Settings) -> list[dict[str, Any]]:
    """One row per monitored window (for the CLI and the demo's summary)."""
    results = {e["window"]: e for e in read_events(settings.paths.events, WINDOW_EVENT) if "window" in e}
    decisions = {e["window"]: e for e in read_events(settings.paths.events, DECISION_EVENT) if "window" in e}
    rows = []
    for w in sorted(set(results) | set(decisions)):
        r, d = results.get(w, {}), decisions.get(w, {})
        perf = r.get("performance") or {}
        rows.append(
            {
                "window": w,
                "status": r.get("status"),
                "model_version": r.get("model_version"),
                "rows": r.get("rows"),
                "drift_share": r.get("drift_share"),
                "important_drift": r.get("important_drift"),
                "prediction_drift": r.get("prediction_drift"),
                "metric": perf.get("metric"),
                "value": perf.get("value"),
                "baseline": perf.get("baseline"),
                "labels": perf.get("n_labels"),
                "action": d.get("action"),
                "reasons": d.get("reasons"),
            }
        )
    return rows
