"""Capacity planning: request rate per hour → seasonal forecast → replica count → (optional) scaling.

The series is the prediction log's requests counted per hour of their *business*
time (``event_time``: the simulated time of the request in the replay), because
that is the clock on which production traffic would follow the flight schedule's
daily and weekly rhythm; wall-clock ``ts`` only reflects how fast the replay ran.

The forecaster (Holt-Winters, additive seasonality) is always reported beside a
naive seasonal baseline (the same hour of the previous season) on a holdout, so
a reader can see whether the model earns its keep. The replica count follows
from arithmetic a reader can redo: peak forecast rate × (1 + headroom) divided by
the throughput one replica sustained in a load test of the real gateway.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger

log = get_logger(__name__)


def hourly_counts(times: pd.Series, timezone: str) -> pd.Series:
    """Requests per local hour, with hours that had no request filled with 0.

    Hours are cut in the dataset's own time zone (the schedule follows local
    clocks, so a UTC series would shift by an hour at each DST change).
    """
    if times.empty:
        return pd.Series(dtype=float)
    ts = pd.to_datetime(times, utc=True, format="ISO8601").dt.tz_convert(timezone).dt.tz_localize(None)
    counts = ts.dt.floor("h").value_counts().sort_index()
    full = pd.date_range(counts.index.min(), counts.index.max(), freq="h")
    return counts.reindex(full, fill_value=0).astype(float).rename("requests")


def _errors(forecast: np.ndarray, actual: np.ndarray) -> dict[str, float | int | None]:
    """MAE, WAPE and MAPE (MAPE only over hours with traffic: night hours have none)."""
    err = np.abs(forecast - actual)
    nonzero = actual > 0
    total = float(actual.sum())
    return {
        "mae": float(err.mean()),
        "wape": float(err.sum() / total) if total > 0 else None,
        "mape": float((err[nonzero] / actual[nonzero]).mean()) if nonzero.any() else None,
        "mape_hours": int(nonzero.sum()),
    }


def _holt_winters(train: pd.Series, season: int, horizon: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        # Non-convergence of the smoothing-parameter search is common on near-deterministic
        # schedules; the holdout comparison below is what judges the fit, not the optimizer.
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            train.to_numpy(),
            trend=None,
            seasonal="add",
            seasonal_periods=season,
            initialization_method="estimated",
        ).fit()
        out = np.asarray(model.forecast(horizon), dtype=float)
    return np.clip(out, 0.0, None)


def _naive_seasonal(train: pd.Series, season: int, horizon: int) -> np.ndarray:
    last = train.to_numpy()[-season:]
    return np.tile(last, horizon // season + 1)[:horizon].astype(float)


@dataclass
class Forecast:
    """Outcome of one forecasting run; ``status`` is "ok" or "not_enough_data"."""

    status: str
    reason: str
    history_hours: int
    season_hours: int
    holdout_hours: int
    horizon_hours: int
    holdout: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_used: str | None = None
    forecast_start: str | None = None
    forecast: list[float] = field(default_factory=list)
    naive_forecast: list[float] = field(default_factory=list)
    peak_per_hour: float | None = None
    peak_hour: str | None = None
    observed_peak_per_hour: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def forecast_next_period(
    series: pd.Series,
    *,
    season: int,
    horizon: int,
    holdout: int,
    tie_tolerance: float,
) -> Forecast:
    """Back-test Holt-Winters against the naive seasonal baseline, then forecast ``horizon`` hours.

    The method used for the plan is Holt-Winters when its holdout MAE is at most
    ``(1 + tie_tolerance)`` times the baseline's; otherwise the baseline is used and
    the report says so (a seasonal model that loses to "same hour last week" must
    not drive the replica count).
    """
    need = 2 * season + holdout
    out = Forecast(
        status="not_enough_data",
        reason="",
        history_hours=len(series),
        season_hours=season,
        holdout_hours=holdout,
        horizon_hours=horizon,
    )
    if len(series) < need or float(series.sum()) == 0:
        out.reason = (
            f"not enough data: {len(series)} hourly points with {int(series.sum())} requests; "
            f"need >= {need} (2 seasons of {season} h + a {holdout} h holdout)"
        )
        return out
    train, test = series.iloc[:-holdout], series.iloc[-holdout:]
    actual = test.to_numpy()
    hw_err = _errors(_holt_winters(train, season, holdout), actual)
    naive_err = _errors(_naive_seasonal(train, season, holdout), actual)
    hw_ok = hw_err["mae"] <= naive_err["mae"] * (1 + tie_tolerance)  # type: ignore[operator]
    method = "holt_winters" if hw_ok else "naive_seasonal"
    hw_future = _holt_winters(series, season, horizon)
    naive_future = _naive_seasonal(series, season, horizon)
    plan = hw_future if hw_ok else naive_future
    start = pd.Timestamp(series.index[-1]) + pd.Timedelta(hours=1)
    peak_i = int(np.argmax(plan))
    verdict = (
        f"Holt-Winters holdout MAE {hw_err['mae']:.3f} vs naive seasonal {naive_err['mae']:.3f}: "
        + ("beats or ties the baseline" if hw_ok else "worse than the baseline, so the baseline is used")
        + f" (tie tolerance {tie_tolerance:.0%})"
    )
    out.status, out.reason, out.method_used = "ok", verdict, method
    out.holdout = {"holt_winters": hw_err, "naive_seasonal": naive_err}
    out.forecast_start = start.isoformat()
    out.forecast = [round(float(x), 3) for x in hw_future]
    out.naive_forecast = [float(x) for x in naive_future]
    out.peak_per_hour = float(plan[peak_i])
    out.peak_hour = (start + pd.Timedelta(hours=peak_i)).isoformat()
    out.observed_peak_per_hour = float(series.max())
    return out


def wall_clock_peak_rps(ts: pd.Series, bucket: str = "1min") -> float | None:
    """Highest mean request rate over ``bucket`` windows of wall-clock time (what the gateway saw).

    In a replay this is far above the business-time rate (months pass in minutes), so it
    is reported beside the forecast as the load the service actually had to carry.
    """
    if ts.empty:
        return None
    t = pd.to_datetime(ts, utc=True, format="ISO8601")
    counts = t.dt.floor(bucket).value_counts()
    return float(counts.max()) / pd.Timedelta(bucket).total_seconds()


@dataclass(frozen=True)
class ReplicaPlan:
    """The recommendation and every number it was computed from."""

    replicas: int
    required_rps: float
    peak_rps: float
    per_replica_rps: float
    headroom: float
    min_replicas: int
    max_replicas: int
    capped: bool
    arithmetic: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend_replicas(
    peak_per_hour: float,
    per_replica_rps: float,
    *,
    headroom: float,
    min_replicas: int,
    max_replicas: int,
) -> ReplicaPlan:
    """ceil(peak/3600 × (1 + headroom) / per-replica throughput), clamped to [min, max].

    Headroom covers what an hourly mean hides (bursts within the hour, forecast
    error, one replica lost in a rolling restart).
    """
    if per_replica_rps <= 0 or not math.isfinite(per_replica_rps):
        raise ValueError(f"per-replica throughput must be a positive measured figure, got {per_replica_rps}")
    peak_rps = peak_per_hour / 3600.0
    required = peak_rps * (1 + headroom)
    raw = math.ceil(required / per_replica_rps) if required > 0 else 0
    replicas = min(max(raw, min_replicas), max_replicas)
    return ReplicaPlan(
        replicas=replicas,
        required_rps=required,
        peak_rps=peak_rps,
        per_replica_rps=per_replica_rps,
        headroom=headroom,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        capped=raw > max_replicas,
        arithmetic=(
            f"peak {peak_per_hour:.1f} req/h = {peak_rps:.4f} req/s; x (1 + {headroom:.0%} headroom) = "
            f"{required:.4f} req/s; / {per_replica_rps:.1f} req/s per replica = "
            f"{required / per_replica_rps:.4f} -> ceil {raw}; clamped to [{min_replicas}, {max_replicas}] "
            f"-> {replicas}"
        ),
    )


def covered_tail(series: pd.Series, max_gap_hours: int) -> tuple[pd.Series, str]:
    """The newest stretch of the series without a silence longer than ``max_gap_hours``.

    Night hours without flights are real zeros; a day without a single request is a
    stretch the log does not cover (a replay that sent a sample of each month), and
    filling it with zeros would teach the forecaster a traffic pattern that never was.
    """
    if series.empty:
        return series, "empty series"
    zero = series.to_numpy() == 0
    run, cut = 0, 0
    for i, z in enumerate(zero):
        run = run + 1 if z else 0
        if run > max_gap_hours:
            cut = i + 1
    tail = series.iloc[cut:]
    nonzero = np.flatnonzero(tail.to_numpy() > 0)
    tail = tail.iloc[: nonzero[-1] + 1] if len(nonzero) else tail.iloc[:0]
    if cut == 0:
        return tail, f"the whole log ({len(tail)} h) has no silence over {max_gap_hours} h"
    return tail, (
        f"newest {len(tail)} h used: the log is silent for more than {max_gap_hours} h before "
        f"{series.index[cut - 1].isoformat()} (not covered)"
    )


def request_series(settings: Settings, source: str = "prediction_log") -> tuple[pd.Series, dict[str, Any]]:
    """Hourly counts of served predictions by business time, and facts about where they came from.

    ``source="validated_batches"`` counts the rows of every published batch instead
    (what the traffic would be if every entity were scored once): a what-if, labelled
    as such in the report, for when the log does not cover enough time yet.
    """
    contract = settings.dataset
    info: dict[str, Any] = {"source": source}
    if source == "validated_batches":
        from pipelines.data.validated import list_published, load_batches

        batches = list_published(settings)
        times = load_batches(settings, batches)[contract.event_time] if batches else pd.Series(dtype=str)
        info.update(batches=batches, rows=len(times), rows_per_request=1.0)
    else:
        from pipelines.core.predlog import read_predictions

        df = read_predictions(settings, include_errors=False)
        times = df["event_time"].dropna()
        per_request = df.groupby("request_id").size() if not df.empty else pd.Series(dtype=float)
        info.update(
            rows=len(df),
            rows_without_event_time=int(df["event_time"].isna().sum()),
            requests=int(df["request_id"].nunique()),
            rows_per_request=float(per_request.median()) if len(per_request) else None,
            wall_clock_peak_per_s=wall_clock_peak_rps(df["ts"]),
        )
    series = hourly_counts(times.astype(str), contract.event_timezone)
    return series, info


def _forecast_plot(series: pd.Series, fc: Forecast, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.8))
    hist = series.iloc[-3 * fc.season_hours :]
    ax.plot(hist.index, hist.to_numpy(), color="black", lw=0.8, label="observed per hour")
    if fc.forecast_start:
        idx = pd.date_range(pd.Timestamp(fc.forecast_start), periods=len(fc.forecast), freq="h")
        ax.plot(idx, fc.forecast, color="tab:blue", lw=1.2, label="Holt-Winters forecast")
        ax.plot(idx, fc.naive_forecast, color="tab:orange", lw=0.8, ls="--", label="naive seasonal")
        ax.axvline(idx[0].to_pydatetime(), color="gray", ls=":")  # type: ignore[arg-type]
    ax.set_ylabel("predictions / hour (business time)")
    ax.set_title(f"Traffic forecast ({fc.method_used} drives the plan)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plan_capacity(
    settings: Settings,
    *,
    source: str = "prediction_log",
    version: str | None = None,
    load_test: bool = True,
    apply: bool = False,
) -> dict[str, Any]:
    """Forecast → measured per-replica throughput → replica count → (dry-run) scaling plan.

    Every missing input gives a stated reason instead of a number: too little log
    ("not enough data"), no model version to load-test, a load test that failed.
    """
    from pipelines.core.observability import record_event, write_json_atomic

    cap = settings.optimize.capacity
    series_all, info = request_series(settings, source)
    series, coverage = covered_tail(series_all, cap.max_gap_hours)
    fc = forecast_next_period(
        series,
        season=cap.season_hours,
        horizon=cap.horizon_hours,
        holdout=cap.holdout_hours,
        tie_tolerance=cap.tie_tolerance,
    )
    report: dict[str, Any] = {
        "dataset": settings.dataset.name,
        "series": {**info, "coverage": coverage, "hours": len(series), "total": float(series.sum())},
        "forecast": {k: v for k, v in fc.to_dict().items() if k not in {"forecast", "naive_forecast"}},
        "load_test": None,
        "recommendation": None,
        "replay_load": None,
        "scaling": None,
    }
    out_dir = settings.paths.reports / "optimize" / "capacity"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    if fc.status == "ok":
        png = out_dir / f"forecast-{stamp}.png"
        _forecast_plot(series, fc, png)
        report["forecast"]["plot"] = str(png)
        report["forecast"]["next_period"] = fc.forecast
        report["forecast"]["naive_next_period"] = fc.naive_forecast

    version = version or _version_to_test(settings)
    if not load_test:
        report["load_test"] = {"status": "skipped", "reason": "skipped because load_test=False"}
    elif version is None:
        report["load_test"] = {
            "status": "skipped",
            "reason": "skipped because the registry has no model version to load-test",
        }
    else:
        from pipelines.optimize.loadtest import LoadTestError, run_load_test

        rows = max(1, round(info.get("rows_per_request") or 1))
        try:
            report["load_test"] = {"status": "ok", **run_load_test(settings, version, rows_per_request=rows)}
        except LoadTestError as exc:
            report["load_test"] = {"status": "failed", "reason": f"skipped because {exc}"}

    lt = report["load_test"]
    if fc.status != "ok":
        report["recommendation"] = {"status": "not_enough_data", "reason": fc.reason}
    elif lt.get("status") != "ok":
        report["recommendation"] = {"status": "skipped", "reason": f"no measured throughput: {lt['reason']}"}
    else:
        assert fc.peak_per_hour is not None
        plan = recommend_replicas(
            fc.peak_per_hour,
            float(lt["predictions_per_s"]),
            headroom=cap.headroom,
            min_replicas=cap.min_replicas,
            max_replicas=cap.max_replicas,
        )
        report["recommendation"] = {"status": "ok", "peak_hour": fc.peak_hour, **plan.to_dict()}
        peak_wall = info.get("wall_clock_peak_per_s")
        if peak_wall:
            replay = recommend_replicas(
                peak_wall * 3600.0,
                float(lt["predictions_per_s"]),
                headroom=cap.headroom,
                min_replicas=cap.min_replicas,
                max_replicas=cap.max_replicas,
            )
            report["replay_load"] = {
                "what": "the busiest minute of wall-clock traffic the gateway actually served (replay speed)",
                **replay.to_dict(),
            }
        from pipelines.optimize.scaling import scale_service

        report["scaling"] = scale_service(
            plan.replicas,
            project=cap.compose_project,
            service=cap.compose_service,
            base_url=cap.docker_base_url,
            apply=apply,
        ).to_dict()
    path = out_dir / f"capacity-{stamp}.json"
    report["report_path"] = str(path)
    write_json_atomic(path, report)
    write_json_atomic(out_dir / "latest.json", report)
    rec = report["recommendation"]
    record_event(
        settings.paths.events,
        "optimize_capacity",
        stamp,
        forecast_status=fc.status,
        method_used=fc.method_used,
        replicas=rec.get("replicas"),
        recommendation_status=rec.get("status"),
        report_path=str(path),
        applied=bool(report["scaling"] and report["scaling"].get("applied")),
    )
    log.info(
        "capacity planned", forecast=fc.status, recommendation=rec.get("status"), replicas=rec.get("replicas")
    )
    return report


def _version_to_test(settings: Settings) -> str | None:
    """The version users are served (champion), else the one next in line, else the newest."""
    from pipelines.training.registry import challenger_version, champion_version, list_versions

    for mv in (champion_version(settings), challenger_version(settings)):
        if mv is not None:
            return str(mv.version)
    versions = list_versions(settings)
    return str(versions[-1].version) if versions else None
