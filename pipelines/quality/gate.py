"""The quality gate step: validate the current landed version of a batch, then publish or quarantine.

Verdicts:

* ``passed`` -- every rule held; all rows are published.
* ``passed_with_warnings`` -- only row-level rules failed, on at most
  ``quality.row_level_max_share`` of the rows; those rows are quarantined, the rest
  published.
* ``rejected`` -- a critical rule failed, the file is structurally broken, or too many
  rows failed row-level rules; every row is quarantined, nothing is published and
  :class:`BatchRejected` is raised so the orchestrator stops downstream work.

Outputs, all keyed by the landed file's content hash so a corrected replay never
overwrites the evidence of an earlier rejection, and re-validating the same file
rewrites the same paths (no duplicates)::

    reports/quality/<dataset>/<batch>/<sha12>/{gx_result.json, report.json, report.md}
    reports/data_docs/<dataset>/<batch>/<sha12>/index.html        (GX Data Docs)
    quarantine/<dataset>/<batch>/<sha12>/{rows.parquet | <raw file>, report.json, report.md}
    validated/<dataset>/<batch>/{accepted.parquet, _PUBLISHED.json}   (marker written last)

Nothing is lost: rows in = rows accepted + rows quarantined is checked before anything
is published, and a violation raises instead of publishing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context, record_event, write_json_atomic
from pipelines.data.landing import LandedBatch, current_landed, sha256_file
from pipelines.data.validated import MARKER, ValidatedBatch, published, validated_dir
from pipelines.quality.gx_runner import render_suite_docs, run_suite, share_static_assets
from pipelines.quality.reader import read_landed
from pipelines.quality.report import render_markdown
from pipelines.quality.results import STRUCTURAL, Failure, jsonable
from pipelines.quality.suite import load_suite, suite_parameters

log = get_logger(__name__)

PASSED = "passed"
PASSED_WITH_WARNINGS = "passed_with_warnings"
REJECTED = "rejected"


class BatchRejected(RuntimeError):  # noqa: N818 -- named as the verdict it reports
    """A batch failed the gate; it is already quarantined. ``verdict`` is the full gate result."""

    def __init__(self, message: str, verdict: dict[str, Any]) -> None:
        super().__init__(message)
        self.verdict = verdict


class NothingLostError(RuntimeError):
    """Accepted + quarantined rows do not add up to the rows read: a bug, never publish."""


@dataclass(frozen=True)
class GatePaths:
    reports: Path
    data_docs: Path
    quarantine: Path

    @property
    def report_json(self) -> Path:
        return self.reports / "report.json"

    @property
    def report_md(self) -> Path:
        return self.reports / "report.md"

    @property
    def gx_result(self) -> Path:
        return self.reports / "gx_result.json"

    @property
    def data_docs_index(self) -> Path:
        return self.data_docs / "index.html"


def gate_paths(settings: Settings, batch_id: str, sha256: str) -> GatePaths:
    key = (settings.dataset.name, batch_id, sha256[:12])
    return GatePaths(
        reports=settings.paths.reports.joinpath("quality", *key),
        data_docs=settings.paths.data_docs.joinpath(*key),
        quarantine=settings.paths.quarantine.joinpath(*key),
    )


def _swap_dir(staged: Path, final: Path) -> None:
    """Replace ``final`` by ``staged`` (same filesystem), so a re-run never leaves a mix."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _staging(final: Path, registry: list[Path]) -> Path:
    """A hidden sibling folder to build ``final`` in; registered so a failure can remove it."""
    staged = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    registry.append(staged)
    return staged


def _failure_rank(f: Failure) -> tuple[int, int, str]:
    """Critical before row-level; within them causes before consequences (a file with no rows also
    fails every completeness rule, but the row count is what the reader needs to see first)."""
    kind = f.type
    order = (
        0 if kind.startswith(STRUCTURAL)
        else 1 if kind.startswith("expect_table_")
        else 2 if kind == "expect_column_values_to_be_in_type_list"
        else 4 if kind.startswith("quality.")
        else 3
    )  # fmt: skip
    return (f.severity != "critical", order, f.expectation)


def _sample(values: pd.Series, n: int) -> list[Any]:
    out: list[Any] = []
    for v in values:
        shown = None if pd.isna(v) else v
        if shown not in out:
            out.append(shown)
        if len(out) >= n:
            break
    return jsonable(out)  # type: ignore[no-any-return]


def _typed_accepted(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The published schema: event time as UTC datetime, numerics float, categoricals str, target numeric.

    Numeric features are always float64 so every batch has the same schema whether or not
    it happens to contain nulls (int columns with a null would otherwise flip type).
    """
    contract = settings.dataset
    out = frame[contract.landed_columns].copy()
    try:
        for col in contract.features.numeric:
            out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
        target = pd.to_numeric(out[contract.target.name], errors="raise")
    except (ValueError, TypeError) as exc:
        raise RuntimeError(
            f"accepted rows of {contract.name} cannot be typed ({exc}); the suite "
            f"{contract.expectation_suite} needs a type rule for this column"
        ) from exc
    if contract.target.task == "classification":
        if (target != target.round()).any():
            raise RuntimeError(f"classification target {contract.target.name} has non-integer values")
        out[contract.target.name] = target.astype("int64")
    else:
        out[contract.target.name] = target.astype("float64")
    for col in [contract.id.column, *contract.features.categorical]:
        values = out[col]
        out[col] = values.astype(object).where(values.isna(), values.astype(str))  # nulls stay null
    out[contract.event_time] = pd.to_datetime(out[contract.event_time], utc=True)
    return out.reset_index(drop=True)


def _publish(
    settings: Settings, landed: LandedBatch, accepted: pd.DataFrame, status: str, quarantined: int
) -> ValidatedBatch:
    """Write accepted rows then the marker (last), replacing any earlier version of the batch."""
    folder = validated_dir(settings, landed.batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    marker.unlink(missing_ok=True)  # readers see "not published" rather than a mixed version
    data = folder / "accepted.parquet"
    tmp = folder / f".accepted.parquet.tmp-{os.getpid()}"
    accepted.to_parquet(tmp, index=False)
    tmp.replace(data)
    batch = ValidatedBatch(
        dataset=settings.dataset.name,
        batch_id=landed.batch_id,
        uri=f"file://{data}",
        rows=len(accepted),
        source_sha256=landed.sha256,
        status=status,
        rows_quarantined=quarantined,
    )
    write_json_atomic(marker, batch.to_dict())
    return batch


def _reject_message(verdict: dict[str, Any]) -> str:
    crit = [f for f in verdict["failures"] if f["severity"] == "critical"]
    shown = "; ".join(f"{f['expectation']}: {f['message']}" for f in crit[:6])
    more = f"; +{len(crit) - 6} more" if len(crit) > 6 else ""
    return (
        f"batch {verdict['dataset']}/{verdict['batch_id']} (sha {verdict['source_sha256'][:12]}) rejected by "
        f"the quality gate: {len(crit)} critical failure(s): {shown}{more}. "
        f"All {verdict['rows_quarantined']} rows quarantined in {verdict['paths']['quarantine']}; "
        f"report: {verdict['paths']['report_md']}; data docs: {verdict['paths']['data_docs']}"
    )


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

    Returns the verdict (a JSON-able dict, also written as ``report.json``). Raises
    :class:`BatchRejected` after quarantining when the batch is rejected (unless
    ``raise_on_reject`` is False, for tools that want the verdict either way).
    """
    with log_context(batch_id=batch_id, run_id=run_id):
        landed = current_landed(settings, batch_id)
        if expected_sha256 is not None and landed.sha256 != expected_sha256:
            raise RuntimeError(
                f"batch {batch_id}: current landed file is {landed.sha256[:12]}, expected "
                f"{expected_sha256[:12]} (a newer version was landed meanwhile; re-run the gate)"
            )
        staged: list[Path] = []
        with log_context(sha=landed.sha256[:12]):
            try:
                verdict = _validate(settings, landed, run_id, now, staged)
            finally:
                for folder in staged:  # left over only when something failed half-way
                    shutil.rmtree(folder, ignore_errors=True)
        if verdict["status"] == REJECTED and raise_on_reject:
            raise BatchRejected(_reject_message(verdict), verdict)
        return verdict


def _validate(
    settings: Settings,
    landed: LandedBatch,
    run_id: str | None,
    now: pd.Timestamp | None,
    staged: list[Path],
) -> dict[str, Any]:
    contract = settings.dataset
    quality = settings.quality
    spec = load_suite(settings)
    paths = gate_paths(settings, landed.batch_id, landed.sha256)
    timings: dict[str, float] = {}
    log.info("validating batch", file=str(landed.path), suite=str(spec.path))

    t0 = time.perf_counter()
    read = read_landed(landed.path, contract)
    timings["read_s"] = time.perf_counter() - t0
    failures: list[Failure] = list(read.failures)
    gx_result: dict[str, Any] = {}
    staged_docs = _staging(paths.data_docs, staged)
    flagged = pd.Series(dtype=bool)
    row_failure_masks: dict[str, pd.Series] = {}

    if read.frame is not None and read.raw is not None:
        outcome = run_suite(
            read.frame,
            spec,
            suite_parameters(contract, landed.batch_id, now),
            docs_dir=staged_docs,
            run_name=f"{contract.name}-{landed.batch_id}-{landed.sha256[:12]}",
        )
        timings.update(outcome.timings)
        gx_result = outcome.result
        failures.extend(outcome.failures)
        flagged = pd.Series(False, index=read.frame.index)
        for failure in failures:
            positions = outcome.row_positions.get(failure.expectation)
            if positions is None:
                continue
            mask = pd.Series(False, index=read.frame.index)
            mask.iloc[positions] = True
            if failure.column is not None and failure.column in read.raw.columns:
                # quote the values as they are in the file (e.g. an unparseable timestamp's text)
                failure.sample_values = _sample(read.raw.loc[mask, failure.column], quality.sample_bad_values)
            if failure.severity == "row":
                row_failure_masks[failure.expectation] = mask
                flagged |= mask
        share = float(flagged.mean()) if len(flagged) else 0.0
        if share > quality.row_level_max_share:
            worst = sorted(row_failure_masks.items(), key=lambda kv: -int(kv[1].sum()))[:3]
            failures.append(
                Failure(
                    expectation="quality.row_level_max_share",
                    type="quality.row_level_max_share",
                    severity="critical",
                    message=(
                        f"{int(flagged.sum())} of {len(flagged)} rows ({share:.1%}) failed row-level rules, "
                        f"above the {quality.row_level_max_share:.0%} limit; most rows: "
                        + ", ".join(f"{k} ({int(m.sum())})" for k, m in worst)
                    ),
                    why="a batch where this many rows are bad is a broken extract, not a few bad rows",
                    observed_value=share,
                )
            )
    else:
        # No table: render the suite alone so the Data Docs path always exists.
        render_suite_docs(spec, staged_docs, {"landed_columns": list(contract.landed_columns)})
    critical = [f for f in failures if f.severity == "critical"]
    status = REJECTED if critical else (PASSED_WITH_WARNINGS if flagged.any() else PASSED)
    accepted: pd.DataFrame | None = None
    quarantine_rows: pd.DataFrame | None = None
    if read.frame is None or read.raw is None:
        rows_in = landed.rows  # unreadable: counted as lines; the file is quarantined byte for byte
        accepted_rows, quarantined_rows = 0, rows_in
    else:
        rows_in = read.records
        keep = ~flagged if status != REJECTED else pd.Series(False, index=read.frame.index)
        if status != REJECTED:
            accepted = _typed_accepted(read.frame.loc[keep], settings)
        quarantine_rows = read.raw.loc[~keep].copy()
        failed_by_row = pd.Series("", index=read.raw.index)
        for label, mask in row_failure_masks.items():
            failed_by_row[mask] = failed_by_row[mask] + label + "; "
        quarantine_rows.insert(0, "_failed_row_rules", failed_by_row.loc[~keep].str.rstrip("; "))
        # CSV line of the record (header is line 1; landed files never split a record over lines)
        quarantine_rows.insert(0, "_line", quarantine_rows.index + 2)
        accepted_rows = 0 if accepted is None else len(accepted)
        quarantined_rows = len(quarantine_rows)
        if accepted_rows + quarantined_rows != rows_in:  # nothing is lost, checked on what is written
            raise NothingLostError(
                f"batch {landed.batch_id}: {rows_in} rows in but {accepted_rows} accepted + "
                f"{quarantined_rows} quarantined; nothing was published"
            )

    failures.sort(key=_failure_rank)
    previous = published(settings, landed.batch_id)
    verdict: dict[str, Any] = {
        "dataset": contract.name,
        "batch_id": landed.batch_id,
        "source_sha256": landed.sha256,
        "landed_uri": landed.uri,
        "status": status,
        "rows_in": rows_in,
        "rows_accepted": accepted_rows,
        "rows_quarantined": quarantined_rows,
        "row_level_share": round(float(flagged.mean()), 6) if len(flagged) else None,
        "row_level_max_share": quality.row_level_max_share,
        "suite": spec.name,
        "suite_path": str(spec.path),
        "failed_expectations": [f.expectation for f in failures],
        "failures": [f.to_dict() for f in failures],
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "uri": None,
        "paths": {
            "report_md": str(paths.report_md),
            "report_json": str(paths.report_json),
            "gx_result": str(paths.gx_result),
            "data_docs": str(paths.data_docs_index),
            "quarantine": str(paths.quarantine) if quarantined_rows or status == REJECTED else None,
            "validated": None,
        },
    }
    if status == REJECTED and previous is not None:
        if previous.source_sha256 != landed.sha256:
            verdict["previous_published_sha256"] = previous.source_sha256  # an older version stays
        else:
            verdict["unpublished"] = True  # this very file passed before (older suite): withdraw it

    # Evidence first (reports, docs, quarantine), publication last.
    t0 = time.perf_counter()
    staged_reports = _staging(paths.reports, staged)
    write_json_atomic(staged_reports / "gx_result.json", gx_result or {"not_run": "file unreadable"})
    staged_q: Path | None = None
    if quarantined_rows or status == REJECTED:
        staged_q = _staging(paths.quarantine, staged)
        if quarantine_rows is None:
            copy = staged_q / landed.path.name
            shutil.copyfile(landed.path, copy)
            if sha256_file(copy) != landed.sha256:
                raise NothingLostError(f"quarantine copy of {landed.path} differs from the landed file")
            verdict["paths"]["quarantine_rows"] = str(paths.quarantine / landed.path.name)
        else:
            text_cols = {c: "string" for c in quarantine_rows.columns if quarantine_rows[c].dtype == object}
            quarantine_rows.astype(text_cols).to_parquet(staged_q / "rows.parquet", index=False)
            verdict["paths"]["quarantine_rows"] = str(paths.quarantine / "rows.parquet")
    if status != REJECTED:
        verdict["uri"] = f"file://{validated_dir(settings, landed.batch_id) / 'accepted.parquet'}"
        verdict["paths"]["validated"] = str(validated_dir(settings, landed.batch_id))
    markdown = render_markdown(verdict)
    for folder in [staged_reports, *([staged_q] if staged_q else [])]:
        write_json_atomic(folder / "report.json", verdict)
        (folder / "report.md").write_text(markdown, encoding="utf-8")
    share_static_assets(staged_docs, settings.paths.data_docs / contract.name / "_static")
    _swap_dir(staged_docs, paths.data_docs)
    _swap_dir(staged_reports, paths.reports)
    if staged_q is not None:
        _swap_dir(staged_q, paths.quarantine)
    else:
        shutil.rmtree(paths.quarantine, ignore_errors=True)  # stale evidence of this same file

    if accepted is not None:
        _publish(settings, landed, accepted, status, quarantined_rows)
    elif verdict.get("unpublished"):
        (validated_dir(settings, landed.batch_id) / MARKER).unlink(missing_ok=True)
    timings["write_s"] = time.perf_counter() - t0
    verdict["timings"] = {k: round(v, 3) for k, v in timings.items()}

    record_event(
        settings.paths.events,
        "quality_gate",
        key=f"{landed.batch_id}:{landed.sha256[:12]}",
        dataset=contract.name,
        batch_id=landed.batch_id,
        source_sha256=landed.sha256,
        status=status,
        rows_in=rows_in,
        rows_accepted=accepted_rows,
        rows_quarantined=quarantined_rows,
        failed_expectations=verdict["failed_expectations"],
        report=verdict["paths"]["report_md"],
        data_docs=verdict["paths"]["data_docs"],
        uri=verdict["uri"],
    )
    level = log.error if status == REJECTED else (log.warning if status == PASSED_WITH_WARNINGS else log.info)
    level(
        "quality gate verdict",
        status=status,
        rows_in=rows_in,
        rows_accepted=accepted_rows,
        rows_quarantined=quarantined_rows,
        failed=verdict["failed_expectations"][:10],
        report=verdict["paths"]["report_md"],
    )
    if status == REJECTED:
        record_event(
            settings.paths.events,
            "alert",
            key=f"quality_gate:{landed.batch_id}:{landed.sha256[:12]}",
            source="quality_gate",
            severity="error",
            message=_reject_message(verdict),
            report=verdict["paths"]["report_md"],
        )
    return verdict


def read_report(settings: Settings, batch_id: str, sha256: str | None = None) -> dict[str, Any] | None:
    """The gate's report for a batch version (default: the current landed one), or None."""
    sha = sha256 or current_landed(settings, batch_id).sha256
    path = gate_paths(settings, batch_id, sha).report_json
    return json.loads(path.read_text()) if path.exists() else None
