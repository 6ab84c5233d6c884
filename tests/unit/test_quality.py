"""Quality gate, the parts that need no data.

Suite checks, batch periods, the reader on inline bytes, batch ids from params or intervals.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.errors import NothingToDoError
from pipelines.core.periods import batch_ids
from pipelines.quality import (
    SuiteError,
    load_suite,
)
from pipelines.quality.reader import read_landed
from pipelines.quality.steps import resolve_batch_id
from pipelines.quality.suite import batch_period


def _csv_records(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_flights_suite_gives_every_expectation_a_known_severity(settings) -> None:
    spec = load_suite(settings)
    severities = {e["meta"]["severity"] for e in spec.expectations}
    assert severities == {"critical", "row"}
    columns = {e["kwargs"]["column"] for e in spec.expectations if "column" in e["kwargs"]}
    assert columns <= set(settings.dataset.landed_columns)
    # every landed column is covered by at least one rule
    assert set(settings.dataset.landed_columns) <= columns


def test_suite_without_severity_is_refused_with_its_position(settings, tmp_path: Path) -> None:
    doc = json.loads(settings.resolve(settings.dataset.expectation_suite).read_text())
    del doc["expectations"][3]["meta"]["severity"]
    doc["expectations"][5]["kwargs"]["column"] = "no_such_column"
    bad = tmp_path / "bad_suite.json"
    bad.write_text(json.dumps(doc))
    broken = settings.model_copy(deep=True)
    broken.dataset.expectation_suite = str(bad)
    with pytest.raises(SuiteError) as err:
        load_suite(broken)
    assert "expectations[3]" in str(err.value) and "meta.severity" in str(err.value)
    assert "no_such_column" in str(err.value)


def test_row_severity_on_an_aggregate_expectation_is_refused(settings, tmp_path: Path) -> None:
    doc = json.loads(settings.resolve(settings.dataset.expectation_suite).read_text())
    row_count = next(e for e in doc["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    row_count["meta"]["severity"] = "row"
    bad = tmp_path / "bad_suite.json"
    bad.write_text(json.dumps(doc))
    broken = settings.model_copy(deep=True)
    broken.dataset.expectation_suite = str(bad)
    with pytest.raises(SuiteError, match="aggregate expectations can only be 'critical'"):
        load_suite(broken)


def test_batch_period_matches_the_batch_ids_of_its_edges(settings) -> None:
    contract = settings.dataset
    start, end = batch_period("2013-03", contract)
    assert str(start.tz) == "UTC" and start < end
    edges = pd.Series([start, end - pd.Timedelta(seconds=1), start - pd.Timedelta(seconds=1), end])
    ids = batch_ids(edges.astype(str), contract.batch_frequency, contract.event_timezone).tolist()
    assert ids == ["2013-03", "2013-03", "2013-02", "2013-04"]
    with pytest.raises(SuiteError, match="not a valid month batch id"):
        batch_period("2013-13", contract)


@pytest.mark.parametrize(
    ("content", "check"),
    [
        (b"", "structure:file_not_empty"),
        (b"a,b\n1,2\n\xff\xfe,3\n", "structure:file_is_utf8"),
        (b"a,b\n1,2\n3\n", "structure:csv_rows_match_header"),
        (b'a,b\n1,"2\n3,4\n', "structure:csv_parseable"),  # unclosed quote
    ],
)
def test_reader_names_structural_failures(settings, tmp_path: Path, content: bytes, check: str) -> None:
    path = tmp_path / "batch.csv"
    path.write_bytes(content)
    read = read_landed(path, settings.dataset)
    assert read.frame is None
    assert [f.expectation for f in read.failures] == [check]
    assert read.failures[0].severity == "critical" and read.failures[0].message


def test_batch_id_comes_from_the_param_or_the_data_interval(settings) -> None:
    start, end = pd.Timestamp("2013-06-01", tz="UTC"), pd.Timestamp("2013-07-01", tz="UTC")
    assert resolve_batch_id(settings, None, start.to_pydatetime(), end.to_pydatetime()) == "2013-06"
    assert resolve_batch_id(settings, " 2013-02 ", start, end) == "2013-02"
    # a scheduled period without a configured batch skips (NothingToDoError), it does not fail
    with pytest.raises(NothingToDoError, match=r"skipped: .*'2026-10'.*not among the configured"):
        resolve_batch_id(
            settings, "", pd.Timestamp("2026-10-01", tz="UTC"), pd.Timestamp("2026-11-01", tz="UTC")
        )
    with pytest.raises(ValueError, match="no batch_id"):
        resolve_batch_id(settings, "", None, None)
