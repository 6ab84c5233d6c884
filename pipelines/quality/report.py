"""The human-readable gate report (``report.md``): what failed, where, with which values, and
where the evidence is. Written for the person paged at 3 a.m., so the verdict and the
fix-and-replay command come first."""

from __future__ import annotations

from typing import Any


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
        f"- landed file: `{verdict['landed_uri']}` (sha256 `{verdict['source_sha256'][:12]}`)",
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
        f"- GX Data Docs (HTML): `{paths['data_docs']}`",
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
            "Correct the file (the quarantined rows list their CSV line in `_line` and the rules they",
            "broke in `_failed_row_rules`), then land it as a new version and re-validate:",
            "",
            "```",
            f"python -m pipelines.cli quality replay --batch-id {verdict['batch_id']} --file corrected.csv",
            "```",
        ]
    return "\n".join(out) + "\n"
