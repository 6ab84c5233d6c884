"""What the ``land -> validate -> publish`` tasks hand each other: references, never data.

Each step returns one of these frozen dataclasses; ``dags/_common.call`` turns it into JSON for
XCom and the next step gets it back as the same type (``pipelines.core.contracts.invoke``). What
travels: the batch id, URIs, the landed file's sha256 and row counts; the rows stay in the landing
and validated stores, the findings in the gate's report (whose path travels).

The chain::

    land -> LandedBatch -> validate -> BatchVerdict -> publish -> PublishedBatch (the asset extra)

Kept light (no GX, no MLflow): ``steps`` imports it at module level, and so may any caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.data.landing import LandedBatch
from pipelines.data.validated import ValidatedBatch

__all__ = ["BatchVerdict", "LandedBatch", "PublishedBatch"]


@dataclass(frozen=True)
class BatchVerdict:
    """The gate's verdict on the landed version that passed (a rejection fails the task instead)."""

    dataset: str
    batch_id: str
    source_sha256: str
    status: str  # "passed" | "passed_with_warnings"
    uri: str | None  # the published accepted rows
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    failed_expectations: tuple[str, ...]  # labels of the (row-level) rules that quarantined rows
    report: str  # report.md of this version
    data_docs: str  # GX Data Docs index of this version

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> BatchVerdict:
        return cls(
            dataset=report["dataset"],
            batch_id=report["batch_id"],
            source_sha256=report["source_sha256"],
            status=report["status"],
            uri=report["uri"],
            rows_in=report["rows_in"],
            rows_accepted=report["rows_accepted"],
            rows_quarantined=report["rows_quarantined"],
            failed_expectations=tuple(report["failed_expectations"]),
            report=report["paths"]["report_md"],
            data_docs=report["paths"]["data_docs"],
        )


@dataclass(frozen=True)
class PublishedBatch:
    """The ``validated_batch`` asset event's extra: what training and monitoring are told."""

    dataset: str
    batch_id: str
    uri: str
    rows: int
    rows_quarantined: int
    status: str
    source_sha256: str

    @classmethod
    def from_validated(cls, batch: ValidatedBatch) -> PublishedBatch:
        return cls(
            dataset=batch.dataset,
            batch_id=batch.batch_id,
            uri=batch.uri,
            rows=batch.rows,
            rows_quarantined=batch.rows_quarantined,
            status=batch.status,
            source_sha256=batch.source_sha256,
        )
