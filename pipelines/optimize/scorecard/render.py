"""The scorecard as text (the CLI), as plots and as one self-contained HTML page.

Reads only the card (a plain dict); :func:`write_scorecard_html` is the one function that writes:
the card as JSON and the page beside it, under ``reports/scorecard/``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.core.observability import get_logger, write_json_atomic
from pipelines.core.redact import redact_text
from pipelines.optimize.scorecard.metrics import parse_time

log = get_logger(__name__)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def render_text(card: dict[str, Any]) -> str:
    """The CLI's plain-text card."""
    d, g, a, r = card["delivery"], card["gates"], card["automation"], card["readiness"]
    df, lt, cfr, ttr = (
        d["deployment_frequency"],
        d["lead_time"],
        d["change_failure_rate"],
        d["time_to_recover"],
    )
    qg, eg = g["quality_gate"], g["evaluation_gate"]
    lines = [
        f"Operations scorecard — {card['dataset']} / {card['model']} ({card['generated_at']})",
        "",
        "Delivery",
        f"  deployment frequency  {df['promotions']} promotions over {df['batch_periods']} batch periods "
        f"({_fmt(df['per_batch_period'])} per period; {_fmt(df['per_wall_clock_day'])} per wall-clock day)",
        f"  lead time (h)         median {_fmt(lt['hours']['median'])}, max {_fmt(lt['hours']['max'])} "
        f"over {lt['hours']['n']} releases",
        f"  change-failure rate   {_fmt(cfr['rate'])} "
        f"({cfr['rollbacks_total']} rollbacks / {cfr['attempts']} attempts)",
        f"  time to recover (h)   median {_fmt(ttr['hours']['median'])} over {ttr['hours']['n']} incidents, "
        f"{ttr['open_incidents']} open",
        "",
        "Gates",
        f"  data quality          {_fmt(qg['pass_rate'])} pass rate over {qg['batches']} "
        f"batches; {_fmt(qg['quarantined_share'])} of rows quarantined",
        f"  evaluation            {_fmt(eg['pass_rate'])} pass rate over {eg['candidates']} candidates",
        f"  canary                {_fmt(g['canary']['pass_rate'])} over {g['canary']['attempts']} rollouts",
        "",
        "Automation",
        f"  training triggers     {a['training_triggers']} "
        f"(automated share {_fmt(a['training_automated_share'])})",
    ]
    dr = a["dag_runs"]
    if dr.get("source"):
        lines.append(
            f"  DAG runs              {dr['total']} (success rate {_fmt(dr['success_rate'])}, "
            f"automated share {_fmt(dr['automated_share'])})"
        )
    else:
        lines.append(f"  DAG runs              n/a: {dr.get('reason')}")
    lines += ["", f"Readiness (measurable points): {r['passed']}/{r['total']} = {_fmt(r['score_100'])}/100"]
    for p in r["points"]:
        mark = "PASS" if p["passed"] else "FAIL"
        lines.append(f"  [{mark}] {p['category']}: {p['item']}\n         evidence: {p['evidence']}")
    return "\n".join(lines)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def trend_plots(card: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs of the trends (only those with data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = card["trends"]
    out: dict[str, str] = {}
    rel = sorted(d for x in t["releases"] if (d := parse_time(x["at"])) is not None)
    rb = sorted(d for x in t["rollbacks"] if (d := parse_time(x["at"])) is not None)
    if rel or rb:
        fig, ax = plt.subplots(figsize=(7, 3))
        if rel:
            ax.step(rel, range(1, len(rel) + 1), where="post", label="promotions")  # type: ignore[arg-type]
        if rb:
            ax.step(rb, range(1, len(rb) + 1), where="post", color="tab:red", label="rollbacks")  # type: ignore[arg-type]
        ax.set_ylabel("cumulative count")
        ax.set_title("Releases and rollbacks over time")
        ax.legend()
        fig.autofmt_xdate()
        fig.tight_layout()
        out["releases"] = _png(fig)
    lead = [x for x in card["delivery"]["lead_time"]["per_release"] if "hours" in x]
    if lead:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([f"v{x['version']}" for x in lead], [x["hours"] * 60 for x in lead])
        ax.set_ylabel("minutes")
        ax.set_title("Lead time: batch arrival → promotion")
        fig.tight_layout()
        out["lead_time"] = _png(fig)
    qg = [x for x in t["quality_gate"] if x["accepted_share"] is not None]
    if qg:
        fig, ax = plt.subplots(figsize=(7, 3))
        colors = ["tab:red" if x["status"] == "rejected" else "tab:green" for x in qg]
        ax.bar([str(x["batch"]) for x in qg], [x["accepted_share"] for x in qg], color=colors)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accepted share of rows")
        ax.set_title("Data quality gate per batch (red = rejected)")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        out["quality_gate"] = _png(fig)
    cands = [x for x in t["candidates"] if x["metric"] is not None]
    if cands:
        fig, ax = plt.subplots(figsize=(7, 3))
        for verdict, color in (("passed", "tab:green"), ("rejected", "tab:red")):
            pts = [(i, x["metric"]) for i, x in enumerate(cands) if x["verdict"] == verdict]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, label=verdict)
        ax.set_xticks(range(len(cands)), [str(x["holdout"]) for x in cands], rotation=45)
        ax.set_ylabel(t["primary_metric"])
        ax.set_title("Candidates at the evaluation gate (holdout batch)")
        ax.legend()
        fig.tight_layout()
        out["candidates"] = _png(fig)
    drift = [x for x in t["drift"] if x["drift_share"] is not None]
    if drift:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([str(x["window"]) for x in drift], [x["drift_share"] for x in drift], marker="o")
        ax.set_ylabel("drifted feature share")
        ax.set_title("Monitoring windows")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        out["drift"] = _png(fig)
    return out


CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}"
    "pre{background:#f6f6f6;padding:1em}"
)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cost_table(card: dict[str, Any]) -> str:
    cost_rows = []
    for v in (card.get("cost") or {}).get("versions", []):
        s, t = v.get("serving_per_1k") or {}, v.get("training") or {}
        cost_rows.append(
            {
                "version": v["version"],
                "serving CPU s / 1k": s.get("cpu_seconds"),
                "serving kWh / 1k": s.get("energy_kwh"),
                "serving kg CO2 / 1k": s.get("emissions_kg"),
                "training CPU s": t.get("cpu_seconds"),
                "training kWh": t.get("energy_kwh"),
                "training source": t.get("source"),
            }
        )
    return (
        _table(cost_rows, list(cost_rows[0]))
        if cost_rows
        else "<p>No cost measurement yet (<code>mlops optimize cost</code>).</p>"
    )


def render_html(card: dict[str, Any], plots: dict[str, str]) -> str:
    """The page: summary, readiness points, lead times, recoveries, unit costs, trend plots."""
    text = html.escape(render_text(card))
    r = card["readiness"]
    pts = _table(
        [{**p, "passed": "PASS" if p["passed"] else "FAIL"} for p in r["points"]],
        ["category", "item", "passed", "evidence"],
    )
    lead = _table(
        card["delivery"]["lead_time"]["per_release"],
        ["version", "batch", "arrived_at", "promoted_at", "hours", "reason"],
    )
    ttr = _table(
        card["delivery"]["time_to_recover"]["incidents"],
        ["window", "detected_at", "recovered_by", "recovered_at", "hours", "open"],
    )
    imgs = "".join(
        f'<h3>{html.escape(k)}</h3><img src="data:image/png;base64,{v}"/>' for k, v in plots.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Operations scorecard</title>
<style>{CSS}</style></head><body>
<h1>Operations scorecard — {html.escape(card["dataset"])}</h1>
<p>Generated {html.escape(card["generated_at"])} from the pipeline's records:
{html.escape(json.dumps(card["sources"]))}</p>
<h2>Summary</h2><pre>{text}</pre>
<h2>Readiness: {r["passed"]}/{r["total"]} measurable points ({_fmt(r["score_100"])}/100)</h2>{pts}
<h2>Lead time per release</h2>{lead}
<h2>Time to recover</h2>{ttr}
<h2>Cost and energy per model version</h2>{_cost_table(card)}
<h2>Trends</h2>{imgs or "<p>No records to plot yet.</p>"}
</body></html>"""


def write_scorecard_html(settings: Settings, card: dict[str, Any]) -> Path:
    """Self-contained HTML (plots embedded as PNG) + the card as JSON, under reports/scorecard/."""
    out_dir = settings.paths.reports / "scorecard"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "scorecard.json", card)
    doc = render_html(card, trend_plots(card))
    r = card["readiness"]
    path = out_dir / "index.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(redact_text(doc), encoding="utf-8")
    tmp.replace(path)
    log.info("scorecard written", path=str(path), readiness=f"{r['passed']}/{r['total']}")
    return path
