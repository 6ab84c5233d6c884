"""The gate's report of one file, as data (``report.json``) and for people (``report.md``).

Both are built from the verdict alone (pure, no I/O): what failed, where, with which values, and
where the evidence is. The markdown is written for the person paged at 3 a.m., so the verdict and
the fix-and-replay command come first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.quality.verdict import REJECTED, DataVerdict, Publication

if TYPE_CHECKING:
    from pipelines.data.landing import LandedBatch
    from pipelines.quality.paths import GatePaths


def build_report(
    verdict: DataVerdict,
    *,
    dataset: str,
    landed: LandedBatch,
    suite_name: str,
    suite_path: Path,
    paths: GatePaths,
    validated: Path,
    publication: Publication,
    published_sha256: str | None,
    run_id: str | None,
    validated_at: str,
) -> dict[str, Any]:
    """The JSON report (``report.json``, the value :func:`~pipelines.quality.validate_batch` returns).

    ``validated`` is the batch's folder in the validated store, ``published_sha256`` the version
    published there before this verdict (if any).
    """
    rejected = verdict.status == REJECTED
    file_paths: dict[str, str | None] = {
        "report_md": str(paths.report_md),
        "report_json": str(paths.report_json),
        "gx_result": str(paths.gx_result),
        "data_docs": str(paths.data_docs_index),
        "quarantine": str(paths.quarantine) if verdict.has_quarantine else None,
        "validated": None if rejected else str(validated),
    }
    if verdict.has_quarantine:
        # unreadable: the file is quarantined byte for byte under its own name
        name = landed.path.name if verdict.quarantined is None else "rows.parquet"
        file_paths["quarantine_rows"] = str(paths.quarantine / name)
    report: dict[str, Any] = {
        "dataset": dataset,
        "batch_id": landed.batch_id,
        "source_sha256": landed.sha256,
        "landed_uri": landed.uri,
        "status": verdict.status,
        "rows_in": verdict.rows_in,
        "rows_accepted": verdict.rows_accepted,
        "rows_quarantined": verdict.rows_quarantined,
        "row_level_share": verdict.row_level_share,
        "row_level_max_share": verdict.row_level_max_share,
        "suite": suite_name,
        "suite_path": str(suite_path),
        "failed_expectations": verdict.failed_expectations,
        "failures": [f.to_dict() for f in verdict.failures],
        "validated_at": validated_at,
        "run_id": run_id,
        "uri": None if rejected else f"file://{validated / 'accepted.parquet'}",
        "paths": file_paths,
    }
    if publication is Publication.KEEP_PREVIOUS:
        report["previous_published_sha256"] = published_sha256  # an older version stays
    elif publication is Publication.WITHDRAW:
        report["unpublished"] = True  # this very file passed before (older suite): withdraw it
    return report


def reject_message(report: dict[str, Any]) -> str:
    """One paragraph that explains a rejection on its own (the error text and the alert)."""
    crit = [f for f in report["failures"] if f["severity"] == "critical"]
    shown = "; ".join(f"{f['expectation']}: {f['message']}" for f in crit[:6])
    more = f"; +{len(crit) - 6} more" if len(crit) > 6 else ""
    return (
        f"batch {report['dataset']}/{report['batch_id']} (sha {report['source_sha256'][:12]}) rejected by "
        f"the quality gate: {len(crit)} critical failure(s): {shown}{more}. "
        f"All {report['rows_quarantined']} rows quarantined in {report['paths']['quarantine']}; "
        f"report: {report['paths']['report_md']}"
        + (f"; data docs: {report['paths']['data_docs']}" if report["paths"].get("data_docs") else "")
    )


def _cell(value: Any) -> str:
    text = str(value) if value is not None else ""
    return text.replace("|", "\\|").replace("\n", " ")


def _samples(values: list[Any]) -> str:
    return ", ".join("null" if v is None else repr(v) for v in values) if values else ""


def _table(failures: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| expectation | column | what failed | sample bad values | why the rule exists |",
        "|---|---|---|---|---|",
    ]
    for f in failures:
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f["expectation"],
                    f.get("column") or "",
                    f["message"],
                    _samples(f.get("sample_values") or []),
                    f.get("why", ""),
                )
            )
            + " |"
        )
    return lines


def render_markdown(verdict: dict[str, Any]) -> str:
    status = verdict["status"]
    headline = {
        "rejected": "REJECTED: the whole batch is quarantined, nothing was published",
        "passed_with_warnings": "PASSED WITH WARNINGS: offending rows quarantined, clean rows published",
        "passed": "PASSED: every rule held, all rows published",
    }[status]
    paths = verdict["paths"]
    out = [
        f"# Quality gate: {verdict['dataset']} batch {verdict['batch_id']}",
        "",
        f"**{headline}**",
        "",
        f"- {'refused' if verdict.get('refused_at_landing') else 'landed'} file: `{verdict['landed_uri']}`"
        f" (sha256 `{verdict['source_sha256'][:12]}`)",
        f"- rows in: {verdict['rows_in']} = accepted {verdict['rows_accepted']}"
        f" + quarantined {verdict['rows_quarantined']}",
        f"- suite: `{verdict['suite_path']}`; validated at {verdict['validated_at']}"
        + (f" (run {verdict['run_id']})" if verdict.get("run_id") else ""),
    ]
    if verdict.get("row_level_share") is not None:
        out.append(
            f"- rows failing row-level rules: {verdict['row_level_share']:.2%}"
            f" (limit {verdict['row_level_max_share']:.0%})"
        )
    if verdict.get("previous_published_sha256"):
        out.append(
            f"- the previously published version (sha256 `{verdict['previous_published_sha256'][:12]}`)"
            " stays published"
        )
    if verdict.get("unpublished"):
        out.append("- this same file had been published before (under an earlier suite): it is withdrawn")
    refused = verdict.get("refused_at_landing")
    if refused:
        out.append(
            f"- refused at landing (`structure:{refused['check']}`): `{refused['file']}` never became a"
            " table, so the suite did not run; the batch's current landed version is unchanged"
        )
    critical = [f for f in verdict["failures"] if f["severity"] == "critical"]
    rows = [f for f in verdict["failures"] if f["severity"] == "row"]
    if critical:
        out += ["", f"## Critical failures ({len(critical)}): the batch is rejected", "", *_table(critical)]
    if rows:
        title = "rows quarantined" if status != "rejected" else "also failed (row-level)"
        out += ["", f"## Row-level failures ({len(rows)}): {title}", "", *_table(rows)]
    out += [
        "",
        "## Evidence",
        "",
        f"- GX validation result (JSON): `{paths['gx_result']}`",
        *([f"- GX Data Docs (HTML): `{paths['data_docs']}`"] if paths.get("data_docs") else []),
        f"- this report as JSON: `{paths['report_json']}`",
    ]
    if paths.get("quarantine"):
        out.append(f"- quarantined rows: `{paths.get('quarantine_rows') or paths['quarantine']}`")
    if paths.get("validated"):
        out.append(f"- published batch: `{paths['validated']}`")
    if status != "passed":
        out += [
            "",
            "## Fix and replay",
            "",
            *(
                ["Correct the file (the cause is named above), then land it and re-validate:"]
                if verdict.get("refused_at_landing")
                else [
                    "Correct the file (the quarantined rows list their CSV line in `_line` and the rules",
                    "they broke in `_failed_row_rules`), then land it as a new version and re-validate:",
                ]
            ),
            "",
            "```",
            f"python -m pipelines.cli quality replay --batch-id {verdict['batch_id']} --file corrected.csv",
            "```",
        ]
    return "\n".join(out) + "\n"
