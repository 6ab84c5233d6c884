"""Everything the scorecard reads, in one place: the pipeline's records and the checkout's files.

Sources, each named in the card next to the figures it gave:

* **event records** (``observability.read_events``): quality_gate, training_run,
  gate_verdict, canary_step, release, rollback, monitoring_window,
  retrain_decision, alert, and this package's optimize_* records;
* **landing manifests**: when each batch arrived (``landed_at``);
* **the MLflow registry**: versions, their lineage tags (training batches), aliases;
* **the prediction log** (through :mod:`pipelines.core.predlog`): row counts;
* **the Airflow metadata DB** (read-only ``dag_run`` rows, :mod:`.airflow_db`) when reachable;
* **the checkout**: deployment files, CI entry points, test modules, the expectation suite;
* the latest cost and capacity reports.

DAG files are not read here: the driver hands over the stages and the files that define them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import REPO_ROOT, Settings
from pipelines.core.observability import read_events
from pipelines.core.redact import redact_text
from pipelines.optimize.scorecard.airflow_db import airflow_runs
from pipelines.optimize.scorecard.metrics import KINDS, LINEAGE_TAGS, Events, parse_time
from pipelines.optimize.scorecard.readiness import (
    CI_FILES,
    DEPLOYMENT_FILES,
    CheckoutFacts,
    PredictionLogReach,
)


@dataclass(frozen=True)
class ScorecardRecords:
    """What one scorecard is computed from (JSON-like documents, as the card shows them)."""

    events: Events
    registry: dict[str, Any]
    airflow: dict[str, Any]
    arrivals: dict[str, list[datetime]]
    prediction_log: PredictionLogReach
    checkout: CheckoutFacts
    cost: dict[str, Any] | None
    capacity: dict[str, Any] | None


def read_records(settings: Settings) -> ScorecardRecords:
    return ScorecardRecords(
        events={k: read_events(settings.paths.events, k) for k in KINDS},
        registry=registry_versions(settings),
        airflow=airflow_runs(settings),
        arrivals=batch_arrivals(settings),
        prediction_log=prediction_log_reach(settings),
        checkout=checkout_facts(settings),
        cost=latest_report(settings, "cost"),
        capacity=latest_report(settings, "capacity"),
    )


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
        from pipelines.core.registry import client_for, list_versions

        client = client_for(settings)
        versions = list_versions(settings, client)
        aliases: dict[str, str] = {}
        if versions:
            aliases = dict(client.get_registered_model(settings.mlflow.registered_model).aliases)
    except Exception as exc:
        return {
            "error": redact_text(
                f"registry unavailable ({settings.tracking_uri}): {type(exc).__name__}: {exc}"
            )[:400]
        }
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
            "lineage_complete": all(tags.get(k) for k in LINEAGE_TAGS),
        }
    return {"versions": out, "aliases": aliases}


def prediction_log_reach(settings: Settings) -> PredictionLogReach:
    try:
        import sqlalchemy as sa

        from pipelines.core.predlog import count_labels, count_predictions, log_url

        n_pred = count_predictions(settings)
        n_labels = count_labels(settings)
        url = sa.make_url(log_url(settings)).render_as_string(hide_password=True)
        return PredictionLogReach(True, f"{url}: {n_pred} predictions, {n_labels} labels")
    except Exception as exc:
        return PredictionLogReach(False, f"{type(exc).__name__}: {exc}"[:300])


def checkout_facts(settings: Settings, root: Path = REPO_ROOT) -> CheckoutFacts:
    """Deployment files, CI entry points and test modules present in ``root``; the suite's size.

    Test modules are counted in ``tests/`` and its tiers (``tests/unit``, ``tests/integration``,
    ``tests/e2e``).
    """
    suite = settings.resolve(settings.dataset.expectation_suite)
    n_exp = len(json.loads(suite.read_text()).get("expectations", [])) if suite.exists() else 0
    return CheckoutFacts(
        deployment_present=tuple(f for f in DEPLOYMENT_FILES if (root / f).exists()),
        ci_present=tuple(p for p in CI_FILES if (root / p).exists()),
        test_modules=sum(1 for _ in (root / "tests").rglob("test_*.py")),
        suite_name=suite.name,
        suite_expectations=n_exp,
    )


def latest_report(settings: Settings, kind: str) -> dict[str, Any] | None:
    path = settings.paths.reports / "optimize" / kind / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None
