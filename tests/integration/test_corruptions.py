"""Corruption corpus: distinct ways a real month (2013-01) goes bad, each caught by a named rule.

Every case lands a corrupted copy of the real landed file as a new version (``land_file``)
in a fresh runtime root and runs the real gate. A case either rejects the batch (everything
quarantined, nothing published, the failed rule named in the error) or splits off exactly the
rows it corrupted (plus the month's genuinely unlabelled rows), and never loses a row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data.landing import current_landed, land_file
from pipelines.data.validated import published
from pipelines.quality import PASSED_WITH_WARNINGS, REJECTED, BatchRejected, gate_paths, validate_batch

BATCH = "2013-01"
TARGET = "is_late"  # read from the contract in the fixture below; used here only for readability


@dataclass(frozen=True)
class Month:
    """The real landed month as text cells (exactly as in the file) and its raw bytes."""

    frame: pd.DataFrame
    raw: bytes
    id_column: str
    target: str


@dataclass(frozen=True)
class Corrupted:
    content: bytes
    bad_rows: list[int] | None = None  # positions (in the corrupted file) that must be quarantined


@dataclass(frozen=True)
class Case:
    name: str
    corrupt: Callable[[Month], Corrupted]
    outcome: str  # REJECTED or PASSED_WITH_WARNINGS
    rule: str  # failed expectation (label) that must be named


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _rows(month: Month, n: int, seed: int) -> np.ndarray:
    """n distinct row positions, seeded, avoiding rows that are unlabelled anyway (sharper counts)."""
    labelled = np.flatnonzero(month.frame[month.target].to_numpy() != "")
    return np.sort(np.random.default_rng(seed).choice(labelled, size=n, replace=False))


def _set(column: str, value: str, n: int, seed: int) -> Callable[[Month], Corrupted]:
    def corrupt(month: Month) -> Corrupted:
        df = month.frame.copy()
        rows = _rows(month, n, seed)
        df.loc[rows, column] = value
        return Corrupted(_csv(df), rows.tolist())

    return corrupt


def _missing_column(month: Month) -> Corrupted:
    return Corrupted(_csv(month.frame.drop(columns=["distance"])))


def _extra_column(month: Month) -> Corrupted:
    df = month.frame.copy()
    df["tailnum"] = "N14228"
    return Corrupted(_csv(df))


def _reordered_columns(month: Month) -> Corrupted:
    cols = list(month.frame.columns)
    cols[2], cols[3] = cols[3], cols[2]
    return Corrupted(_csv(month.frame[cols]))


def _wrong_dtype(month: Month) -> Corrupted:
    df = month.frame.copy()
    df.loc[_rows(month, 40, 1), "distance"] = "1,400 mi"
    return Corrupted(_csv(df))


def _all_null_column(month: Month) -> Corrupted:
    df = month.frame.copy()
    df["temp"] = ""
    return Corrupted(_csv(df))


def _duplicate_keys(month: Month) -> Corrupted:
    rows = _rows(month, 20, 2)
    df = pd.concat([month.frame, month.frame.iloc[rows]], ignore_index=True)
    return Corrupted(_csv(df), [*rows.tolist(), *range(len(month.frame), len(df))])


def _file_appended_twice(month: Month) -> Corrupted:
    body = month.raw.split(b"\n", 1)[1]
    return Corrupted(month.raw + body)


def _empty_file(month: Month) -> Corrupted:
    return Corrupted(b"")


def _header_only(month: Month) -> Corrupted:
    return Corrupted(month.raw.split(b"\n", 1)[0] + b"\n")


def _truncated(month: Month) -> Corrupted:
    return Corrupted(month.raw[: int(len(month.raw) * 0.6)])  # cut mid-record, as a broken transfer


def _garbled(month: Month) -> Corrupted:
    lines = month.raw.split(b"\n")
    for i in (100, 2000, 15000):
        lines[i] = lines[i].replace(b",", b";", 4)  # a different delimiter on some records
    return Corrupted(b"\n".join(lines))


def _non_utf8(month: Month) -> Corrupted:
    df = month.frame.copy()
    df.loc[_rows(month, 3, 3), "dest"] = "SÃO"
    return Corrupted(df.to_csv(index=False).encode("latin-1"))


def _row_count_collapse(month: Month) -> Corrupted:
    return Corrupted(_csv(month.frame.head(500)))


def _missing_labels_mass(month: Month) -> Corrupted:
    df = month.frame.copy()
    df.loc[_rows(month, int(len(df) * 0.3), 4), month.target] = ""
    return Corrupted(_csv(df))


def _out_of_period(month: Month) -> Corrupted:
    df = month.frame.copy()
    rows = _rows(month, 12, 5)
    df.loc[rows, "time_hour"] = "2013-03-10T15:00:00Z"
    return Corrupted(_csv(df), rows.tolist())


def _inf_and_huge(month: Month) -> Corrupted:
    df = month.frame.copy()
    rows = _rows(month, 20, 6)
    df.loc[rows[:10], "wind_speed"] = "inf"
    df.loc[rows[10:], "wind_speed"] = "1e308"
    return Corrupted(_csv(df), rows.tolist())


def _too_many_bad_rows(month: Month) -> Corrupted:
    df = month.frame.copy()
    df.loc[_rows(month, int(len(df) * 0.25), 7), "hour"] = "99"
    return Corrupted(_csv(df))


def _carrier_recoded(month: Month) -> Corrupted:
    df = month.frame.copy()
    df["carrier"] = df["carrier"].str.lower()
    return Corrupted(_csv(df))


CASES = [
    # whole batch rejected
    Case("missing_column", _missing_column, REJECTED, "expect_table_columns_to_match_ordered_list"),
    Case("extra_column", _extra_column, REJECTED, "expect_table_columns_to_match_ordered_list"),
    Case("reordered_columns", _reordered_columns, REJECTED, "expect_table_columns_to_match_ordered_list"),
    Case("wrong_dtype", _wrong_dtype, REJECTED, "expect_column_values_to_be_in_type_list(distance)"),
    Case(
        "all_null_column",
        _all_null_column,
        REJECTED,
        "expect_column_proportion_of_non_null_values_to_be_between(temp)",
    ),
    Case(
        "file_appended_twice",
        _file_appended_twice,
        REJECTED,
        "expect_column_proportion_of_unique_values_to_be_between(flight_id)[guard]",
    ),
    Case("empty_file", _empty_file, REJECTED, "structure:file_not_empty"),
    Case("header_only", _header_only, REJECTED, "expect_table_row_count_to_be_between"),
    Case("truncated_csv", _truncated, REJECTED, "structure:csv_rows_match_header"),
    Case("garbled_csv", _garbled, REJECTED, "structure:csv_rows_match_header"),
    Case("non_utf8_bytes", _non_utf8, REJECTED, "structure:file_is_utf8"),
    Case("row_count_collapse", _row_count_collapse, REJECTED, "expect_table_row_count_to_be_between"),
    Case(
        "missing_labels_mass",
        _missing_labels_mass,
        REJECTED,
        "expect_column_values_to_not_be_null(is_late)[guard]",
    ),
    Case("too_many_bad_rows", _too_many_bad_rows, REJECTED, "quality.row_level_max_share"),
    Case(
        "categorical_recoded", _carrier_recoded, REJECTED, "expect_column_values_to_be_in_set(carrier)[guard]"
    ),
    # offending rows split off, clean rows published
    Case(
        "null_keys",
        _set("flight_id", "", 25, 10),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_not_be_null(flight_id)",
    ),
    Case(
        "duplicate_keys",
        _duplicate_keys,
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_unique(flight_id)",
    ),
    Case(
        "out_of_range",
        _set("distance", "-5", 30, 11),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_between(distance)",
    ),
    Case(
        "unseen_category",
        _set("carrier", "ZZ", 15, 12),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_in_set(carrier)",
    ),
    Case(
        "future_timestamps",
        _set("time_hour", "2099-01-15T10:00:00Z", 10, 13),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_between(time_hour)[not_in_future]",
    ),
    Case(
        "timestamps_outside_period",
        _out_of_period,
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_between(time_hour)[in_batch_period]",
    ),
    Case(
        "unparseable_timestamps",
        _set("time_hour", "31/01/2013 25:99", 8, 14),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_not_be_null(time_hour)",
    ),
    Case(
        "missing_labels_few",
        _set("is_late", "", 50, 15),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_not_be_null(is_late)",
    ),
    Case(
        "label_out_of_set",
        _set("is_late", "2", 10, 16),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_in_set(is_late)",
    ),
    Case(
        "inf_and_huge_values",
        _inf_and_huge,
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_between(wind_speed)",
    ),
    Case(
        "negative_weather",
        _set("humid", "-40", 7, 17),
        PASSED_WITH_WARNINGS,
        "expect_column_values_to_be_between(humid)",
    ),
]


@pytest.fixture(scope="session")
def real_month(settings, published_batches) -> Month:
    """The real landed 2013-01 file of the session (landed and validated once)."""
    landed = current_landed(settings, BATCH)
    raw = landed.path.read_bytes()
    frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    assert settings.dataset.target.name == TARGET
    return Month(frame=frame, raw=raw, id_column=settings.dataset.id.column, target=TARGET)


def test_corpus_is_large_and_distinct() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 15
    assert {c.outcome for c in CASES} == {REJECTED, PASSED_WITH_WARNINGS}


def _records(content: bytes) -> int:
    return max(sum(1 for _ in csv.reader(io.StringIO(content.decode("utf-8", errors="replace")))) - 1, 0)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corruption_is_caught_named_and_nothing_is_lost(
    case: Case, real_month: Month, isolated_settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    corrupted = case.corrupt(real_month)
    file = tmp_path / "corrupted.csv"
    file.write_bytes(corrupted.content)
    landed = land_file(settings, BATCH, file, origin=f"corruption:{case.name}")
    paths = gate_paths(settings, BATCH, landed.sha256)

    if case.outcome == REJECTED:
        with pytest.raises(BatchRejected) as err:
            validate_batch(settings, BATCH)
        verdict = err.value.verdict
        assert case.rule in str(err.value)  # the message names the failed expectation...
        assert str(paths.report_md) in str(err.value)  # ...and where the evidence is
        assert verdict["status"] == REJECTED
        assert case.rule in [f["expectation"] for f in verdict["failures"] if f["severity"] == "critical"]
        assert published(settings, BATCH) is None
        assert verdict["rows_accepted"] == 0 and verdict["rows_quarantined"] == verdict["rows_in"]
        rows_file = Path(verdict["paths"]["quarantine_rows"])
        if rows_file.suffix == ".parquet":
            assert len(pd.read_parquet(rows_file)) == verdict["rows_in"] == _records(corrupted.content)
        else:  # unreadable file: kept byte for byte
            assert rows_file.read_bytes() == corrupted.content
    else:
        verdict = validate_batch(settings, BATCH)
        assert verdict["status"] == PASSED_WITH_WARNINGS
        assert case.rule in verdict["failed_expectations"]
        assert all(f["severity"] == "row" for f in verdict["failures"])
        batch = published(settings, BATCH)
        assert batch is not None and batch.source_sha256 == landed.sha256
        accepted = pd.read_parquet(batch.path)
        quarantined = pd.read_parquet(paths.quarantine / "rows.parquet")
        rows_in = _records(corrupted.content)
        assert verdict["rows_in"] == rows_in == len(accepted) + len(quarantined)  # nothing lost
        # exactly the corrupted rows and the month's genuinely unlabelled rows are split off
        frame = pd.read_csv(io.BytesIO(corrupted.content), dtype=str, keep_default_na=False)
        expected = set(corrupted.bad_rows or []) | set(np.flatnonzero(frame[TARGET].to_numpy() == ""))
        assert set((quarantined["_line"] - 2).tolist()) == expected
        assert case.rule in "; ".join(quarantined["_failed_row_rules"])
        failure = next(f for f in verdict["failures"] if f["expectation"] == case.rule)
        assert failure["sample_values"]  # the report quotes bad values
        assert len(failure["sample_values"]) <= settings.quality.sample_bad_values
    assert paths.report_md.is_file() and paths.data_docs_index.is_file() and paths.gx_result.is_file()
    assert case.rule in paths.report_md.read_text()
