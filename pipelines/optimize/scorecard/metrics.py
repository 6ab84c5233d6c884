"""The scorecard's figures, computed from records already read: no I/O, no clock.

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

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pipelines.config import Settings

Events = dict[str, list[dict[str, Any]]]

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


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "mean": None, "min": None, "max": None}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def promotion_time(ev: dict[str, Any]) -> datetime | None:
    return parse_time(ev.get("promoted_at")) or parse_time(ev.get("recorded_at"))


def trigger_of(reason: str) -> str:
    """Who started a training run, read from the reason it recorded."""
    r = reason.lower()
    if r.startswith("asset"):
        return "asset event"
    if r.startswith("drift monitor"):
        return "drift monitor"
    if r.startswith(("tuning", "model choice")):
        return "optimize"
    return "manual / other"


# --------------------------------------------------------------------------- delivery
def delivery_metrics(
    events: Events,
    arrivals: dict[str, list[datetime]],
    versions: dict[str, Any],
) -> dict[str, Any]:
    """Deployment frequency, lead time, change-failure rate, time to recover (see module doc)."""
    releases = sorted(
        (e for e in events.get("release", []) if promotion_time(e) is not None),
        key=lambda e: promotion_time(e) or datetime.min.replace(tzinfo=UTC),
    )
    rollbacks = events.get("rollback", [])
    canary_rejections = [r for r in rollbacks if r.get("stage")]
    batches = sorted({e["batch_id"] for e in events.get("quality_gate", []) if e.get("batch_id")})
    lead = lead_times(releases, arrivals, versions)
    incidents = recoveries(events, releases)
    attempts = len(releases) + len(canary_rejections)
    return {
        "deployment_frequency": deployment_frequency(events, releases, batches),
        "lead_time": {
            "hours": summary([x["hours"] for x in lead if "hours" in x]),
            "per_release": lead,
            "definition": "newest batch of the promoted version landed -> promotion (wall clock)",
        },
        "change_failure_rate": {
            "attempts": attempts,
            "promotions": len(releases),
            "canary_rejections": len(canary_rejections),
            "rollbacks_total": len(rollbacks),
            "rate": ratio(len(rollbacks), attempts),
            "definition": "rollback records / (promotions + canary rejections)",
        },
        "time_to_recover": {
            "hours": summary([i["hours"] for i in incidents if "hours" in i]),
            "incidents": incidents,
            "open_incidents": sum(1 for i in incidents if i.get("open")),
            "definition": "drift monitor's retrain decision -> next promotion (new champion serving)",
        },
    }


def deployment_frequency(
    events: Events, releases: list[dict[str, Any]], batches: list[str]
) -> dict[str, Any]:
    stamps = [t for k in KINDS for e in events.get(k, []) if (t := parse_time(e.get("recorded_at")))]
    span_days = (max(stamps) - min(stamps)).total_seconds() / 86400 if len(stamps) > 1 else 0.0
    return {
        "promotions": len(releases),
        "batch_periods": len(batches),
        "per_batch_period": ratio(len(releases), len(batches)),
        "wall_clock_days": span_days,
        "per_wall_clock_day": len(releases) / span_days if span_days > 0 else None,
        "definition": "promotions (release records) per replayed batch period and per wall-clock day",
    }


def lead_times(
    releases: list[dict[str, Any]], arrivals: dict[str, list[datetime]], versions: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per promotion: arrival of the version's newest batch -> the promotion, or why unknown."""
    lead: list[dict[str, Any]] = []
    for ev in releases:
        v = str(ev.get("version"))
        info = versions.get(v)
        promoted = promotion_time(ev)
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
    return lead


def recoveries(events: Events, releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per retrain decision of the drift monitor: the next promotion, or an open incident."""
    incidents: list[dict[str, Any]] = []
    for d in sorted(events.get("retrain_decision", []), key=lambda e: e.get("recorded_at", "")):
        if d.get("action") != "retrain":
            continue
        t0 = parse_time(d.get("recorded_at"))
        if t0 is None:
            continue
        after = [r for r in releases if promotion_time(r) > t0]  # type: ignore[operator]
        inc: dict[str, Any] = {"window": d.get("key"), "detected_at": t0.isoformat()}
        if after:
            t1 = promotion_time(after[0])
            inc.update(
                recovered_by=str(after[0].get("version")),
                recovered_at=t1.isoformat(),  # type: ignore[union-attr]
                hours=(t1 - t0).total_seconds() / 3600,  # type: ignore[operator]
            )
        else:
            inc["open"] = True
        incidents.append(inc)
    return incidents


# --------------------------------------------------------------------------- gates and automation
def gate_metrics(events: Events) -> dict[str, Any]:
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
            "pass_rate": ratio(q_pass, len(q)),
            "rows_in": rows_in,
            "rows_quarantined": rows_q,
            "quarantined_share": ratio(rows_q, rows_in),
        },
        "evaluation_gate": {
            "candidates": len(g),
            "passed": g_pass,
            "pass_rate": ratio(g_pass, len(g)),
            "failed_criteria": dict(
                Counter(c for e in g if e.get("verdict") != "passed" for c in e.get("failed_criteria") or [])
            ),
        },
        "canary": {
            "attempts": promotions + rejected,
            "promoted": promotions,
            "pass_rate": ratio(promotions, promotions + rejected),
        },
    }


def automation_metrics(events: Events, airflow: dict[str, Any]) -> dict[str, Any]:
    """Who started what: the system (asset events, the monitor, schedules) or a person."""
    runs = events.get("training_run", [])
    triggers = Counter(trigger_of(str(e.get("reason") or "")) for e in runs)
    # Tuning / model choice are started by a person (or a schedule of theirs): not counted here.
    automated = triggers.get("asset event", 0) + triggers.get("drift monitor", 0)
    out: dict[str, Any] = {
        "training_triggers": dict(triggers),
        "training_automated_share": ratio(automated, len(runs)),
        "release_actions": dict(Counter(str(e.get("action")) for e in events.get("release", []))),
    }
    if airflow.get("available"):
        out["dag_runs"] = dag_run_metrics(airflow["runs"], airflow["source"])
    else:
        out["dag_runs"] = {"source": None, "reason": airflow.get("reason")}
    return out


def dag_run_metrics(dag_runs: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Runs per DAG, success rate and the share the scheduler (not a person) started."""
    per_dag: dict[str, dict[str, Any]] = {}
    for r in dag_runs:
        d = per_dag.setdefault(r["dag_id"], {"runs": 0, "success": 0, "failed": 0, "run_types": Counter()})
        d["runs"] += 1
        d["success"] += r["state"] == "success"
        d["failed"] += r["state"] == "failed"
        d["run_types"][r["run_type"]] += 1
    for d in per_dag.values():
        d["run_types"] = dict(d["run_types"])
    auto = sum(1 for r in dag_runs if r["run_type"] in AUTOMATED_RUN_TYPES)
    finished = [r for r in dag_runs if r["state"] in ("success", "failed")]
    return {
        "source": source,
        "total": len(dag_runs),
        "automated_share": ratio(auto, len(dag_runs)),
        "success_rate": ratio(sum(r["state"] == "success" for r in finished), len(finished)),
        "per_dag": per_dag,
        "note": "dag.test() (embedded demo) records runs as 'manual'; scheduler-started runs count "
        "as automated (scheduled, asset_triggered, backfill)",
    }


# --------------------------------------------------------------------------- trends
def trend_data(events: Events, settings: Settings, now: datetime) -> dict[str, Any]:
    """The series the HTML plots; a release without a time is placed at ``now``."""
    primary = settings.gate.for_task(settings.dataset.target.task).primary_metric
    return {
        "quality_gate": [
            {
                "batch": e.get("batch_id"),
                "accepted_share": ratio(int(e.get("rows_accepted") or 0), int(e.get("rows_in") or 0)),
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
            {"version": e.get("version"), "at": (promotion_time(e) or now).isoformat()}
            for e in events.get("release", [])
        ],
        "rollbacks": [
            {"version": e.get("version"), "at": e.get("recorded_at")} for e in events.get("rollback", [])
        ],
    }
