"""Judge a collected window against its reference in Evidently; save reports; record the result.

Damaged or missing evidence never raises past :func:`run_monitoring`: too many corrupt log rows,
too few served predictions, or a failure of Evidently, MLflow or the reference becomes a result
with status ``error`` / ``insufficient_data`` and the reason, which the policy turns into a
recorded ``no_decision``. A bad month is visible, not a crash that a retry would paper over and
not a silent pass.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context
from pipelines.core.periods import Window, as_of_iso
from pipelines.monitoring.contracts import CollectedWindow
from pipelines.monitoring.evidence import Performance, WindowResult
from pipelines.monitoring.records import window_dir, window_of, write_result
from pipelines.monitoring.reference import Reference, Scorer

log = get_logger(__name__)


def _base_result(window: Window, as_of: str, collected: CollectedWindow) -> WindowResult:
    return WindowResult(
        window=window.id,
        ordinal=window.ordinal,
        as_of=as_of,
        status="ok",
        model_version=collected.champion_version,
        n_predictions=int(collected.rows_served),
        data_quality={
            "rows_logged": collected.rows_logged,
            "rows_error": collected.rows_error,
            "rows_corrupt": collected.rows_corrupt,
            "rows_duplicate": collected.rows_duplicate,
            "model_versions": dict(collected.model_versions),
        },
    )


def _finish(settings: Settings, result: WindowResult, seconds: float) -> WindowResult:
    write_result(settings, result, seconds)
    level = log.info if result.status == "ok" else log.warning
    level("window monitored", status=result.status, reason=result.reason, seconds=round(seconds, 2))
    return result


def run_monitoring(
    settings: Settings,
    window_id: str,
    *,
    as_of: str | None = None,
    reference_batches: list[str] | None = None,
    collected: CollectedWindow | None = None,
    scorer: Scorer | None = None,
) -> WindowResult:
    """Compare the window with the reference in Evidently; save reports; return the result.

    The result is also written to ``<window>/result.json`` (with the run's ``seconds``) and
    recorded as the window's ``monitoring_window`` event.

    Args:
        window_id: batch id of the window (e.g. ``2013-05``).
        as_of: labels count when available before this instant (default: the window's end).
        reference_batches: used only when the champion carries no training-window tag.
        collected: the output of :func:`~pipelines.monitoring.inputs.collect_window` (read again
            from the log when None or collected for another as-of time).
        scorer: scores reference rows instead of loading the champion from MLflow (tests,
            embedded callers that hold the model already).
    """
    from pipelines.monitoring.inputs import collect_window

    t0 = time.perf_counter()
    window = window_of(settings, window_id)
    cutoff = as_of_iso(as_of, window)
    with log_context(window=window.id):
        if collected is None or collected.as_of != cutoff:
            collected = collect_window(settings, window.id, cutoff)
        result = _base_result(window, cutoff, collected)
        cfg = settings.monitoring
        if int(collected.rows_corrupt) > cfg.max_corrupt_rows:
            result.status, result.reason = (
                "error",
                f"corrupted prediction log: {collected.rows_corrupt} unreadable rows in window "
                f"{window.id} (tolerated {cfg.max_corrupt_rows}); e.g. {list(collected.corrupt_examples)} "
                f"in {collected.prediction_log}",
            )
            return _finish(settings, result, time.perf_counter() - t0)
        if result.n_predictions < cfg.min_window_rows:
            result.status = "insufficient_data"
            result.reason = (
                f"no served predictions in window {window.id} ({collected.prediction_log})"
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
        _finish(settings, result, time.perf_counter() - t0)
        _alert_on_drift(settings, result)
        return result


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
    from pipelines.monitoring.evidence import ColumnDrift
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
    collected: CollectedWindow,
    reference_batches: list[str] | None,
    scorer: Scorer | None,
) -> None:
    from pipelines.monitoring import reports, workspace
    from pipelines.monitoring.reference import prediction_source, reference_frame, resolve_reference

    ref = resolve_reference(settings, reference_batches, result.model_version)
    served = pd.read_parquet(collected.served_uri)
    labelled = pd.read_parquet(collected.labelled_uri)
    reference = reference_frame(settings, ref, scorer)
    result.data_quality["labels_immature"] = collected.labels_immature
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
