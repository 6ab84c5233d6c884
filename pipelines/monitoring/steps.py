"""Monitoring steps: what the ``automate_drift_monitoring`` tasks (and the replay demo) call.

Per window, in order::

    collect_window(settings, "2013-05", as_of=...)      # prediction log -> parquet refs
    run_monitoring(settings, "2013-05", as_of=..., collected=...)   # Evidently -> WindowResult
    decide_retrain(settings, "2013-05")                  # policy -> recorded decision (+ trigger conf)

Each returns a small JSON-able dict. State lives in files, so every step is idempotent
and a re-run of a window replaces its own outputs:

* ``<monitoring>/windows/<window>/`` served.parquet, labelled.parquet, result.json, and the
  Evidently HTML reports / snapshots;
* ``<events>/monitoring_window/<window>.json`` and ``<events>/retrain_decision/<window>.json``
  (the policy's memory: earlier windows' decisions are read back from these);
* ``<monitoring>/retrain_lock.json``: the retrain in flight (released by a ``gate_verdict``
  event recorded after it, by ``release_retrain_lock``, or after ``retrain_lock_ttl_hours``).

Damaged or missing evidence never raises past the step: it becomes a recorded
``no_decision`` with the reason and an alert, so a bad month is visible, not a crash
that a retry would paper over and not a silent pass.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context, read_events, record_event, write_json_atomic
from pipelines.core.periods import Window, as_of_iso, parse_window
from pipelines.data.validated import list_published
from pipelines.monitoring.policy import (
    Decision,
    PastWindow,
    Performance,
    PolicyHistory,
    RetrainLock,
    WindowResult,
    decide,
)
from pipelines.monitoring.reference import Reference, Scorer

log = get_logger(__name__)

WINDOW_EVENT = "monitoring_window"
DECISION_EVENT = "retrain_decision"
LOCK_FILE = "retrain_lock.json"
TRAINING_DAG = "automate_training"


def window_of(settings: Settings, window_id: str) -> Window:
    c = settings.dataset
    return parse_window(window_id, c.batch_frequency, c.event_timezone)


def window_dir(settings: Settings, window_id: str) -> Path:
    return settings.paths.monitoring / "windows" / window_id


# --------------------------------------------------------------------------- 1. collect
def collect_window(settings: Settings, window_id: str, as_of: str | None = None) -> dict[str, Any]:
    """Read the window's served rows and matured labels; persist them; return references and counts."""
    from pipelines.monitoring.inputs import collect

    window = window_of(settings, window_id)
    cutoff = as_of_iso(as_of, window)
    out_dir = window_dir(settings, window.id)
    with log_context(window=window.id):
        data = collect(settings, window, cutoff)
        out_dir.mkdir(parents=True, exist_ok=True)
        served_path, labelled_path = out_dir / "served.parquet", out_dir / "labelled.parquet"
        for frame, path in ((data.served, served_path), (data.labelled, labelled_path)):
            tmp = path.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
        summary = {**data.summary(), "served_uri": str(served_path), "labelled_uri": str(labelled_path)}
        log.info(
            "window collected",
            rows=summary["rows_served"],
            corrupt=data.n_corrupt,
            labels=summary["labels_mature"],
            champion_version=data.champion_version,
        )
        return summary


# --------------------------------------------------------------------------- 2. monitor
def _base_result(window: Window, as_of: str, collected: dict[str, Any]) -> WindowResult:
    return WindowResult(
        window=window.id,
        ordinal=window.ordinal,
        as_of=as_of,
        status="ok",
        model_version=collected.get("champion_version"),
        n_predictions=int(collected.get("rows_served", 0)),
        data_quality={
            k: collected.get(k)
            for k in ("rows_logged", "rows_error", "rows_corrupt", "rows_duplicate", "model_versions")
        },
    )


def _finish(settings: Settings, result: WindowResult, seconds: float) -> dict[str, Any]:
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
    level = log.info if result.status == "ok" else log.warning
    level("window monitored", status=result.status, reason=result.reason, seconds=round(seconds, 2))
    return doc


def run_monitoring(
    settings: Settings,
    window_id: str,
    *,
    as_of: str | None = None,
    reference_batches: list[str] | None = None,
    collected: dict[str, Any] | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Compare the window with the reference in Evidently; save reports; return the WindowResult dict.

    Args:
        window_id: batch id of the window (e.g. ``2013-05``).
        as_of: labels count when available before this instant (default: the window's end).
        reference_batches: used only when the champion carries no training-window tag.
        collected: the output of :func:`collect_window` (read again from the log when None).
        scorer: scores reference rows instead of loading the champion from MLflow (tests,
            embedded callers that hold the model already).
    """
    t0 = time.perf_counter()
    window = window_of(settings, window_id)
    cutoff = as_of_iso(as_of, window)
    with log_context(window=window.id):
        if collected is None or collected.get("as_of") != cutoff:
            collected = collect_window(settings, window.id, cutoff)
        result = _base_result(window, cutoff, collected)
        cfg = settings.monitoring
        if int(collected.get("rows_corrupt", 0)) > cfg.max_corrupt_rows:
            result.status, result.reason = (
                "error",
                f"corrupted prediction log: {collected['rows_corrupt']} unreadable rows in window "
                f"{window.id} (tolerated {cfg.max_corrupt_rows}); e.g. {collected.get('corrupt_examples')} "
                f"in {collected.get('prediction_log')}",
            )
            return _finish(settings, result, time.perf_counter() - t0)
        if result.n_predictions < cfg.min_window_rows:
            result.status = "insufficient_data"
            result.reason = (
                f"no served predictions in window {window.id} ({collected.get('prediction_log')})"
                if result.n_predictions == 0
                else f"only {result.n_predictions} served predictions in window {window.id} "
                f"(monitoring.min_window_rows={cfg.min_window_rows})"
            )
            return _finish(settings, result, time.perf_counter() - t0)
        try:
            _evaluate(settings, window, result, collected, reference_batches, scorer)
        except Exception as exc:  # Evidently, MLflow, the reference: record, never guess
            log.error("monitoring failed", error=f"{type(exc).__name__}: {exc}")
            result.status = "error"
            result.reason = f"monitoring failed: {type(exc).__name__}: {str(exc)[:500]}"
        doc = _finish(settings, result, time.perf_counter() - t0)
        _alert_on_drift(settings, result)
        return doc


def evaluate_frames(
    settings: Settings,
    window: Window,
    result: WindowResult,
    served: pd.DataFrame,
    labelled: pd.DataFrame,
    ref: Reference,
    reference: pd.DataFrame,
    *,
    quality: bool = True,
) -> dict[str, Any]:
    """Fill ``result`` with Evidently's drift, quality and performance figures; return the snapshots.

    In memory only (no files): the monitoring step saves what this returns; the false-positive
    test calls it directly on resampled windows (``quality=False`` skips the data-quality
    metrics, which inform people but no decision).
    """
    from pipelines.monitoring import reports
    from pipelines.monitoring.policy import ColumnDrift
    from pipelines.monitoring.reference import important_features

    cfg, contract = settings.monitoring, settings.dataset
    monitored = result.model_version
    result.reference_batches = list(ref.batches)
    result.reference_key = ref.key
    important, important_source = important_features(settings, ref)
    result.important_features = important
    # Features drift on every served row (any variant); the prediction only on the rows of
    # the version the reference was scored with.
    current = reports.sample(served[contract.features.all], cfg.current_sample_rows, cfg.sample_seed)
    pred_note = ""
    if "prediction" not in reference:
        pred_note = "no model version to score the reference with"
    else:
        on_version = served[served["model_version"] == monitored] if monitored else served.iloc[0:0]
        if len(on_version) == 0:
            pred_note = f"no served predictions of version {monitored} in the window"
            reference = reference.drop(columns=["prediction"])
        else:
            preds = reports.sample(on_version[["prediction"]], cfg.current_sample_rows, cfg.sample_seed)
            current["prediction"] = preds["prediction"].reindex(range(len(current)))
    plan = reports.drift_plan(settings, current, reference, important)
    stamp = pd.Timestamp(window.start).tz_convert("UTC").tz_localize(None).to_pydatetime()
    meta = {"window": window.id, "model_version": str(monitored), "reference": ",".join(ref.batches)}
    snap = reports.run_drift_report(
        current, reference, plan, timestamp=stamp, metadata=meta, tags=["drift"], quality=quality
    )
    figures = reports.drift_figures(snap, plan)
    result.feature_drift = {c: d for c, d in figures["columns"].items() if c != reports.PREDICTION}
    result.drift_share = figures["drift_share"]
    pt = cfg.prediction_test
    result.prediction_drift = figures["columns"].get(reports.PREDICTION) or ColumnDrift(
        "prediction", pt.method, pt.threshold, None, None, pred_note or "n/a"
    )
    result.data_quality.update(
        {
            "rows_sampled": figures["rows"],
            "missing_share": figures["missing"],
            "drifted_features": figures["drifted"],
            "features_skipped": plan.skipped,
            "important_source": important_source,
            "reference_source": ref.source,
        }
    )
    snapshots: dict[str, Any] = {"drift": snap}

    metric = cfg.performance_metric or settings.gate.for_task(contract.target.task).primary_metric
    _, higher = reports.metric_spec(settings, metric)
    baseline = ref.baseline.get(metric)
    notes = []
    if baseline is None:
        notes.append(
            f"version {ref.model_version} has no metric.{metric} tag" if ref.model_version else "no champion"
        )
    n_imm = int(result.data_quality.get("labels_immature") or 0)
    value: float | None = None
    if len(labelled) >= cfg.min_mature_labels:
        if contract.target.task == "classification" and labelled["label"].nunique() < 2:
            notes.append("matured labels hold one class only")
        else:
            snapshots["performance"], value = reports.run_performance_report(
                settings, labelled, metric, timestamp=stamp, metadata=meta, tags=["performance"]
            )
    result.performance = Performance(metric, higher, value, baseline, len(labelled), n_imm, "; ".join(notes))
    return snapshots


def _evaluate(
    settings: Settings,
    window: Window,
    result: WindowResult,
    collected: dict[str, Any],
    reference_batches: list[str] | None,
    scorer: Scorer | None,
) -> None:
    from pipelines.monitoring import reports, workspace
    from pipelines.monitoring.reference import prediction_source, reference_frame, resolve_reference

    ref = resolve_reference(settings, reference_batches, result.model_version)
    served = pd.read_parquet(collected["served_uri"])
    labelled = pd.read_parquet(collected["labelled_uri"])
    reference = reference_frame(settings, ref, scorer)
    result.data_quality["labels_immature"] = collected.get("labels_immature", 0)
    result.data_quality["prediction_reference"] = (
        prediction_source(settings, ref) if "prediction" in reference else None
    )
    snapshots = evaluate_frames(settings, window, result, served, labelled, ref, reference)

    folder = window_dir(settings, window.id)
    for kind in ("drift", "performance"):
        if kind in snapshots:
            result.artifacts.update(reports.save_snapshot(snapshots[kind], folder, kind))
        else:  # a re-run without matured labels must not leave an older run's report behind
            for stale in (f"{kind}.html", f"{kind}.snapshot.json"):
                (folder / stale).unlink(missing_ok=True)
    metric = result.performance.metric if result.performance else None
    evidently_metric = reports.metric_spec(settings, metric)[0] if metric else None
    important = [
        c
        for c in result.important_features
        if result.feature_drift.get(c) and result.feature_drift[c].score is not None
    ]
    ids = workspace.publish(settings, window.id, snapshots, important, evidently_metric)
    result.artifacts.update({f"workspace_{k}": v for k, v in ids.items()})
    result.artifacts["workspace"] = str(workspace.workspace_path(settings))


def _alert_on_drift(settings: Settings, result: WindowResult) -> None:
    if result.status != "ok":
        return
    drifted = [
        d.describe() for c, d in result.feature_drift.items() if c in result.important_features and d.detected
    ]
    if result.prediction_drift is not None and result.prediction_drift.detected:
        drifted.append(result.prediction_drift.describe())
    if not drifted:
        return
    from pipelines.core.alerts import send_alert

    send_alert(
        settings,
        "drift",
        f"window {result.window}: drift on {len(drifted)} monitored column(s): " + "; ".join(drifted),
        key=result.window,
        severity="warning",
        window=result.window,
        report=result.artifacts.get("drift_html"),
        model_version=result.model_version,
    )


# --------------------------------------------------------------------------- 3. decide
def load_result(settings: Settings, window_id: str) -> WindowResult:
    path = window_dir(settings, window_id) / "result.json"
    if not path.exists():
        raise FileNotFoundError(f"window {window_id} was not monitored: no {path} (run run_monitoring first)")
    return WindowResult.from_dict(json.loads(path.read_text()))


def policy_history(settings: Settings, exclude: str | None = None) -> PolicyHistory:
    """Earlier decisions (from the recorded events) and the retrain in flight, if any."""
    past = [
        PastWindow(e["window"], int(e["ordinal"]), e.get("reference_key", ""), e.get("violated"), e["action"])
        for e in read_events(settings.paths.events, DECISION_EVENT)
        if e.get("window") != exclude and "ordinal" in e
    ]
    return PolicyHistory(tuple(sorted(past, key=lambda w: w.ordinal)), active_lock(settings))


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


def release_retrain_lock(settings: Settings, reason: str) -> bool:
    """Drop the lock by hand (a retrain that will never report back); returns whether one existed."""
    path = settings.paths.monitoring / LOCK_FILE
    if not path.exists():
        return False
    lock = json.loads(path.read_text())
    path.unlink()
    log.warning("retrain lock released", window=lock.get("window"), reason=reason)
    return True


def training_request(settings: Settings, window_id: str) -> tuple[list[str], str] | None:
    """(train batches, holdout) for a retrain after this window: the newest published batch up to
    the window is the holdout, the ``training.window_batches`` before it are trained on."""
    order = window_of(settings, window_id).ordinal
    freq, tz = settings.dataset.batch_frequency, settings.dataset.event_timezone
    usable = [b for b in list_published(settings) if parse_window(b, freq, tz).ordinal <= order]
    if len(usable) < 2:
        return None
    holdout = usable[-1]
    return usable[:-1][-settings.training.window_batches :], holdout


def decide_retrain(settings: Settings, window_id: str) -> dict[str, Any]:
    """Apply the policy to the window's result, record the decision, take the lock, alert."""
    cfg = settings.monitoring
    with log_context(window=window_id):
        result = load_result(settings, window_id)
        history = policy_history(settings, exclude=window_id)
        decision = decide(history, result, cfg)
        trigger_conf: dict[str, Any] | None = None
        if decision.action == "retrain":
            request = training_request(settings, window_id)
            if request is None:
                decision = replace(
                    decision,
                    action="no_decision",
                    reasons=[
                        *decision.reasons,
                        f"cannot form a training window: fewer than 2 published batches up to {window_id}",
                    ],
                )
            else:
                train, holdout = request
                trigger_conf = {
                    "reason": f"drift monitor, window {window_id}: " + " | ".join(decision.reasons)[:900],
                    "window": train,
                    "holdout": holdout,
                }
                _take_lock(settings, window_id)
        doc = {
            **decision.to_dict(),
            "trigger_conf": trigger_conf,
            "trigger_dag_id": TRAINING_DAG if trigger_conf else None,
            "model_version": result.model_version,
            "report": result.artifacts.get("drift_html"),
        }
        record_event(settings.paths.events, DECISION_EVENT, window_id, **doc)
        _alert_on_decision(settings, decision, doc)
        log.info("retrain decision", action=decision.action, reasons=decision.reasons)
        return doc


def _take_lock(settings: Settings, window_id: str) -> None:
    path = settings.paths.monitoring / LOCK_FILE
    if path.exists():
        current = json.loads(path.read_text())
        if current.get("window") == window_id:
            return  # re-run of the window that triggered: keep the original time
    write_json_atomic(
        path, {"window": window_id, "triggered_at": datetime.now(UTC).isoformat(timespec="seconds")}
    )


def _alert_on_decision(settings: Settings, decision: Decision, doc: dict[str, Any]) -> None:
    from pipelines.core.alerts import Severity, send_alert

    severity: Severity = "info" if decision.action == "no_retrain" else "warning"
    if decision.action == "no_retrain" and decision.violated:
        severity = "warning"  # violations held back by hysteresis or a guard are worth a look
    send_alert(
        settings,
        "retrain_decision",
        f"window {decision.window}: {decision.action} — " + " | ".join(decision.reasons),
        key=decision.window,
        severity=severity,
        window=decision.window,
        action=decision.action,
        blocked_by=decision.blocked_by,
        report=doc.get("report"),
        trigger_conf=doc.get("trigger_conf"),
    )


def decision_for(settings: Settings, window_id: str) -> dict[str, Any] | None:
    """The recorded decision of a window (what a caller chaining DAGs by hand reads back)."""
    path = settings.paths.events / DECISION_EVENT / f"{window_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


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


# --------------------------------------------------------------------------- DAG task entry points
def resolve_window_id(
    settings: Settings, requested: str | None, interval_start: Any = None, interval_end: Any = None
) -> str:
    """The ``window`` param, else the batch period that just closed at the run's data interval end.

    A monthly run at 2013-06-01 monitors 2013-05: with a real interval its midpoint, with a
    trigger-style schedule (start == end) the instant just before the run.
    """
    if requested and requested.strip():
        return window_of(settings, requested.strip()).id
    if interval_start is None or interval_end is None:
        raise ValueError("no window given and the run has no data interval to derive one from")
    from pipelines.data.source import batch_ids

    start, end = pd.Timestamp(interval_start), pd.Timestamp(interval_end)
    instant = start + (end - start) / 2 if end > start else end - pd.Timedelta(microseconds=1)
    c = settings.dataset
    return str(batch_ids(pd.Series([instant.isoformat()]), c.batch_frequency, c.event_timezone).iloc[0])


def _reference_param(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [b.strip() for b in value.split(",") if b.strip()] or None
    return [str(b) for b in value] or None


def collect_task(
    params: dict[str, Any], interval_start: Any = None, interval_end: Any = None
) -> dict[str, Any]:
    from pipelines.config import load_settings

    settings = load_settings()
    window_id = resolve_window_id(settings, params.get("window"), interval_start, interval_end)
    return collect_window(settings, window_id, params.get("as_of") or None)


def monitor_task(collected: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    from pipelines.config import load_settings

    doc = run_monitoring(
        load_settings(),
        collected["window"],
        as_of=collected["as_of"],
        reference_batches=_reference_param(params.get("reference")),
        collected=collected,
    )
    # What travels on: references and headline figures, not the whole result.
    keep = ("window", "status", "reason", "model_version", "drift_share", "n_predictions", "artifacts")
    return {k: doc.get(k) for k in keep}


def decide_task(monitored: dict[str, Any]) -> dict[str, Any]:
    from pipelines.config import load_settings

    doc = decide_retrain(load_settings(), monitored["window"])
    keep = ("window", "action", "reasons", "blocked_by", "trigger_conf", "trigger_dag_id", "report")
    return {k: doc.get(k) for k in keep}


def branch_task(decision: dict[str, Any]) -> str:
    """Task id the DAG follows: trigger training only on a recorded ``retrain`` with a conf."""
    return (
        "trigger_training"
        if decision.get("action") == "retrain" and decision.get("trigger_conf")
        else "no_retrain"
    )
