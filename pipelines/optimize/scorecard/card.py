"""The operations scorecard: delivery and reliability figures computed from the pipeline's own records.

:func:`build_scorecard` reads the records once (:mod:`.records`), then everything else is pure:
the KPI maths (:mod:`.metrics`), the readiness points (:mod:`.readiness`) and the card itself
(:func:`card_from_records`). Rendering is :mod:`.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pipelines.config import Settings
from pipelines.optimize.contracts import StageDag
from pipelines.optimize.scorecard.metrics import (
    automation_metrics,
    delivery_metrics,
    gate_metrics,
    trend_data,
)
from pipelines.optimize.scorecard.readiness import readiness
from pipelines.optimize.scorecard.records import ScorecardRecords, read_records


def build_scorecard(settings: Settings, stage_dags: Sequence[StageDag]) -> dict[str, Any]:
    """Compute the whole card from the records (no side effects besides reading).

    ``stage_dags`` comes from the driver: each lifecycle stage, its DAG id and the DAG files
    that define it (see :mod:`.dag_files`).
    """
    return card_from_records(settings, read_records(settings), stage_dags, datetime.now(UTC))


def card_from_records(
    settings: Settings, records: ScorecardRecords, stage_dags: Sequence[StageDag], now: datetime
) -> dict[str, Any]:
    """The card as a JSON-ready dict; ``now`` stamps it (and places releases without a time)."""
    events, registry, airflow = records.events, records.registry, records.airflow
    gates = gate_metrics(events)
    versions = registry.get("versions", {})
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "dataset": settings.dataset.name,
        "model": settings.mlflow.registered_model,
        "sources": {
            "events": str(settings.paths.events),
            "event_counts": {k: len(v) for k, v in events.items()},
            "registry": registry.get("error") or settings.tracking_uri,
            "airflow": airflow.get("source") or airflow.get("reason"),
            "landing": str(settings.paths.landing / settings.dataset.name),
        },
        "delivery": delivery_metrics(events, records.arrivals, versions),
        "gates": gates,
        "automation": automation_metrics(events, airflow),
        "readiness": readiness(
            settings, events, registry, airflow, gates, records.prediction_log, records.checkout, stage_dags
        ),
        "registry": registry,
        "cost": records.cost,
        "capacity": records.capacity,
        "trends": trend_data(events, settings, now),
    }
