"""Turn a landed CSV into a table GX can validate, or say precisely why it cannot.

GX validates DataFrames; a file that cannot become one (empty, not UTF-8, garbled,
rows cut short) never reaches it. Those problems are reported here as named
critical checks (``structure:<check>``) with line numbers, never as a traceback.
Everything GX *can* see (missing or extra columns, wrong types, nulls...) is left
to the suite, so the rules stay in one place.

Columns are read with the types the contract implies: the id, the event time and
categorical columns as text (so a code like ``"01"`` is never turned into ``1``),
numeric columns as pandas infers them (so a stray word turns the column to text
and the suite's type rule names it). The event time is parsed here (ISO 8601, to
UTC); values that do not parse become null and are caught by the suite's
not-null rule, while their raw text is kept for the report.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.config import DatasetContract
from pipelines.data.files import Inspected, LandingError, count_records, diagnose_columns, inspect, scan_csv
from pipelines.quality.results import STRUCTURAL, Failure

#: Door checks the reader also names for a landed file (landed directly, not through the door):
#: the causes that would otherwise surface as a vague encoding or column-list failure.
_NAMED_BY_DOOR = frozenset({"file_not_compressed", "file_is_text", "csv_delimiter", "header_case"})

_MAX_LINES_QUOTED = 5


@dataclass
class ReadResult:
    """The parsed table (None when the file is structurally broken) and structural failures."""

    frame: pd.DataFrame | None
    raw: pd.DataFrame | None  # same rows, every value as read (event time not parsed)
    records: int  # data records found by the CSV reader (header excluded)
    failures: list[Failure] = field(default_factory=list)


def _structural(check: str, message: str, why: str) -> Failure:
    return Failure(
        expectation=f"{STRUCTURAL}:{check}",
        type=f"{STRUCTURAL}:{check}",
        severity="critical",
        message=message,
        why=why,
    )


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _byte_failures(path: Path) -> ReadResult | None:
    """Empty or not UTF-8, as a structural failure with the offset and line; None when neither."""
    data = path.read_bytes()
    if not data.strip():
        return ReadResult(
            None,
            None,
            0,
            [
                _structural(
                    "file_not_empty",
                    f"landed file {path.name} is empty ({len(data)} bytes)",
                    "an empty file is a failed extract, not a month without data",
                )
            ],
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of_offset(data, exc.start)
        bad = data[exc.start : exc.start + 8]
        return ReadResult(
            None,
            None,
            0,
            [
                _structural(
                    "file_is_utf8",
                    f"byte {exc.start} (line {line}) is not UTF-8: {bad!r} ({exc.reason})",
                    "batches are UTF-8; other encodings silently corrupt categorical values",
                )
            ],
        )
    return None


def read_landed(path: Path, contract: DatasetContract) -> ReadResult:
    """Read a landed batch file; structural problems are returned as failures, never raised."""
    if not path.is_file():
        return ReadResult(
            None,
            None,
            0,
            [
                _structural(
                    "file_exists",
                    f"landed file {path} does not exist",
                    "the manifest points at a missing file",
                )
            ],
        )
    found: Inspected | None = None
    try:
        found = inspect(path)
        diagnose_columns(found, contract.landed_columns)
    except LandingError as exc:
        if exc.check in _NAMED_BY_DOOR:
            return ReadResult(None, None, count_records(path), [_structural(exc.check, str(exc), exc.why)])
    if found is None or found.text is None:
        broken = _byte_failures(path)  # the door refused the bytes: name the cause as the gate does
        if broken is not None:
            return broken
    del found  # the door's copy of the text: records are counted and parsed from the file itself

    # Field counts per record, with the same quoting rules pandas uses: a row cut short
    # (truncated transfer) or split differently (garbled delimiters) is a broken file, which
    # pandas would otherwise pad with nulls or reject with a one-line parser error. One
    # streaming pass: nothing per record is kept (see pipelines.data.files.scan_csv).
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            scan = scan_csv(fh, keep=_MAX_LINES_QUOTED)
    except (csv.Error, UnicodeDecodeError) as exc:
        return ReadResult(
            None,
            None,
            0,
            [
                _structural(
                    "csv_parseable", f"CSV cannot be tokenised: {exc}", "the file is not well-formed CSV"
                )
            ],
        )
    records = scan.records
    if scan.ragged_count:
        quoted = ", ".join(f"line {n}: {fields} fields" for n, fields in scan.ragged)
        return ReadResult(
            None,
            None,
            records,
            [
                _structural(
                    "csv_rows_match_header",
                    f"{scan.ragged_count} of {records} records do not have the header's {scan.width} "
                    f"fields ({quoted})",
                    "short or long rows mean a truncated or garbled file; padding them with nulls hides it",
                )
            ],
        )

    header = scan.header
    text_columns = [contract.id.column, contract.event_time, *contract.features.categorical]
    try:
        raw = pd.read_csv(
            path,
            encoding="utf-8-sig",
            dtype={c: str for c in text_columns if c in header},
            skip_blank_lines=True,
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        return ReadResult(
            None,
            None,
            records,
            [
                _structural(
                    "csv_parseable", f"pandas cannot parse the CSV: {exc}", "the file is not well-formed CSV"
                )
            ],
        )
    if len(raw) != records:
        return ReadResult(
            None,
            None,
            records,
            [
                _structural(
                    "csv_parseable",
                    f"pandas read {len(raw)} records where the CSV tokenizer found {records}",
                    "embedded blank lines or quoting make the record count ambiguous",
                )
            ],
        )

    # The frame GX validates is built column by column into one block per dtype. Replacing the
    # event time in a copy of ``raw`` instead would split raw's text block around it, and GX's
    # pandas engine filters the whole frame once per expectation (``df[mask]``): on a split
    # frame every filter re-consolidates all columns first (profiled at 1M rows: 240 of 295 s
    # of GX's metric resolution in pandas' _merge_blocks/vstack). Text columns share raw's
    # strings (only pointers are copied).
    columns = {c: raw[c] for c in raw.columns}
    if contract.event_time in columns:
        columns[contract.event_time] = pd.to_datetime(
            raw[contract.event_time], utc=True, errors="coerce", format="ISO8601"
        )
    frame = pd.DataFrame(columns)
    return ReadResult(frame=frame, raw=raw, records=records)
