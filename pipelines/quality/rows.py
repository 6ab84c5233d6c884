"""The verdict applied to the table: sample values, the published frame, the quarantined frame.

No I/O here: these turn the read table and the verdict's row positions into the frames the
effects write (``accepted.parquet``, ``rows.parquet``) and quote offending values for reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.quality.errors import UntypedRowsError
from pipelines.quality.results import Failure, jsonable
from pipelines.quality.verdict import DataVerdict


def _mask(index: pd.Index, positions: Iterable[int]) -> pd.Series:
    mask = pd.Series(False, index=index)
    mask.iloc[list(positions)] = True
    return mask


def _sample(values: pd.Series, n: int) -> list[Any]:
    out: list[Any] = []
    for v in values:
        shown = None if pd.isna(v) else v
        if shown not in out:
            out.append(shown)
        if len(out) >= n:
            break
    return jsonable(out)  # type: ignore[no-any-return]


def attach_samples(
    failures: Sequence[Failure], row_positions: Mapping[str, Sequence[int]], raw: pd.DataFrame, n: int
) -> None:
    """Quote each failed rule's offending values as they are in the file (e.g. an unparseable
    timestamp's text), replacing the samples GX gave: the report shows what a person must fix."""
    for failure in failures:
        positions = row_positions.get(failure.expectation)
        if positions is None:
            continue
        if failure.column is not None and failure.column in raw.columns:
            mask = _mask(raw.index, positions)
            failure.sample_values = _sample(raw.loc[mask, failure.column], n)


def typed_accepted(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
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
        raise UntypedRowsError(
            f"accepted rows of {contract.name} cannot be typed ({exc}); the suite "
            f"{contract.expectation_suite} needs a type rule for this column"
        ) from exc
    if contract.target.task == "classification":
        if (target != target.round()).any():
            raise UntypedRowsError(f"classification target {contract.target.name} has non-integer values")
        out[contract.target.name] = target.astype("int64")
    else:
        out[contract.target.name] = target.astype("float64")
    for col in [contract.id.column, *contract.features.categorical]:
        values = out[col]
        out[col] = values.astype(object).where(values.isna(), values.astype(str))  # nulls stay null
    out[contract.event_time] = pd.to_datetime(out[contract.event_time], utc=True)
    return out.reset_index(drop=True)


def accepted_frame(frame: pd.DataFrame, verdict: DataVerdict, settings: Settings) -> pd.DataFrame | None:
    """The rows to publish, typed; None when the verdict publishes nothing."""
    if verdict.rejected or verdict.table_rows is None:
        return None
    return typed_accepted(frame.loc[_mask(frame.index, verdict.accepted)], settings)


def quarantine_frame(raw: pd.DataFrame, verdict: DataVerdict) -> pd.DataFrame:
    """The quarantined rows as read, with the CSV line and the row-level rules each one broke."""
    keep = _mask(raw.index, verdict.accepted)
    rows = raw.loc[~keep].copy()
    failed_by_row = pd.Series("", index=raw.index)
    for rule in verdict.row_rules:
        mask = _mask(raw.index, rule.positions)
        failed_by_row[mask] = failed_by_row[mask] + rule.label + "; "
    rows.insert(0, "_failed_row_rules", failed_by_row.loc[~keep].str.rstrip("; "))
    # CSV line of the record (header is line 1; landed files never split a record over lines)
    rows.insert(0, "_line", rows.index + 2)
    return rows
