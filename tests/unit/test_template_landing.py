"""Rows are never silently dropped at landing; the naive-timestamp convention is a contract field.

A tiny hourly dataset written inline: its event times carry no zone, the contract cuts batches in
America/New_York. Read as UTC (the default) the first hours of 2011-01-01 fall into 2010-12, a
batch that is not configured: those rows must be counted, reported and quarantined. Read as
local wall-clock times they all land.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import load_settings
from pipelines.core.periods import batch_ids, local_time
from pipelines.data.landing import OUTSIDE_FOLDER, UNPARSEABLE, land_batch, outside_batches

pytestmark = pytest.mark.template


def _write_dataset(folder: Path, naive: str | None, *, broken: bool = False) -> Path:
    times = pd.date_range("2011-01-01 00:00", "2011-02-28 23:00", freq="h")
    df = pd.DataFrame(
        {
            "reading_id": [f"R{i:05d}" for i in range(len(times))],
            "measured_at": times.strftime("%Y-%m-%d %H:%M:%S"),
            "temp": [float(i % 24) for i in range(len(times))],
            "load_kw": [100.0 + (i % 24) for i in range(len(times))],
        }
    )
    if broken:
        df.loc[10, "measured_at"] = "not a time"
    df.to_csv(folder / "load.csv", index=False)
    naive_line = f"  naive_timestamps: {naive}\n" if naive else ""
    cfg = folder / "pipeline.yaml"
    cfg.write_text(
        "dataset:\n"
        "  name: load\n"
        "  source: {path: load.csv}\n"
        "  id: {column: reading_id}\n"
        "  event_time: measured_at\n"
        "  event_timezone: America/New_York\n"
        f"{naive_line}"
        "  target: {name: load_kw, task: regression}\n"
        "  features: {numeric: [temp]}\n"
        "  batches: [2011-01, 2011-02]\n"
        "  expectation_suite: expectations.json\n"
    )
    return cfg


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, naive: str | None, broken: bool = False):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    return load_settings(_write_dataset(tmp_path, naive, broken=broken))


def test_naive_times_read_as_utc_leave_rows_outside_and_they_are_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, None)
    assert settings.dataset.naive_timestamps == "utc"  # the default, now a stated contract field
    landed = land_batch(settings, "2011-01")
    outside = outside_batches(settings)
    # 00:00-04:00 UTC on Jan 1 is Dec 31 evening in New York: five rows in an unconfigured batch
    assert outside.rows == 5 and outside.by_batch == {"2010-12": 5}
    assert outside.quarantined is not None and outside.report is not None
    kept = pd.read_csv(outside.quarantined)
    assert len(kept) == 5 and list(kept["reading_id"]) == [f"R{i:05d}" for i in range(5)]
    report = json.loads(outside.report.read_text())
    assert report["rows"] == 5 and report["naive_timestamps"] == "utc"
    assert outside.report.parent.name == OUTSIDE_FOLDER
    # nothing vanished: landed Jan + Feb + quarantined == source rows
    feb = land_batch(settings, "2011-02")
    assert landed.rows + feb.rows + outside.rows == 59 * 24
    assert "5 source rows outside every configured batch (2010-12: 5)" in outside.summary()


def test_naive_times_read_as_local_land_every_row_as_utc_instants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "local")
    jan = land_batch(settings, "2011-01")
    feb = land_batch(settings, "2011-02")
    assert outside_batches(settings).rows == 0
    assert jan.rows == 31 * 24 and feb.rows == 28 * 24
    first = pd.read_csv(jan.path)["measured_at"].iloc[0]
    assert first == "2011-01-01T05:00:00Z"  # midnight in New York, written as an explicit UTC instant


def test_unparseable_event_times_are_counted_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "local", broken=True)
    outside = outside_batches(settings)
    assert outside.by_batch == {UNPARSEABLE: 1}


def test_local_convention_handles_daylight_saving_edges() -> None:
    wall = pd.Series(["2011-11-06 01:30:00", "2011-03-13 02:30:00", "2011-01-01T03:00:00Z"])
    ts = local_time(wall, "America/New_York", "local")
    assert str(ts.iloc[0]) == "2011-11-06 01:30:00-05:00"  # ambiguous fall-back hour: standard time
    assert str(ts.iloc[1]) == "2011-03-13 03:00:00-04:00"  # spring-forward gap: shifted forward
    assert str(ts.iloc[2]) == "2010-12-31 22:00:00-05:00"  # an explicit zone wins over the convention
    assert list(batch_ids(wall, "month", "America/New_York", "local")) == ["2011-11", "2011-03", "2010-12"]
    with pytest.raises(ValueError, match="naive_timestamps"):
        local_time(wall, "UTC", "guess")
