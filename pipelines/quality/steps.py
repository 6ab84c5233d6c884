"""Entry points of the data-quality DAG: one function per task (land, validate, publish).

Each takes and returns the references of :mod:`pipelines.quality.contracts` (batch id, URIs,
hash, counts), never data, so the orchestrator only moves references between tasks. Settings are
loaded inside each step (the worker's environment decides the config), and every log line is
tagged with the batch id and the orchestrator's run id. Which failures are final is said by the
errors themselves (:mod:`pipelines.core.errors`): no such batch, or a rejected batch.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import pandas as pd

from pipelines.config import Settings, load_settings
from pipelines.core.errors import InvalidInputError, NothingToDoError
from pipelines.core.metrics import emit_quality_verdict
from pipelines.core.observability import get_logger, log_context
from pipelines.core.period_ids import check_batch_id
from pipelines.core.periods import period_for_interval
from pipelines.data.files import LandingError
from pipelines.data.landing import available_batches, land_batch
from pipelines.data.validated import published
from pipelines.quality.contracts import BatchVerdict, LandedBatch, PublishedBatch
from pipelines.quality.errors import BatchRejected, VersionMismatchError
from pipelines.quality.gate import refuse_file, validate_batch
from pipelines.quality.report import reject_message

log = get_logger(__name__)


def resolve_batch_id(
    settings: Settings,
    requested: str | None,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
) -> str:
    """The batch to process: the explicit ``batch_id`` param, else the one the data interval covers.

    The interval maps to its batch period through the kernel (its midpoint, cut in the contract's
    timezone), so a monthly interval [Jan 1 00:00 UTC, Feb 1 00:00 UTC) is ``2013-01`` whatever
    the zone.

    Raises:
        InvalidInputError: the given id is not a batch id of the contract (``../x``, ``2013-13``),
            or no batch is given nor derivable.
        NothingToDoError: the scheduled period has no configured batch (the run is skipped).
    """
    if requested and requested.strip():
        return check_batch_id(requested, settings.dataset.batch_frequency)
    if interval_start is None or interval_end is None:
        raise InvalidInputError("no batch_id given and the run has no data interval to derive one from")
    contract = settings.dataset
    batch = period_for_interval(
        interval_start, interval_end, contract.batch_frequency, contract.event_timezone
    )
    try:
        known = available_batches(settings)
    except LandingError:
        return batch  # the source itself is refused: landing reports it under this period's batch
    if batch not in known:
        # A scheduled run for a period without a batch (yet): nothing to validate, not a failure.
        start, end = pd.Timestamp(interval_start), pd.Timestamp(interval_end)
        span = f"{known[0]}..{known[-1]}" if known else "none"
        raise NothingToDoError(
            f"skipped: the scheduled period {start} - {end} is batch {batch!r}, which is not among "
            f"the configured batches ({span}); trigger with conf {{'batch_id': ...}} for another one"
        )
    return batch


def land(
    batch_id: str | None,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    run_id: str | None = None,
) -> LandedBatch:
    """Land the batch (idempotent: identical content is not landed twice).

    Raises:
        BatchRejected: the source cannot be read as the contract's table, or has no rows for the
            batch; the named failure is reported and quarantined (final: no retry helps).
    """
    settings = load_settings()
    batch = resolve_batch_id(settings, batch_id, interval_start, interval_end)
    with log_context(batch_id=batch, run_id=run_id):
        try:
            return land_batch(settings, batch)
        except LandingError as refused:
            # refused at the door: reported and quarantined like a rejected batch, and as final
            report = refuse_file(settings, batch, refused, run_id=run_id)
            emit_quality_verdict(settings, report)
            raise BatchRejected(reject_message(report), report) from refused


def validate(landed: LandedBatch, run_id: str | None = None) -> BatchVerdict:
    """Run the gate on exactly the file the land task landed; raises BatchRejected on rejection."""
    settings = load_settings()
    try:
        report = validate_batch(settings, landed.batch_id, run_id=run_id, expected_sha256=landed.sha256)
    except BatchRejected as rejected:
        emit_quality_verdict(settings, rejected.verdict)  # the rejection's metric, then the failure
        raise
    emit_quality_verdict(settings, report)
    return BatchVerdict.from_report(report)


def publish(verdict: BatchVerdict, run_id: str | None = None) -> PublishedBatch:
    """Confirm the validated store holds this verdict's version; return the asset event's extra."""
    settings = load_settings()
    batch_id = verdict.batch_id
    with log_context(batch_id=batch_id, run_id=run_id):
        batch = published(settings, batch_id)
        if batch is None or batch.source_sha256 != verdict.source_sha256:
            found = None if batch is None else batch.source_sha256[:12]
            raise VersionMismatchError(
                f"batch {batch_id}: validated store holds {found}, not the version the gate passed "
                f"({verdict.source_sha256[:12]}); nothing announced"
            )
        extra = PublishedBatch.from_validated(batch)
        log.info("validated batch announced", **asdict(extra))
        return extra
