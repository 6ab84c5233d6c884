"""The quality gate's effects around its pure verdict: read, run GX, write evidence, publish, record.

:func:`validate_batch` validates the current landed version of a batch. The decision itself is
:func:`pipelines.quality.verdict.decide` (pure); this module gathers its inputs (the file read,
the GX run) and carries it out. Evidence first (reports, Data Docs, quarantine, laid out as in
:mod:`pipelines.quality.paths`), publication last::

    validated/<dataset>/<batch>/{accepted.parquet, _PUBLISHED.json}   (marker written last)

Nothing is lost: rows in = rows accepted + rows quarantined is checked on the frames about to be
written, before anything is published, and a violation raises instead of publishing.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context, record_event, write_json_atomic
from pipelines.data.files import LandingError, count_records
from pipelines.data.landing import LandedBatch, current_landed, sha256_file
from pipelines.data.validated import published, validated_dir
from pipelines.quality import store
from pipelines.quality.errors import BatchRejected, VersionMismatchError
from pipelines.quality.gx_runner import GxOutcome, render_suite_docs, run_suite, share_static_assets
from pipelines.quality.paths import GatePaths, gate_paths
from pipelines.quality.reader import ReadResult, read_landed
from pipelines.quality.report import build_report, reject_message, render_markdown
from pipelines.quality.results import STRUCTURAL, Failure
from pipelines.quality.rows import accepted_frame, attach_samples, quarantine_frame
from pipelines.quality.suite import SuiteSpec, load_suite, suite_parameters
from pipelines.quality.verdict import (
    PASSED_WITH_WARNINGS,
    REJECTED,
    Publication,
    check_nothing_lost,
    decide,
    publication,
)

log = get_logger(__name__)


def validate_batch(
    settings: Settings,
    batch_id: str,
    *,
    run_id: str | None = None,
    expected_sha256: str | None = None,
    now: pd.Timestamp | None = None,
    raise_on_reject: bool = True,
) -> dict[str, Any]:
    """Validate the current landed version of ``batch_id``; publish or quarantine it.

    Returns the report (a JSON-able dict, also written as ``report.json``). Raises
    :class:`BatchRejected` after quarantining when the batch is rejected (unless
    ``raise_on_reject`` is False, for tools that want the verdict either way).
    """
    with log_context(batch_id=batch_id, run_id=run_id):
        landed = current_landed(settings, batch_id)
        if expected_sha256 is not None and landed.sha256 != expected_sha256:
            raise VersionMismatchError(
                f"batch {batch_id}: current landed file is {landed.sha256[:12]}, expected "
                f"{expected_sha256[:12]} (a newer version was landed meanwhile; re-run the gate)"
            )
        staged: list[Path] = []
        with log_context(sha=landed.sha256[:12]):
            try:
                report = _validate(settings, landed, run_id, now, staged)
            finally:
                for folder in staged:  # left over only when something failed half-way
                    shutil.rmtree(folder, ignore_errors=True)
        if report["status"] == REJECTED and raise_on_reject:
            raise BatchRejected(reject_message(report), report)
        return report


def _inspect(
    settings: Settings,
    landed: LandedBatch,
    spec: SuiteSpec,
    docs_dir: Path,
    now: pd.Timestamp | None,
    timings: dict[str, float],
) -> tuple[ReadResult, GxOutcome | None]:
    """Read the file and, if it is a table, run the suite on it (Data Docs into ``docs_dir``)."""
    contract = settings.dataset
    t0 = time.perf_counter()
    read = read_landed(landed.path, contract)
    timings["read_s"] = time.perf_counter() - t0
    if read.frame is None or read.raw is None:
        # No table: render the suite alone so the Data Docs path always exists.
        render_suite_docs(spec, docs_dir, {"landed_columns": list(contract.landed_columns)})
        return read, None
    outcome = run_suite(
        read.frame,
        spec,
        suite_parameters(contract, landed.batch_id, now),
        docs_dir=docs_dir,
        run_name=f"{contract.name}-{landed.batch_id}-{landed.sha256[:12]}",
    )
    timings.update(outcome.timings)
    attach_samples(
        [*read.failures, *outcome.failures],
        outcome.row_positions,
        read.raw,
        settings.quality.sample_bad_values,
    )
    return read, outcome


def _validate(
    settings: Settings,
    landed: LandedBatch,
    run_id: str | None,
    now: pd.Timestamp | None,
    staged: list[Path],
) -> dict[str, Any]:
    spec = load_suite(settings)
    paths = gate_paths(settings, landed.batch_id, landed.sha256)
    timings: dict[str, float] = {}
    log.info("validating batch", file=str(landed.path), suite=str(spec.path))
    staged_docs = store.staging(paths.data_docs, staged)
    read, gx = _inspect(settings, landed, spec, staged_docs, now, timings)

    table = None if gx is None or read.frame is None else read.frame
    verdict = decide(
        read.failures,
        gx.failures if gx is not None else (),
        gx.row_positions if gx is not None else {},
        rows_in=read.records,  # CSV records the reader found; 0 when the file is not CSV text
        table_rows=None if table is None else len(table),
        row_level_max_share=settings.quality.row_level_max_share,
    )
    accepted: pd.DataFrame | None = None
    rows: pd.DataFrame | None = None
    if table is not None and read.raw is not None:
        accepted = accepted_frame(table, verdict, settings)
        rows = quarantine_frame(read.raw, verdict)
        check_nothing_lost(
            landed.batch_id, verdict.rows_in, 0 if accepted is None else len(accepted), len(rows)
        )

    previous = published(settings, landed.batch_id)
    action = publication(verdict, landed.sha256, previous.source_sha256 if previous is not None else None)
    report = build_report(
        verdict,
        dataset=settings.dataset.name,
        landed=landed,
        suite_name=spec.name,
        suite_path=spec.path,
        paths=paths,
        validated=validated_dir(settings, landed.batch_id),
        publication=action,
        published_sha256=previous.source_sha256 if previous is not None else None,
        run_id=run_id,
        validated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

    t0 = time.perf_counter()
    _write_evidence(settings, landed, paths, report, gx, rows, staged, staged_docs)
    if action is Publication.PUBLISH:
        assert accepted is not None  # PUBLISH means a table that passed
        store.publish(settings, landed, accepted, verdict.status, verdict.rows_quarantined)
    elif action is Publication.WITHDRAW:
        store.withdraw(settings, landed.batch_id)
    timings["write_s"] = time.perf_counter() - t0
    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    _record(settings, landed, report)
    return report


def _write_evidence(
    settings: Settings,
    landed: LandedBatch,
    paths: GatePaths,
    report: dict[str, Any],
    gx: GxOutcome | None,
    rows: pd.DataFrame | None,
    staged: list[Path],
    staged_docs: Path,
) -> None:
    """GX result, reports and quarantine built in staging folders, then swapped in whole."""
    staged_reports = store.staging(paths.reports, staged)
    write_json_atomic(
        staged_reports / "gx_result.json", (gx.result if gx else {}) or {"not_run": "file unreadable"}
    )
    staged_q: Path | None = None
    if report["paths"]["quarantine"] is not None:
        staged_q = store.staging(paths.quarantine, staged)
        if rows is None:
            store.quarantine_file(staged_q, landed)
        else:
            store.quarantine_rows(staged_q, rows)
    markdown = render_markdown(report)
    for folder in [staged_reports, *([staged_q] if staged_q else [])]:
        store.write_report(folder, report, markdown)
    share_static_assets(staged_docs, settings.paths.data_docs / settings.dataset.name / "_static")
    store.swap_dir(staged_docs, paths.data_docs)
    store.swap_dir(staged_reports, paths.reports)
    if staged_q is not None:
        store.swap_dir(staged_q, paths.quarantine)
    else:
        shutil.rmtree(paths.quarantine, ignore_errors=True)  # stale evidence of this same file


def _record(settings: Settings, landed: LandedBatch, report: dict[str, Any]) -> None:
    """The gate's event (and an alert on rejection) in the event store, and one log line."""
    status = report["status"]
    record_event(
        settings.paths.events,
        "quality_gate",
        key=f"{landed.batch_id}:{landed.sha256[:12]}",
        dataset=settings.dataset.name,
        batch_id=landed.batch_id,
        source_sha256=landed.sha256,
        status=status,
        rows_in=report["rows_in"],
        rows_accepted=report["rows_accepted"],
        rows_quarantined=report["rows_quarantined"],
        failed_expectations=report["failed_expectations"],
        report=report["paths"]["report_md"],
        data_docs=report["paths"]["data_docs"],
        uri=report["uri"],
    )
    level = log.error if status == REJECTED else (log.warning if status == PASSED_WITH_WARNINGS else log.info)
    level(
        "quality gate verdict",
        status=status,
        rows_in=report["rows_in"],
        rows_accepted=report["rows_accepted"],
        rows_quarantined=report["rows_quarantined"],
        failed=report["failed_expectations"][:10],
        report=report["paths"]["report_md"],
    )
    if status == REJECTED:
        record_event(
            settings.paths.events,
            "alert",
            key=f"quality_gate:{landed.batch_id}:{landed.sha256[:12]}",
            source="quality_gate",
            severity="error",
            message=reject_message(report),
            report=report["paths"]["report_md"],
        )


def refuse_file(
    settings: Settings, batch_id: str, error: LandingError, *, run_id: str | None = None
) -> dict[str, Any]:
    """Report a file refused at the landing door as the gate reports a rejected batch, and quarantine it.

    The door (:mod:`pipelines.data.files`) names why the file never became a table; this writes
    that named critical failure (``structure:<check>``) in the gate's own report format and place
    (``reports/quality/<dataset>/<batch>/<sha12 of the refused file>/``), copies the file byte for
    byte into quarantine (when the file itself is the evidence), records the gate event and the
    alert, and leaves the batch's current landed and published versions as they were. Returns
    the report; the caller raises or exits.
    """
    contract = settings.dataset
    with log_context(batch_id=batch_id, run_id=run_id):
        file = error.file
        sha = sha256_file(file) if file.is_file() else "0" * 64
        if error.quarantine_file and not error.rows_in:
            error.rows_in = count_records(file)  # CSV records; 0 when it is not CSV text
        landed = LandedBatch(contract.name, batch_id, f"file://{file}", sha, error.rows_in)
        paths = gate_paths(settings, batch_id, sha)
        spec = load_suite(settings)
        failure = Failure(
            expectation=f"{STRUCTURAL}:{error.check}",
            type=f"{STRUCTURAL}:{error.check}",
            severity="critical",
            message=str(error),
            why=error.why,
        )
        verdict = decide(
            [failure],
            (),
            {},
            rows_in=error.rows_in,
            table_rows=None,
            row_level_max_share=settings.quality.row_level_max_share,
        )
        previous = published(settings, batch_id)
        action = publication(verdict, sha, previous.source_sha256 if previous is not None else None)
        report = build_report(
            verdict,
            dataset=contract.name,
            landed=landed,
            suite_name=spec.name,
            suite_path=spec.path,
            paths=paths,
            validated=validated_dir(settings, batch_id),
            publication=action,
            published_sha256=previous.source_sha256 if previous is not None else None,
            run_id=run_id,
            validated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        report["refused_at_landing"] = {"check": error.check, "file": str(file)}
        report["paths"]["data_docs"] = None  # the suite never ran: no Data Docs for this file
        if not error.quarantine_file:
            report["paths"]["quarantine_rows"] = None
        staged: list[Path] = []
        try:
            staged_reports = store.staging(paths.reports, staged)
            write_json_atomic(
                staged_reports / "gx_result.json", {"not_run": f"refused at landing: {error.check}"}
            )
            staged_q = store.staging(paths.quarantine, staged)
            if error.quarantine_file and file.is_file():
                store.quarantine_file(staged_q, landed)
            markdown = render_markdown(report)
            for folder in (staged_reports, staged_q):
                store.write_report(folder, report, markdown)
            store.swap_dir(staged_reports, paths.reports)
            store.swap_dir(staged_q, paths.quarantine)
        finally:
            for folder in staged:
                shutil.rmtree(folder, ignore_errors=True)
        if action is Publication.WITHDRAW:
            store.withdraw(settings, batch_id)
        _record(settings, landed, report)
        return report


def read_report(settings: Settings, batch_id: str, sha256: str | None = None) -> dict[str, Any] | None:
    """The gate's report for a batch version (default: the current landed one), or None."""
    sha = sha256 or current_landed(settings, batch_id).sha256
    path = gate_paths(settings, batch_id, sha).report_json
    return json.loads(path.read_text()) if path.exists() else None
