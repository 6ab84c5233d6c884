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

The arithmetic (series, forecast, replicas) is pure and lives in :mod:`pipelines.optimize.forecast`;
this module reads the series, runs the load test, plots, scales and records.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger
from pipelines.optimize.forecast import (
    Forecast,
    covered_tail,
    forecast_next_period,
    hourly_counts,
    recommend_replicas,
    wall_clock_peak_rps,
)

log = get_logger(__name__)

CAPACITY_EVENT = "optimize_capacity"


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
        from pipelines.optimize.errors import LoadTestError
        from pipelines.optimize.loadtest import run_load_test

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
        CAPACITY_EVENT,
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
    from pipelines.core.registry import challenger_version, champion_version, list_versions

    for mv in (champion_version(settings), challenger_version(settings)):
        if mv is not None:
            return str(mv.version)
    versions = list_versions(settings)
    return str(versions[-1].version) if versions else None
