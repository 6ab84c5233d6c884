"""The expectation suite as data: loading, severity rules and run-time parameters.

A suite is a GX 1.x suite JSON file (``expectations/<dataset>.json``) whose every
expectation carries ``meta.severity``: ``critical`` (the batch fails) or ``row``
(only the offending rows are quarantined). Severity lives in the suite, next to
the rule, so a data owner changes how strict a rule is without touching code.

Values that depend on the batch or the contract are not written into the suite
but referenced with GX's ``{"$PARAMETER": name}`` syntax and supplied here at
validation time: ``landed_columns`` (the contract's column order), ``batch_start``
/ ``batch_end`` (the batch's own period) and ``now``. That keeps the contract the
only source of column names and lets one suite validate every month.

Nothing in this module imports Great Expectations: the suite is checked as plain
JSON so a malformed suite fails fast, before the slow GX import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipelines.config import DatasetContract, Settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.periods import parse_window
from pipelines.quality.errors import SuiteError

Severity = Literal["critical", "row"]
SEVERITIES: tuple[Severity, ...] = ("critical", "row")
KNOWN_PARAMETERS = ("landed_columns", "batch_start", "batch_end", "now")
# GX's own severity field is set from meta.severity so Data Docs show the same verdict.
GX_SEVERITY = {"critical": "critical", "row": "warning"}


@dataclass(frozen=True)
class SuiteSpec:
    """A parsed suite file: GX's JSON plus the pipeline's severity for each expectation."""

    path: Path
    name: str
    document: dict[str, Any]

    @property
    def expectations(self) -> list[dict[str, Any]]:
        return list(self.document["expectations"])


def expectation_label(config: dict[str, Any]) -> str:
    """Short, stable name of an expectation for reports: ``type(column)`` or ``type(column)[name]``.

    ``meta.name`` tells apart two rules of one type on one column (a row-level rule and its
    critical guard, or two time windows).
    """
    column = config.get("kwargs", {}).get("column")
    label = f"{config['type']}({column})" if column else str(config["type"])
    name = (config.get("meta") or {}).get("name")
    return f"{label}[{name}]" if name else label


def _referenced_parameters(value: Any) -> set[str]:
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            return {str(value["$PARAMETER"])}
        return set().union(*(_referenced_parameters(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_referenced_parameters(v) for v in value)) if value else set()
    return set()


def load_suite(settings: Settings) -> SuiteSpec:
    """Read and check the contract's suite; raises :class:`SuiteError` naming the bad entry."""
    contract = settings.dataset
    path = settings.resolve(contract.expectation_suite)
    if not path.is_file():
        raise SuiteError(f"expectation suite not found: {path} (dataset.expectation_suite)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("expectations"), list):
        raise SuiteError(f"expectation suite {path} has no 'expectations' list")
    if not document.get("name"):
        raise SuiteError(f"expectation suite {path} has no 'name'")
    if not document["expectations"]:
        raise SuiteError(f"expectation suite {path} is empty: a gate without rules passes anything")

    columns = set(contract.landed_columns)
    problems: list[str] = []
    for i, exp in enumerate(document["expectations"]):
        where = f"expectations[{i}] ({exp.get('type', '?')})"
        if not isinstance(exp, dict) or "type" not in exp or "kwargs" not in exp:
            problems.append(f"{where}: needs 'type' and 'kwargs'")
            continue
        severity = (exp.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{where}: meta.severity must be one of {list(SEVERITIES)}, got {severity!r}")
        if severity == "row" and not str(exp["type"]).startswith(
            ("expect_column_values_", "expect_column_pair_values_", "expect_multicolumn_values_")
        ):
            problems.append(
                f"{where}: severity 'row' needs a row-wise (column map) expectation; "
                "aggregate expectations can only be 'critical'"
            )
        column = exp["kwargs"].get("column")
        if column is not None and column not in columns:
            problems.append(f"{where}: column {column!r} is not in the dataset contract {sorted(columns)}")
        unknown = _referenced_parameters(exp["kwargs"]) - set(KNOWN_PARAMETERS)
        if unknown:
            problems.append(f"{where}: unknown $PARAMETER {sorted(unknown)}; known: {list(KNOWN_PARAMETERS)}")
    labels = [expectation_label(e) for e in document["expectations"] if isinstance(e, dict) and "type" in e]
    duplicated = sorted({lbl for lbl in labels if labels.count(lbl) > 1})
    if duplicated:
        problems.append(f"rules that reports cannot tell apart (add meta.name): {duplicated}")
    if problems:
        raise SuiteError(f"expectation suite {path} is invalid:\n  " + "\n  ".join(problems))
    return SuiteSpec(path=path, name=str(document["name"]), document=document)


def batch_period(batch_id: str, contract: DatasetContract) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a batch in UTC, cut in the contract's timezone (the kernel's batch period)."""
    freq = contract.batch_frequency
    try:
        window = parse_window(batch_id, freq, contract.event_timezone)
    except InvalidInputError as exc:
        raise SuiteError(f"batch id {batch_id!r} is not a valid {freq} batch id: {exc}") from exc
    return window.start_ts.tz_convert("UTC"), window.end_ts.tz_convert("UTC")


def suite_parameters(
    contract: DatasetContract, batch_id: str, now: pd.Timestamp | None = None
) -> dict[str, Any]:
    """Values for the suite's ``$PARAMETER`` references, for one batch."""
    start, end = batch_period(batch_id, contract)
    return {
        "landed_columns": list(contract.landed_columns),
        "batch_start": start.to_pydatetime(),
        "batch_end": end.to_pydatetime(),
        "now": (now if now is not None else pd.Timestamp.now(tz="UTC")).to_pydatetime(),
    }
