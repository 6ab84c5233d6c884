"""The replay's HTML summary: did the loop earn its keep?

The headline plot scores, for every served month, the model that was ``@champion``
when the month began and the first model ever released (never retrained) on the
same full validated batch, so the gap between the two lines is what retraining
bought. Drift figures and every retrain, promotion and rollback come from the
records the DAGs wrote (``var/events``), not from the demo's own bookkeeping.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from pipelines.config import REPO_ROOT, Settings
from pipelines.core.observability import read_events
from pipelines.core.redact import redact_text
from pipelines.replay.records import Replay


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def monthly_quality(settings: Settings, champions: dict[str, str], baseline: str) -> list[dict[str, Any]]:
    """Primary metric per served month for the month's champion and the never-retrained baseline."""
    import mlflow

    from pipelines.core.registry import version_location
    from pipelines.data.validated import load_batches
    from pipelines.training import metrics, predict_scores, prepare_xy

    mlflow.set_tracking_uri(settings.tracking_uri)
    task = settings.dataset.target.task
    metric = settings.gate.for_task(task).primary_metric
    models: dict[str, Any] = {}

    def model(version: str) -> Any:
        if version not in models:
            models[version] = mlflow.sklearn.load_model(version_location(settings, version))
        return models[version]

    rows = []
    for month, version in champions.items():
        data = prepare_xy(settings.dataset, load_batches(settings, [month]))
        row: dict[str, Any] = {"month": month, "champion": version, "rows": data.rows}
        for label, v in (("champion_metric", version), ("baseline_metric", baseline)):
            scores = predict_scores(model(v), data.x, task)
            row[label] = metrics.compute(task, data.y.to_numpy(), scores, [metric]).get(metric)
        rows.append(row)
    return rows


def write_summary(replay: Replay, months: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.monitoring import history_table

    settings = replay.settings
    out = settings.paths.reports / "demo" / "summary.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    metric = settings.gate.for_task(settings.dataset.target.task).primary_metric
    quality = (
        monthly_quality(settings, replay.champion_by_month, replay.baseline_version)
        if replay.baseline_version
        else []
    )
    history = history_table(settings)
    sections: list[str] = []

    if quality:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        xs = [q["month"] for q in quality]
        ax.plot(xs, [q["champion_metric"] for q in quality], "o-", label="pipeline's @champion")
        ax.plot(
            xs,
            [q["baseline_metric"] for q in quality],
            "s--",
            label=f"never retrained (v{replay.baseline_version})",
        )
        for q in quality:
            ax.annotate(
                f"v{q['champion']}",
                (q["month"], q["champion_metric"]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        ax.set_ylabel(metric)
        ax.set_title("Monthly quality on the full validated batch")
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        sections.append(f'<h2>Model quality</h2><img src="data:image/png;base64,{_png(fig)}">')
        plt.close(fig)
    if history:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        xs = [h["window"] for h in history]
        ax.plot(xs, [h.get("drift_share") or 0 for h in history], "o-", label="share of drifted features")
        ax.plot(xs, [h.get("prediction_drift") or 0 for h in history], "^-", label="prediction drift score")
        for h in history:
            if h.get("action") == "retrain":
                ax.axvline(h["window"], color="red", alpha=0.3)
        ax.set_title("Drift per window (red: the policy requested a retrain)")
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        sections.append(f'<h2>Drift</h2><img src="data:image/png;base64,{_png(fig)}">')
        plt.close(fig)
        sections.append(
            _table(
                history,
                [
                    "window",
                    "status",
                    "model_version",
                    "rows",
                    "drift_share",
                    "important_drift",
                    "prediction_drift",
                    "metric",
                    "value",
                    "baseline",
                    "labels",
                    "action",
                    "reasons",
                ],
            )
        )
    if quality:
        sections.append("<h2>Quality per month</h2>" + _table(quality, list(quality[0])))

    sections.append(backtest_section(settings))

    releases = read_events(settings.paths.events, "release")
    rollbacks = read_events(settings.paths.events, "rollback")
    sections.append(
        f"<h2>Releases</h2><p>{len(releases)} promotion(s), {len(rollbacks)} rollback(s).</p>"
        + _table(
            [
                {"kind": e["kind"], "key": e["key"], "at": e.get("recorded_at"), "reason": e.get("reason")}
                for e in releases + rollbacks
            ],
            ["kind", "key", "at", "reason"],
        )
    )
    from pipelines.core.metrics import summarise_textfiles

    pushed = summarise_textfiles(settings)  # what a Pushgateway would hold (monitoring/METRICS.md)
    sections.append(
        f"<h2>Decision metrics</h2><p>{len(pushed)} metric groups, written as Prometheus text files "
        f"under <code>{html.escape(str(settings.paths.root / 'metrics'))}</code> (pushed to the "
        "Pushgateway when <code>observability.pushgateway_url</code> is set).</p>"
        + _table(pushed, ["job", "group", "figures"])
    )
    sections.append("<h2>Timeline</h2>" + _table(replay.timeline, ["month", "event", "detail"]))
    links = _links(settings)
    body = "\n".join(sections)
    # The one redaction rule (pipelines.core.redact): the page names URLs and may quote errors.
    out.write_text(
        redact_text(
            "<!doctype html><html><head><meta charset='utf-8'><title>MLOps replay summary</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px}</style>"
            f"</head><body><h1>Replay of {html.escape(months[0])} to {html.escape(months[-1])}</h1>"
            f"{links}{body}</body></html>"
        )
    )
    return out


def backtest_section(settings: Settings) -> str:
    """The three-strategy backtest (``<reports>/demo/backtest.json``) as a month x strategy table."""
    import json

    path = settings.paths.reports / "demo" / "backtest.json"
    head = "<h2>Backtest: never retrain vs monthly (gated) vs the project's policy</h2>"
    if not path.exists():
        missing = html.escape(str(path))
        return head + f"<p>not run: {missing} is missing (python -m pipelines.replay.backtest)</p>"
    doc = json.loads(path.read_text())
    strategies = ["never", "monthly", "policy"]
    by: dict[str, dict[str, Any]] = {}
    for r in doc["rows"]:
        by.setdefault(r["month"], {})[r["strategy"]] = r
    table = [
        {
            "month": month,
            **{s: cells[s]["value"] for s in strategies if s in cells},
            **{f"{s} model": cells[s]["model"] for s in strategies if s in cells},
            "monthly after the month": cells.get("monthly", {}).get("after_month", ""),
            "policy after the month": cells.get("policy", {}).get("after_month", ""),
        }
        for month, cells in by.items()
    ]
    cols = [
        "month",
        *strategies,
        *(f"{s} model" for s in strategies),
        "monthly after the month",
        "policy after the month",
    ]
    cfg = doc.get("config", {})
    intro = (
        f"<p>{html.escape(doc['metric'])} of the model each strategy serves, on every served month "
        f"(data: {html.escape(str(doc.get('data')))}; window {html.escape(str(cfg.get('window_strategy')))}, "
        f"caps {cfg.get('max_retrains_per_period')} per {cfg.get('period_windows')} windows). "
        "Gains are AUC points (MAE: relative reduction) over never retraining.</p>"
    )
    payoff = doc.get("payoff", {})
    checks = [
        {"goal": name, "value": c.get("value"), "required": c.get("goal"), "met": c.get("met")}
        for name, c in (payoff.get("checks") or {}).items()
    ]
    verdict = f"<p>Payoff goal met: <b>{payoff.get('met')}</b></p>"
    summary_cols = [
        "strategy",
        "mean",
        "mean_gain",
        "worst_month_gain",
        "retrains",
        "promotions",
        "train_cpu_seconds",
    ]
    return (
        head
        + intro
        + _table(table, cols)
        + _table(doc.get("summary", []), summary_cols)
        + verdict
        + _table(checks, ["goal", "value", "required", "met"])
    )


def _links(settings: Settings) -> str:
    items = []
    try:
        from pipelines.optimize import build_scorecard, checkout_stage_dags, write_scorecard_html

        card = build_scorecard(settings, checkout_stage_dags(REPO_ROOT / "dags"))
        items.append(f'<a href="{write_scorecard_html(settings, card).as_uri()}">operations scorecard</a>')
    except Exception as exc:  # the summary still renders; the reason is shown, not hidden
        items.append(f"operations scorecard unavailable: {html.escape(str(exc))}")
    workspace = settings.paths.monitoring / "workspace"
    items.append(f"Evidently workspace: <code>evidently ui --workspace {html.escape(str(workspace))}</code>")
    items.append(
        "MLflow UI: <code>mlflow ui --backend-store-uri "
        f"{html.escape(redact_text(settings.tracking_uri))}</code>"
    )
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list | tuple):
        return "; ".join(map(str, v))
    return "" if v is None else str(v)
