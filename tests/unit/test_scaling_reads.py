"""Issue 16 item 3: the landing and gate reads that must stay linear and lean as batches grow.

``scan_csv`` counts records in one streaming pass (materialising them cost ~20x the file in
Python objects) and must give the answers ``records`` gives; the reader hands GX a frame with
one block per dtype (a split frame made every GX filter re-consolidate all columns) while the
raw frame keeps the event time as read.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import load_settings
from pipelines.data.files import LandingError, inspect, records, scan_csv

pytestmark = pytest.mark.performance


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n1,2\n3,4\n",
        "a,b\n1,2\n3,4\n\n\n",  # trailing blank lines are not records
        "a,b\n1,2\n\n3,4\n",  # a blank line before a record is ragged
        "a,b\n1,2\n3\n4,5,6\n",  # short and long records
        'a,b\n"x\ny",2\n3,4\n',  # a quoted newline stays one record
    ],
)
def test_scan_csv_agrees_with_records(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.csv"
    path.write_text(text)
    scan = scan_csv(io.StringIO(text, newline=""))
    try:
        body = records(inspect(path))
    except LandingError as exc:
        assert exc.check == "csv_rows_match_header"
        assert scan.ragged_count > 0
        assert exc.rows_in == scan.records
        assert f"{scan.ragged_count} of {scan.records} records" in str(exc)
    else:
        assert scan.ragged_count == 0
        assert scan.records == len(body)
    assert scan.header == ("a", "b")


def test_scan_csv_keeps_only_the_first_ragged_lines() -> None:
    text = "a,b\n" + "1\n" * 1000
    scan = scan_csv(io.StringIO(text, newline=""), keep=5)
    assert scan.ragged_count == 1000
    assert scan.ragged == tuple((line, 1) for line in range(2, 7))


def test_reader_frame_is_consolidated_and_raw_keeps_text(tmp_path: Path) -> None:
    from pipelines.quality.reader import read_landed

    contract = load_settings().dataset
    row = dict.fromkeys(contract.landed_columns, "1")
    row[contract.event_time] = "2013-06-01T10:00:00Z"
    for c in [contract.id.column, *contract.features.categorical]:
        row[c] = "x"
    path = tmp_path / "batch.csv"
    pd.DataFrame([row, row]).to_csv(path, index=False)
    read = read_landed(path, contract)
    assert read.frame is not None and read.raw is not None
    assert read.failures == []
    assert read.records == 2
    dtypes = read.frame.dtypes.map(str)
    # one block per dtype: GX filters never have to merge blocks
    assert read.frame._mgr.nblocks == dtypes.nunique()
    assert str(read.frame[contract.event_time].dtype) == "datetime64[ns, UTC]"
    assert read.raw[contract.event_time].tolist() == ["2013-06-01T10:00:00Z"] * 2
