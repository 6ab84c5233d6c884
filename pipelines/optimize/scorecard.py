"""Operations scorecard: delivery and reliability figures computed from the pipeline's own records.

Sources, each named in the card next to the figures it gave:

* **event records** (``observability.read_events``): quality_gate, training_run,
  gate_verdict, canary_step, release, rollback, monitoring_window,
  retrain_decision, alert, and this package's optimize_* records;
* **landing manifests**: when each batch arrived (``landed_at``);
* **the MLflow registry**: versions, their lineage tags (training batches), aliases;
* **the Airflow metadata DB** (read-only ``dag_run`` rows) when reachable.

Definitions (also printed in the card):

* *deployment frequency*: promotions (``release`` records) per replayed batch
  period and per wall-clock day of activity;
* *lead time*: batch arrival → promotion of the first model trained on it, where a
  model's newest batch is the newest of its training batches and holdout batch;
* *change-failure rate*: failed changes / attempted changes, where an attempt is a
  promotion or a canary rejected during rollout, and a failure is a canary rejection
  or a rollback of a promoted champion (all ``rollback`` records);
* *time to recover*: a retrain decision of the drift monitor → the next promotion
  (a new champion serving); a decision with no later promotion is an open incident.

A figure without records behind it is ``None`` with the reason, never 0.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import REPO_ROOT, Settings
from pipelines.core.observability import get_logger, read_events, write_json_atomic

log = get_logger(__name__)

KINDS = (
    "quality_gate",
    "training_run",
    "gate_verdict",
    "canary_step",
    "release",
    "rollback",
    "monitoring_window",
    "retrain_decision",
    "alert",
    "optimize_tuning",
    "optimize_model_choice",
    "optimize_capacity",
    "optimize_cost",
)
# Lifecycle stage -> the DAG that automates it (the team's DAG ids).
STAGES = {
    "ingest + data quality gate": "standardize_data_quality",
    "train + evaluation gate + register": "automate_training",
    "canary release / promotion / rollback": "automate_canary_release",
    "drift monitoring + retrain trigger": "automate_drift_monitoring",
    "tuning": "optimize_tuning",
    "model choice": "optimize_model_choice",
    "capacity planning": "optimize_capacity",
    "scorecard": "optimize_scorecard",
}
LINEAGE_TAGS = ("data.train_batches", "code.git_sha", "dedupe_key")
AUTOMATED_RUN_TYPES = {"scheduled", "asset_triggered", "dataset_triggered", "backfill"}


# --------------------------------------------------------------------------- small helpers
def parse_time(value: Any) -> datetime | None:
    """ISO string (any offset, naive = UTC) → aware datetime; None when absent or unparsable."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "mean": None, "min": None, "max": None}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# --------------------------------------------------------------------------- sources
def batch_arrivals(settings: Settings) -> dict[str, list[datetime]]:
    """batch id -> every time a version of it landed (landing manifests' history)."""
    root = settings.paths.landing / settings.dataset.name
    out: dict[str, list[datetime]] = {}
    for manifest in sorted(root.glob("*/manifest.json")) if root.exists() else []:
        doc = json.loads(manifest.read_text())
        times = [parse_time(h.get("landed_at")) for h in doc.get("history", [])]
        out[manifest.parent.name] = sorted(t for t in times if t is not None)
    return out


def registry_versions(settings: Settings) -> dict[str, Any]:
    """``{"versions": {version: {...}}, "aliases": {...}}`` or ``{"error": ...}``."""
    try:
        from pipelines.training.registry import client_for, list_versions

        client = client_for(settings)
        versions = list_versions(settings, client)
        aliases: dict[str, str] = {}
        if versions:
            aliases = dict(client.get_registered_model(settings.mlflow.registered_model).aliases)
    except Exception as exc:
        return {"error": f"registry unavailable ({settings.tracking_uri}): {type(exc).__name__}: {exc}"[:400]}
    out: dict[str, Any] = {}
    for mv in versions:
        tags = dict(mv.tags or {})
        batches = [b for b in tags.get("data.train_batches", "").split(",") if b]
        holdout = tags.get("data.holdout_batch")
        out[str(mv.version)] = {
            "run_id": mv.run_id,
            "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
                timespec="seconds"
            ),
            "train_batches": batches,
            "holdout_batch": holdout,
            "newest_batch": max([*batches, *([holdout] if holdout else [])], default=None),
            "gate_verdict": tags.get("gate.verdict"),
            "canary_verdict": tags.get("canary.verdict"),
            "reason": tags.get("mlops.reason"),
            "lineage_complete": all(
                tags.get(k) for k in ("data.train_batches", "code.git_sha", "dedupe_key")
            ),
        }
    return {"versions": out, "aliases": aliases}


def airflow_db_url(settings: Settings) -> str | None:
    if settings.optimize.airflow_db_url:
        return settings.optimize.airflow_db_url
    env = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if env:
        return env
    local = settings.paths.root / "airflow" / "airflow.db"
    return f"sqlite:///{local}" if local.exists() else None


def airflow_runs(settings: Settings) -> dict[str, Any]:
    """DAG runs from the Airflow metadata DB (read-only), or the reason they are unavailable."""
    url = airflow_db_url(settings)
    if url is None:
        return {"available": False, "reason": "no Airflow metadata DB configured or found"}
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT dag_id, run_id, run_type, state, start_date, end_date FROM dag_run")
            ).fetchall()
        engine.dispose()
    except Exception as exc:
        safe = sa.make_url(url).render_as_string(hide_password=True)
        return {
            "available": False,
            "reason": f"Airflow DB {safe} unreadable: {type(exc).__name__}: {exc}"[:400],
        }
    runs = [
        {
            "dag_id": r[0],
            "run_id": r[1],
            "run_type": str(r[2]),
            "state": str(r[3]),
            "start_date": str(r[4]) if r[4] else None,
            "end_date": str(r[5]) if r[5] else None,
        }
        for r in rows
    ]
    return {"available": True, "source": sa.make_url(url).render_as_string(hide_password=True), "runs": runs}


# --------------------------------------------------------------------------- figures (pure)
def _promotion_time(ev: dict[str, Any]) -> datetime | None:
    return parse_time(ev.get("promoted_at")) or parse_time(ev.get("recorded_at"))


def delivery_metrics(
    events: dict[str, list[dict[str, Any]]],
    arrivals: dict[str, list[datetime]],
    versions: dict[str, Any],
) -> dict[str, Any]:
    """Deployment frequency, lead time, change-failure rate, time to recover (see module doc)."""
    releases = sorted(
        (e for e in events.get("release", []) if _promotion_time(e) is not None),
        key=lambda e: _promotion_time(e) or datetime.min.replace(tzinfo=UTC),
    )
    rollbacks = events.get("rollback", [])
    canary_rejections = [r for r in rollbacks if r.get("stage")]
    batches = sorted({e["batch_id"] for e in events.get("quality_gate", []) if e.get("batch_id")})

    # Deployment frequency.
    stamps = [t for k in KINDS for e in events.get(k, []) if (t := parse_time(e.get("recorded_at")))]
    span_days = (max(stamps) - min(stamps)).total_seconds() / 86400 if len(stamps) > 1 else 0.0
    freq = {
        "promotions": len(releases),
        "batch_periods": len(batches),
        "per_batch_period": _ratio(len(releases), len(batches)),
        "wall_clock_days": span_days,
        "per_wall_clock_day": len(releases) / span_days if span_days > 0 else None,
        "definition": "promotions (release records) per replayed batch period and per wall-clock day",
    }

    # Lead time: arrival of a version's newest batch -> its promotion.
    lead: list[dict[str, Any]] = []
    for ev in releases:
        v = str(ev.get("version"))
        info = versions.get(v)
        promoted = _promotion_time(ev)
        item: dict[str, Any] = {"version": v, "promoted_at": promoted.isoformat() if promoted else None}
        if info is None or not info.get("newest_batch"):
            item["reason"] = "version unknown to the registry or without batch tags"
        else:
            batch = info["newest_batch"]
            landed = [t for t in arrivals.get(batch, []) if promoted and t <= promoted]
            if not landed:
                item.update(batch=batch, reason=f"no landing of {batch} before the promotion")
            else:
                item.update(
                    batch=batch,
                    arrived_at=landed[-1].isoformat(),
                    hours=(promoted - landed[-1]).total_seconds() / 3600,  # type: ignore[operator]
                )
        lead.append(item)
    lead_hours = [x["hours"] for x in lead if "hours" in x]

    # Change-failure rate.
    attempts = len(releases) + len(canary_rejections)
    cfr = {
        "attempts": attempts,
        "promotions": len(releases),
        "canary_rejections": len(canary_rejections),
        "rollbacks_total": len(rollbacks),
        "rate": _ratio(len(rollbacks), attempts),
        "definition": "rollback records / (promotions + canary rejections)",
    }

    # Time to recover: retrain decision -> next promotion.
    incidents: list[dict[str, Any]] = []
    for d in sorted(events.get("retrain_decision", []), key=lambda e: e.get("recorded_at", "")):
        if d.get("action") != "retrain":
            continue
        t0 = parse_time(d.get("recorded_at"))
        if t0 is None:
            continue
        after = [r for r in releases if _promotion_time(r) > t0]  # type: ignore[operator]
        inc: dict[str, Any] = {"window": d.get("key"), "detected_at": t0.isoformat()}
        if after:
            t1 = _promotion_time(after[0])
            inc.update(
                recovered_by=str(after[0].get("version")),
                recovered_at=t1.isoformat(),  # type: ignore[union-attr]
                hours=(t1 - t0).total_seconds() / 3600,  # type: ignore[operator]
            )
        else:
            inc["open"] = True
        incidents.append(inc)
    ttr_hours = [i["hours"] for i in incidents if "hours" in i]
    return {
        "deployment_frequency": freq,
        "lead_time": {
            "hours": _summary(lead_hours),
            "per_release": lead,
            "definition": "newest batch of the promoted version landed -> promotion (wall clock)",
        },
        "change_failure_rate": cfr,
        "time_to_recover": {
            "hours": _summary(ttr_hours),
            "incidents": incidents,
            "open_incidents": sum(1 for i in incidents if i.get("open")),
            "definition": "drift monitor's retrain decision -> next promotion (new champion serving)",
        },
    }


def gate_metrics(events: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Pass rates of the three gates."""
    q = events.get("quality_gate", [])
    q_status = Counter(str(e.get("status")) for e in q)
    q_pass = q_status.get("passed", 0) + q_status.get("passed_with_warnings", 0)
    rows_in = sum(int(e.get("rows_in") or 0) for e in q)
    rows_q = sum(int(e.get("rows_quarantined") or 0) for e in q)
    g = events.get("gate_verdict", [])
    g_pass = sum(1 for e in g if e.get("verdict") == "passed")
    promotions = len(events.get("release", []))
    rejected = sum(1 for r in events.get("rollback", []) if r.get("stage"))
    return {
        "quality_gate": {
            "batches": len(q),
            "by_status": dict(q_status),
            "pass_rate": _ratio(q_pass, len(q)),
            "rows_in": rows_in,
            "rows_quarantined": rows_q,
            "quarantined_share": _ratio(rows_q, rows_in),
        },
        "evaluation_gate": {
            "candidates": len(g),
            "passed": g_pass,
            "pass_rate": _ratio(g_pass, len(g)),
            "failed_criteria": dict(
                Counter(c for e in g if e.get("verdict") != "passed" for c in e.get("failed_criteria") or [])
            ),
        },
        "canary": {
            "attempts": promotions + rejected,
            "promoted": promotions,
            "pass_rate": _ratio(promotions, promotions + rejected),
        },
    }


def _trigger(reason: str) -> str:
    r = reason.lower()
    if r.startswith("asset"):
        return "asset event"
    if r.startswith("drift monitor"):
        return "drift monitor"
    if r.startswith(("tuning", "model choice")):
        return "optimize"
    return "manual / other"


def automation_metrics(events: dict[str, list[dict[str, Any]]], airflow: dict[str, Any]) -> dict[str, Any]:
    """Who started what: the system (asset events, the monitor, schedules) or a person."""
    runs = events.get("training_run", [])
    triggers = Counter(_trigger(str(e.get("reason") or "")) for e in runs)
    # Tuning / model choice are started by a person (or a schedule of theirs): not counted here.
    automated = triggers.get("asset event", 0) + triggers.get("drift monitor", 0)
    out: dict[str, Any] = {
        "training_triggers": dict(triggers),
        "training_automated_share": _ratio(automated, len(runs)),
        "release_actions": dict(Counter(str(e.get("action")) for e in events.get("release", []))),
    }
    if airflow.get("available"):
        dag_runs = airflow["runs"]
        per_dag: dict[str, dict[str, Any]] = {}
        for r in dag_runs:
            d = per_dag.setdefault(
                r["dag_id"], {"runs": 0, "success": 0, "failed": 0, "run_types": Counter()}
            )
            d["runs"] += 1
            d["success"] += r["state"] == "success"
            d["failed"] += r["state"] == "failed"
            d["run_types"][r["run_type"]] += 1
        for d in per_dag.values():
            d["run_types"] = dict(d["run_types"])
        auto = sum(1 for r in dag_runs if r["run_type"] in AUTOMATED_RUN_TYPES)
        finished = [r for r in dag_runs if r["state"] in ("success", "failed")]
        out["dag_runs"] = {
            "source": airflow["source"],
            "total": len(dag_runs),
            "automated_share": _ratio(auto, len(dag_runs)),
            "success_rate": _ratio(sum(r["state"] == "success" for r in finished), len(finished)),
            "per_dag": per_dag,
            "note": "dag.test() (embedded demo) records runs as 'manual'; scheduler-started runs count "
            "as automated (scheduled, asset_triggered, backfill)",
        }
    else:
        out["dag_runs"] = {"source": None, "reason": airflow.get("reason")}
    return out


# --------------------------------------------------------------------------- readiness (measurable part)
def _defines_dag(path: Path, dag_id: str) -> bool:
    text = path.read_text()
    return path.stem == dag_id or f'dag_id="{dag_id}"' in text or f"def {dag_id}(" in text


def _point(category: str, item: str, passed: bool | None, evidence: str) -> dict[str, Any]:
    return {"category": category, "item": item, "passed": passed, "evidence": evidence}


def readiness(
    settings: Settings,
    events: dict[str, list[dict[str, Any]]],
    registry: dict[str, Any],
    airflow: dict[str, Any],
    gates: dict[str, Any],
) -> dict[str, Any]:
    """The measurable points of the readiness scorecard, each with the evidence it was judged on."""
    pts: list[dict[str, Any]] = []
    infra, auto, qual = "infrastructure", "automation maturity", "quality management"
    versions = registry.get("versions", {})
    pts.append(
        _point(
            infra,
            "experiment tracking + model registry reachable",
            "error" not in registry,
            registry.get("error") or f"{settings.tracking_uri}: {len(versions)} versions",
        )
    )
    try:
        import sqlalchemy as sa

        from pipelines.core.predlog import engine_for, log_url, read_labels

        with engine_for(log_url(settings)).connect() as conn:
            n_pred = conn.execute(sa.text("SELECT COUNT(*) FROM predictions")).scalar_one()
        n_labels = len(read_labels(settings))
        url = sa.make_url(log_url(settings)).render_as_string(hide_password=True)
        pts.append(
            _point(infra, "prediction log reachable", True, f"{url}: {n_pred} predictions, {n_labels} labels")
        )
    except Exception as exc:
        pts.append(_point(infra, "prediction log reachable", False, f"{type(exc).__name__}: {exc}"[:300]))
    pts.append(
        _point(
            infra,
            "orchestrator records reachable",
            bool(airflow.get("available")),
            airflow.get("source", "") + f" ({len(airflow.get('runs', []))} DAG runs)"
            if airflow.get("available")
            else str(airflow.get("reason")),
        )
    )
    files = ["docker-compose.yml", "infra/Dockerfile", "infra/helm", "requirements.lock"]
    present = [f for f in files if (REPO_ROOT / f).exists()]
    pts.append(
        _point(
            infra,
            "reproducible deployment definitions (compose, image, Helm, lock file)",
            len(present) == len(files),
            f"present: {present}; missing: {sorted(set(files) - set(present))}",
        )
    )
    dags_dir = REPO_ROOT / "dags"
    for stage, dag_id in STAGES.items():
        hit = [p.name for p in dags_dir.glob("*.py") if _defines_dag(p, dag_id)]
        ran = None
        if airflow.get("available"):
            ran = sum(1 for r in airflow["runs"] if r["dag_id"] == dag_id and r["state"] == "success")
        pts.append(
            _point(
                auto,
                f"stage automated by a DAG: {stage}",
                bool(hit),
                f"{dag_id} in {hit or 'no DAG file'}" + ("" if ran is None else f"; {ran} successful runs"),
            )
        )
    runs = events.get("training_run", [])
    auto_runs = [e for e in runs if _trigger(str(e.get("reason") or "")) in ("asset event", "drift monitor")]
    pts.append(
        _point(
            auto,
            "training started by the system (asset event or drift monitor)",
            bool(auto_runs),
            f"{len(auto_runs)} of {len(runs)} training runs",
        )
    )
    decisions = [d for d in events.get("retrain_decision", []) if d.get("action") == "retrain"]
    pts.append(
        _point(
            auto,
            "closed loop: drift monitor decided to retrain",
            bool(decisions),
            f"{len(decisions)} retrain decisions of {len(events.get('retrain_decision', []))}",
        )
    )
    auto_rb = [r for r in events.get("rollback", []) if r.get("stage")]
    pts.append(
        _point(
            auto,
            "automatic rollback exercised (canary rejected during rollout)",
            bool(auto_rb),
            f"{len(auto_rb)} canary rejections: "
            + ", ".join(f"v{r.get('version')} at {r.get('stage')}" for r in auto_rb[:5]),
        )
    )
    ci = [p for p in (".ci/run", ".github/workflows", ".pre-commit-config.yaml") if (REPO_ROOT / p).exists()]
    pts.append(_point(auto, "CI entry point defined", bool(ci), f"present: {ci}"))
    suite = settings.resolve(settings.dataset.expectation_suite)
    n_exp = len(json.loads(suite.read_text()).get("expectations", [])) if suite.exists() else 0
    qg = gates["quality_gate"]
    pts.append(
        _point(
            qual,
            "data quality gate with an expectation suite, run on every batch",
            n_exp > 0 and qg["batches"] > 0,
            f"{suite.name}: {n_exp} expectations; {qg['batches']} batch verdicts {qg['by_status']}",
        )
    )
    pts.append(
        _point(
            qual,
            "bad data stopped (rows quarantined or batch rejected)",
            qg["rows_quarantined"] > 0 or qg["by_status"].get("rejected", 0) > 0,
            f"{qg['rows_quarantined']} rows quarantined, "
            f"{qg['by_status'].get('rejected', 0)} batches rejected",
        )
    )
    gcfg = settings.gate
    eg = gates["evaluation_gate"]
    pts.append(
        _point(
            qual,
            "evaluation gate: absolute bound + champion comparison + slices + behaviour checks",
            bool(gcfg.for_task(settings.dataset.target.task).absolute)
            and bool(settings.dataset.slice_columns)
            and len(gcfg.behavioural) > 0
            and eg["candidates"] > 0,
            f"absolute {gcfg.for_task(settings.dataset.target.task).absolute}, slices "
            f"{settings.dataset.slice_columns}, {len(gcfg.behavioural)} behaviour checks; "
            f"{eg['candidates']} verdicts ({eg['passed']} passed)",
        )
    )
    lineage = [v for v, info in versions.items() if info["lineage_complete"]]
    pts.append(
        _point(
            qual,
            "every model version carries lineage (data batches, code version, dedupe key)",
            bool(versions) and len(lineage) == len(versions),
            f"{len(lineage)} of {len(versions)} versions",
        )
    )
    mon = [w for w in events.get("monitoring_window", []) if w.get("status") == "ok"]
    pts.append(
        _point(
            qual,
            "production monitoring ran (drift + performance windows)",
            bool(mon),
            f"{len(mon)} windows monitored of {len(events.get('monitoring_window', []))}",
        )
    )
    tests = sorted(p.name for p in (REPO_ROOT / "tests").glob("test_*.py"))
    pts.append(_point(qual, "automated test suite", len(tests) > 0, f"{len(tests)} test modules"))
    scored = [p for p in pts if p["passed"] is not None]
    by_cat: dict[str, dict[str, int]] = {}
    for p in scored:
        c = by_cat.setdefault(p["category"], {"passed": 0, "total": 0})
        c["total"] += 1
        c["passed"] += bool(p["passed"])
    total = sum(c["total"] for c in by_cat.values())
    got = sum(c["passed"] for c in by_cat.values())
    return {
        "points": pts,
        "by_category": by_cat,
        "passed": got,
        "total": total,
        "score_100": round(100 * got / total, 1) if total else None,
        "note": "only the measurable points of the readiness scorecard; each point is judged on the "
        "evidence shown",
    }


# --------------------------------------------------------------------------- the card
def _latest(settings: Settings, kind: str) -> dict[str, Any] | None:
    path = settings.paths.reports / "optimize" / kind / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None


def build_scorecard(settings: Settings) -> dict[str, Any]:
    """Compute the whole card from the records (no side effects besides reading)."""
    events = {k: read_events(settings.paths.events, k) for k in KINDS}
    registry = registry_versions(settings)
    airflow = airflow_runs(settings)
    arrivals = batch_arrivals(settings)
    gates = gate_metrics(events)
    card: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": settings.dataset.name,
        "model": settings.mlflow.registered_model,
        "sources": {
            "events": str(settings.paths.events),
            "event_counts": {k: len(v) for k, v in events.items()},
            "registry": registry.get("error") or settings.tracking_uri,
            "airflow": airflow.get("source") or airflow.get("reason"),
            "landing": str(settings.paths.landing / settings.dataset.name),
        },
        "delivery": delivery_metrics(events, arrivals, registry.get("versions", {})),
        "gates": gates,
        "automation": automation_metrics(events, airflow),
        "readiness": readiness(settings, events, registry, airflow, gates),
        "registry": registry,
        "cost": _latest(settings, "cost"),
        "capacity": _latest(settings, "capacity"),
        "trends": _trend_data(events, registry.get("versions", {}), settings),
    }
    return card


def _trend_data(
    events: dict[str, list[dict[str, Any]]], versions: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    primary = settings.gate.for_task(settings.dataset.target.task).primary_metric
    return {
        "quality_gate": [
            {
                "batch": e.get("batch_id"),
                "accepted_share": _ratio(int(e.get("rows_accepted") or 0), int(e.get("rows_in") or 0)),
                "status": e.get("status"),
            }
            for e in sorted(events.get("quality_gate", []), key=lambda e: str(e.get("batch_id")))
        ],
        "candidates": [
            {
                "holdout": e.get("holdout_batch"),
                "at": e.get("recorded_at"),
                "metric": (e.get("metrics") or {}).get(primary),
                "verdict": e.get("verdict"),
            }
            for e in events.get("gate_verdict", [])
        ],
        "primary_metric": primary,
        "drift": [
            {"window": e.get("window"), "drift_share": e.get("drift_share"), "status": e.get("status")}
            for e in sorted(events.get("monitoring_window", []), key=lambda e: str(e.get("window")))
        ],
        "releases": [
            {"version": e.get("version"), "at": (_promotion_time(e) or datetime.now(UTC)).isoformat()}
            for e in events.get("release", [])
        ],
        "rollbacks": [
            {"version": e.get("version"), "at": e.get("recorded_at")} for e in events.get("rollback", [])
        ],
    }


# --------------------------------------------------------------------------- rendering
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


def write_scorecard_html(settings: Settings, card: dict[str, Any]) -> Path:
    """Self-contained HTML (plots embedded as PNG) + the card as JSON, under reports/scorecard/."""
    out_dir = settings.paths.reports / "scorecard"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "scorecard.json", card)
    plots = trend_plots(card)
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
    cost = (
        _table(cost_rows, list(cost_rows[0]))
        if cost_rows
        else "<p>No cost measurement yet (<code>mlops optimize cost</code>).</p>"
    )
    imgs = "".join(
        f'<h3>{html.escape(k)}</h3><img src="data:image/png;base64,{v}"/>' for k, v in plots.items()
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>Operations scorecard</title>
<style>{CSS}</style></head><body>
<h1>Operations scorecard — {html.escape(card["dataset"])}</h1>
<p>Generated {html.escape(card["generated_at"])} from the pipeline's records:
{html.escape(json.dumps(card["sources"]))}</p>
<h2>Summary</h2><pre>{text}</pre>
<h2>Readiness: {r["passed"]}/{r["total"]} measurable points ({_fmt(r["score_100"])}/100)</h2>{pts}
<h2>Lead time per release</h2>{lead}
<h2>Time to recover</h2>{ttr}
<h2>Cost and energy per model version</h2>{cost}
<h2>Trends</h2>{imgs or "<p>No records to plot yet.</p>"}
</body></html>"""
    path = out_dir / "index.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    log.info("scorecard written", path=str(path), readiness=f"{r['passed']}/{r['total']}")
    return path
