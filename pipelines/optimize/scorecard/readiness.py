"""The measurable points of the readiness scorecard, each judged on the evidence it shows.

Pure: every fact arrives as an argument (records read by :mod:`.records` and :mod:`.airflow_db`,
the stages and DAG files handed over by the driver), so a point can be checked on a constructed
case. Three phases, in the card's order: infrastructure, automation maturity, quality management.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.config import Settings
from pipelines.optimize.contracts import StageDag
from pipelines.optimize.scorecard.metrics import Events, trigger_of

INFRA, AUTO, QUAL = "infrastructure", "automation maturity", "quality management"
#: Files that make the deployment reproducible, and the CI entry points, relative to the checkout.
DEPLOYMENT_FILES = ("docker-compose.yml", "infra/Dockerfile", "infra/helm", "requirements.lock")
CI_FILES = (".ci/run", ".github/workflows", ".pre-commit-config.yaml")


@dataclass(frozen=True)
class PredictionLogReach:
    """Whether the prediction log answered, with the counts (or the error) as evidence."""

    reachable: bool
    evidence: str


@dataclass(frozen=True)
class CheckoutFacts:
    """What the code checkout holds: deployment files, CI entry points, tests, the expectation suite."""

    deployment_present: tuple[str, ...]
    ci_present: tuple[str, ...]
    test_modules: int
    suite_name: str
    suite_expectations: int


def point(category: str, item: str, passed: bool | None, evidence: str) -> dict[str, Any]:
    return {"category": category, "item": item, "passed": passed, "evidence": evidence}


def infrastructure_points(
    settings: Settings,
    registry: dict[str, Any],
    airflow: dict[str, Any],
    prediction_log: PredictionLogReach,
    checkout: CheckoutFacts,
) -> list[dict[str, Any]]:
    versions = registry.get("versions", {})
    present = list(checkout.deployment_present)
    return [
        point(
            INFRA,
            "experiment tracking + model registry reachable",
            "error" not in registry,
            registry.get("error") or f"{settings.tracking_uri}: {len(versions)} versions",
        ),
        point(INFRA, "prediction log reachable", prediction_log.reachable, prediction_log.evidence),
        point(
            INFRA,
            "orchestrator records reachable",
            bool(airflow.get("available")),
            airflow.get("source", "") + f" ({len(airflow.get('runs', []))} DAG runs)"
            if airflow.get("available")
            else str(airflow.get("reason")),
        ),
        point(
            INFRA,
            "reproducible deployment definitions (compose, image, Helm, lock file)",
            len(present) == len(DEPLOYMENT_FILES),
            f"present: {present}; missing: {sorted(set(DEPLOYMENT_FILES) - set(present))}",
        ),
    ]


def stage_points(stage_dags: Sequence[StageDag], airflow: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per lifecycle stage: a DAG file defines its DAG (and how often it succeeded)."""
    pts = []
    for s in stage_dags:
        hit = list(s.defined_in)
        ran = None
        if airflow.get("available"):
            ran = sum(1 for r in airflow["runs"] if r["dag_id"] == s.dag_id and r["state"] == "success")
        pts.append(
            point(
                AUTO,
                f"stage automated by a DAG: {s.stage}",
                bool(hit),
                f"{s.dag_id} in {hit or 'no DAG file'}" + ("" if ran is None else f"; {ran} successful runs"),
            )
        )
    return pts


def automation_points(
    events: Events, airflow: dict[str, Any], stage_dags: Sequence[StageDag], checkout: CheckoutFacts
) -> list[dict[str, Any]]:
    runs = events.get("training_run", [])
    auto_runs = [
        e for e in runs if trigger_of(str(e.get("reason") or "")) in ("asset event", "drift monitor")
    ]
    decisions = [d for d in events.get("retrain_decision", []) if d.get("action") == "retrain"]
    auto_rb = [r for r in events.get("rollback", []) if r.get("stage")]
    ci = list(checkout.ci_present)
    return [
        *stage_points(stage_dags, airflow),
        point(
            AUTO,
            "training started by the system (asset event or drift monitor)",
            bool(auto_runs),
            f"{len(auto_runs)} of {len(runs)} training runs",
        ),
        point(
            AUTO,
            "closed loop: drift monitor decided to retrain",
            bool(decisions),
            f"{len(decisions)} retrain decisions of {len(events.get('retrain_decision', []))}",
        ),
        point(
            AUTO,
            "automatic rollback exercised (canary rejected during rollout)",
            bool(auto_rb),
            f"{len(auto_rb)} canary rejections: "
            + ", ".join(f"v{r.get('version')} at {r.get('stage')}" for r in auto_rb[:5]),
        ),
        point(AUTO, "CI entry point defined", bool(ci), f"present: {ci}"),
    ]


def quality_points(
    settings: Settings,
    events: Events,
    registry: dict[str, Any],
    gates: dict[str, Any],
    checkout: CheckoutFacts,
) -> list[dict[str, Any]]:
    qg, eg = gates["quality_gate"], gates["evaluation_gate"]
    gcfg = settings.gate
    absolute = gcfg.for_task(settings.dataset.target.task).absolute
    versions = registry.get("versions", {})
    lineage = [v for v, info in versions.items() if info["lineage_complete"]]
    mon = [w for w in events.get("monitoring_window", []) if w.get("status") == "ok"]
    n_exp = checkout.suite_expectations
    return [
        point(
            QUAL,
            "data quality gate with an expectation suite, run on every batch",
            n_exp > 0 and qg["batches"] > 0,
            f"{checkout.suite_name}: {n_exp} expectations; {qg['batches']} batch verdicts {qg['by_status']}",
        ),
        point(
            QUAL,
            "bad data stopped (rows quarantined or batch rejected)",
            qg["rows_quarantined"] > 0 or qg["by_status"].get("rejected", 0) > 0,
            f"{qg['rows_quarantined']} rows quarantined, "
            f"{qg['by_status'].get('rejected', 0)} batches rejected",
        ),
        point(
            QUAL,
            "evaluation gate: absolute bound + champion comparison + slices + behaviour checks",
            bool(absolute)
            and bool(settings.dataset.slice_columns)
            and len(gcfg.behavioural) > 0
            and eg["candidates"] > 0,
            f"absolute {absolute}, slices "
            f"{settings.dataset.slice_columns}, {len(gcfg.behavioural)} behaviour checks; "
            f"{eg['candidates']} verdicts ({eg['passed']} passed)",
        ),
        point(
            QUAL,
            "every model version carries lineage (data batches, code version, dedupe key)",
            bool(versions) and len(lineage) == len(versions),
            f"{len(lineage)} of {len(versions)} versions",
        ),
        point(
            QUAL,
            "production monitoring ran (drift + performance windows)",
            bool(mon),
            f"{len(mon)} windows monitored of {len(events.get('monitoring_window', []))}",
        ),
        point(
            QUAL,
            "automated test suite",
            checkout.test_modules > 0,
            f"{checkout.test_modules} test modules",
        ),
    ]


def score(pts: list[dict[str, Any]]) -> dict[str, Any]:
    """Points per category and the total; a point judged ``None`` is shown but not scored."""
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


def readiness(
    settings: Settings,
    events: Events,
    registry: dict[str, Any],
    airflow: dict[str, Any],
    gates: dict[str, Any],
    prediction_log: PredictionLogReach,
    checkout: CheckoutFacts,
    stage_dags: Sequence[StageDag],
) -> dict[str, Any]:
    """The measurable points of the readiness scorecard, each with the evidence it was judged on."""
    return score(
        [
            *infrastructure_points(settings, registry, airflow, prediction_log, checkout),
            *automation_points(events, airflow, stage_dags, checkout),
            *quality_points(settings, events, registry, gates, checkout),
        ]
    )
