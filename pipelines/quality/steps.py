"""What the ``standardize_data_quality`` DAG tasks call: one function per task.

Each takes and returns small JSON-able dicts (batch id, URI, hash, counts), never
data, so Airflow only moves references between tasks. Settings are loaded inside
each step (the worker's environment decides the config), and every log line is
tagged with the batch id and the Airflow run id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from pipelines.config import Settings, load_settings
from pipelines.core.observability import get_logger, log_context
from pipelines.core.periods import batch_ids
from pipelines.data.landing import available_batches, land_batch
from pipelines.data.validated import published
from pipelines.quality.gate import validate_batch

log = get_logger(__name__)


def resolve_batch_id(
    settings: Settings,
    requested: str | None,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
) -> str:
    """The batch to process: the explicit ``batch_id`` param, else the one the data interval covers.

    The interval's midpoint is used, cut in the contract's timezone, so a monthly interval
    [Jan 1 00:00 UTC, Feb 1 00:00 UTC) maps to ``2013-01`` whatever the zone.
    """
    if requested:
        return requested.strip()
    if interval_start is None or interval_end is None:
        raise ValueError("no batch_id given and the run has no data interval to derive one from")
    start, end = pd.Timestamp(interval_start), pd.Timestamp(interval_end)
    mid = start + (end - start) / 2
    contract = settings.dataset
    batch = str(
        batch_ids(pd.Series([mid.isoformat()]), contract.batch_frequency, contract.event_timezone).iloc[0]
    )
    known = available_batches(settings)
    if batch not in known:
        raise ValueError(
            f"data interval {start} - {end} maps to batch {batch!r}, which the source does not have "
            f"(known: {known[0]}..{known[-1]}); trigger with conf {{'batch_id': ...}}"
        )
    return batch


def land_step(
    batch_id: str | None,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Land the batch (idempotent: identical content is not landed twice)."""
    settings = load_settings()
    batch = resolve_batch_id(settings, batch_id, interval_start, interval_end)
    with log_context(batch_id=batch, run_id=run_id):
        return land_batch(settings, batch).to_dict()


def validate_step(landed: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Run the gate on exactly the file the land task landed; raises BatchRejected on rejection."""
    settings = load_settings()
    verdict = validate_batch(settings, landed["batch_id"], run_id=run_id, expected_sha256=landed["sha256"])
    return {
        k: verdict[k]
        for k in (
            "dataset",
            "batch_id",
            "source_sha256",
            "status",
            "uri",
            "rows_in",
            "rows_accepted",
            "rows_quarantined",
            "failed_expectations",
        )
    } | {"report": verdict["paths"]["report_md"], "data_docs": verdict["paths"]["data_docs"]}


def publish_step(verdict: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Confirm the validated store holds this verdict's version; return the asset event's extra."""
    settings = load_settings()
    batch_id = verdict["batch_id"]
    with log_context(batch_id=batch_id, run_id=run_id):
        batch = published(settings, batch_id)
        if batch is None or batch.source_sha256 != verdict["source_sha256"]:
            found = None if batch is None else batch.source_sha256[:12]
            raise RuntimeError(
                f"batch {batch_id}: validated store holds {found}, not the version the gate passed "
                f"({verdict['source_sha256'][:12]}); nothing announced"
            )
        extra = {
            "dataset": batch.dataset,
            "batch_id": batch.batch_id,
            "uri": batch.uri,
            "rows": batch.rows,
            "rows_quarantined": batch.rows_quarantined,
            "status": batch.status,
            "source_sha256": batch.source_sha256,
        }
        log.info("validated batch announced", **extra)
        return extra
