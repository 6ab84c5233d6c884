"""Traffic forecast and replica arithmetic: pure functions a reader can redo by hand.

* :func:`hourly_counts` / :func:`covered_tail` — the request series per local hour, cut to the
  newest stretch the log covers;
* :func:`forecast_next_period` — Holt-Winters (additive seasonality) back-tested beside the
  naive seasonal baseline on a holdout; the baseline drives the plan when it wins;
* :func:`recommend_replicas` — ceil(peak × (1 + headroom) / measured per-replica throughput).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd


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
