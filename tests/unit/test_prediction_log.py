"""The prediction log on a real SQLite file: what the door stores, what the writer survives.

Failures are real, not mocked: a poison row is a row the database itself refuses (a SQLite
trigger), a database outage is a log path that cannot be opened, a crash is a spool directory
left behind with its lock released.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from pipelines.core.predlog import (
    LoggedRequest,
    PredictionLogWriter,
    UnstorableError,
    engine_for,
    request_id_text,
)
from pipelines.core.predlog.encode import (
    MAX_ENTITY_ID_CHARS,
    entity_id_text,
    event_time_text,
    features_json,
    prediction_value,
)

pytestmark = pytest.mark.edges


def _request(
    rid: str, columns: list[str], values: list[list[object]], n: int, ids: list[Any] | None = None
) -> LoggedRequest:
    return LoggedRequest(
        request_id=rid,
        ts="2026-01-01T00:00:00+00:00",
        variant="champion",
        model_version="1",
        columns=columns,
        values=values,
        n_rows=n,
        predictions=np.linspace(0.1, 0.9, n),
        latency_ms=2.5,
        entity_ids=ids if ids is not None else [f"{rid}-{i}" for i in range(n)],
        event_times=["2013-01-01T05:00:00-05:00"] * n,
    )


def _rows(url: str, where: str = "1=1") -> list[Any]:
    with sa.create_engine(url).connect() as conn:
        return list(
            conn.execute(
                sa.text(f"select request_id, entity_id, features, row_id from predictions where {where}")
            )
        )


def _wait(cond: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


# --------------------------------------------------------------------------- the door, per field
@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("EWR-1", "EWR-1"),
        ("\udcff", "\\udcff"),  # lone surrogate: escaped, 6 ASCII characters
        ("a\x00b", "a\\x00b"),  # NUL: PostgreSQL text cannot hold it
        ("é✈", "é✈"),  # valid non-ASCII is kept as is
        (12345678901234567890, "12345678901234567890"),
        (7.0, "7"),
        (float("nan"), None),
        (float("inf"), None),
        (None, None),
    ],
)
def test_entity_id_is_stored_escaped(value: Any, stored: str | None) -> None:
    assert entity_id_text(value) == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * (MAX_ENTITY_ID_CHARS + 1), "characters"),
        (10**400, "digits"),
        (["a"], "list"),
        ({"a": 1}, "dict"),
    ],
)
def test_entity_id_that_cannot_key_the_log_is_refused(value: Any, message: str) -> None:
    with pytest.raises(UnstorableError, match=message):
        entity_id_text(value, row=3)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2013-01-01 05:00:00", "2013-01-01T05:00:00+00:00"),
        ("2013-01-01T05:00:00-05:00", "2013-01-01T10:00:00+00:00"),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_event_time_is_stored_as_utc_iso(value: Any, stored: str | None) -> None:
    assert event_time_text(value) == stored


@pytest.mark.parametrize("value", ["yesterday", "2013-13-01", 1357016400, ["2013-01-01"], "9" * 100])
def test_event_time_that_is_not_a_timestamp_is_refused(value: Any) -> None:
    with pytest.raises(UnstorableError, match="event time of row 0"):
        event_time_text(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("abc-123", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("é", False),
        ("", False),
    ],
)
def test_request_id_is_a_key_refused_not_rewritten(value: str, ok: bool) -> None:
    if ok:
        assert request_id_text(value) == value
    else:
        with pytest.raises(UnstorableError, match="X-Request-Id"):
            request_id_text(value)


def test_non_finite_prediction_is_null_with_a_flag_and_features_are_ascii_json() -> None:
    assert prediction_value(0.25) == (0.25, None)
    value, flag = prediction_value(float("nan"))
    assert value is None and flag == "non-finite prediction: nan"
    text = features_json(["a", "b", "c"], [float("inf"), "\udcff\x00", [1.0, float("nan")]])
    assert text.isascii()
    assert json.loads(text) == {"a": None, "b": "\udcff\x00", "c": [1.0, None]}


# --------------------------------------------------------------------------- the writer
def test_request_the_log_cannot_store_is_refused_at_submit_and_the_rest_lands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = PredictionLogWriter(url, flush_ms=20)
    try:
        writer.submit(_request("good", ["dep_hour", "origin"], [[5.0, 6.0], ["EWR", None]], 2)).result(10)
        writer.submit(_request("bare", [], [], 3)).result(10)  # no features recorded: rows still logged
        with pytest.raises(UnstorableError, match="1 feature values for 2 rows"):
            writer.submit(_request("broken", ["dep_hour"], [[1.0]], 2))
        with pytest.raises(UnstorableError, match="entity id of row 0"):
            writer.submit(_request("long-id", ["dep_hour"], [[1.0]], 1, ids=["x" * 1000]))
        writer.submit(_request("sur", ["origin"], [["\udcff"]], 1, ids=["\udcff"])).result(10)
        assert writer.flush(timeout=30)
    finally:
        writer.close()
    got = _rows(url)
    by_id = {(r[0], r[1]): r[2] for r in got}
    assert sorted({r[0] for r in got}) == ["bare", "good", "sur"]
    assert json.loads(by_id[("good", "good-1")]) == {"dep_hour": 6.0, "origin": None}
    assert json.loads(by_id[("bare", "bare-2")]) == {}
    assert json.loads(by_id[("sur", "\\udcff")]) == {"origin": "\udcff"}
    assert len({r[3] for r in got}) == len(got) == 6  # a unique row id per row
    assert writer.stats.rows_written == 6 and writer.stats.rejected_requests == 2


def test_a_row_the_database_refuses_is_dead_lettered_and_never_blocks_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with engine_for(url).begin() as conn:  # a poison the door cannot see: the database refuses it
        conn.execute(
            sa.text(
                "CREATE TRIGGER poison BEFORE INSERT ON predictions WHEN NEW.entity_id = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poison row refused'); END"
            )
        )
    writer = PredictionLogWriter(url, flush_ms=200, max_batch_rows=500)
    try:
        futures = [writer.submit(_request(f"r{i}", ["f"], [[float(i)] * 3], 3)) for i in range(40)]
        futures.append(writer.submit(_request("bad", ["f"], [[1.0, 2.0]], 2, ids=["ok-1", "poison"])))
        futures += [writer.submit(_request(f"s{i}", ["f"], [[float(i)]], 1)) for i in range(40)]
        for f in futures:
            f.result(10)
        assert writer.flush(timeout=30), writer.status()
        status = writer.status()
    finally:
        writer.close()
    assert len(_rows(url)) == 40 * 3 + 1 + 40
    assert _rows(url, "entity_id = 'ok-1'")
    assert writer.stats.dead_letter_rows == 1
    assert writer.stats.failures >= 2  # the batch, then the halves down to the single poison row
    assert status["status"] == "ok" and status["backlog_rows"] == 0 and status["dead_letter_rows"] == 1
    letters = [json.loads(line) for line in writer.dead_letter_path.read_text().splitlines()]
    assert [(d["row"]["entity_id"], d["row"]["request_id"]) for d in letters] == [("poison", "bad")]
    assert "poison row refused" in letters[0]["reason"]


def test_database_down_at_start_spools_reports_degraded_then_stores_everything(tmp_path: Path) -> None:
    blocker = tmp_path / "db"  # the log's directory is a file: the database cannot be opened
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'log.db'}"
    writer = PredictionLogWriter(url, flush_ms=20, spool_dir=tmp_path / "spool", degraded_lag_s=0.5)
    try:
        for i in range(25):  # acknowledged while the database is down: durable in the spool
            writer.submit(_request(f"r{i}", ["f"], [[1.0, 2.0]], 2)).result(10)
        assert not writer.flush(timeout=5)
        assert _wait(lambda: writer.status()["status"] == "degraded")
        status = writer.status()
        assert status["backlog_rows"] == 50 and status["write_failures"] >= 1
        assert "writes are failing" in status["reason"] and status["last_error"]
        blocker.unlink()  # the database comes back
        blocker.mkdir()
        assert writer.flush(timeout=30), writer.status()
        assert writer.status()["status"] == "ok" and writer.backlog_rows == 0
    finally:
        writer.close()
    assert len(_rows(url)) == 50
    assert not any((tmp_path / "spool").iterdir())  # a drained spool is removed at close


def test_leftover_spool_is_drained_first_and_re_draining_stores_nothing_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    spool = tmp_path / "spool"
    first = PredictionLogWriter(url, flush_ms=20, spool_dir=spool)
    for i in range(30):
        first.submit(_request(f"a{i}", ["f"], [[1.0, 2.0]], 2)).result(10)
    assert first.flush(timeout=30)
    # A crash after the insert, before the segment was deleted: the same records are on disk again.
    crashed = spool / "99999-crashed"
    shutil.copytree(first.spool.dir, crashed, ignore=shutil.ignore_patterns("lock"))
    with next(crashed.glob("seg-*.log")).open("ab") as fh:
        fh.write(b'3 {"id": "torn", "rows": [{"requ')  # the torn tail of a write cut by kill -9
    first.close()
    assert len(_rows(url)) == 60

    second = PredictionLogWriter(url, flush_ms=20, spool_dir=spool)
    try:
        second.submit(_request("b0", ["f"], [[1.0]], 1)).result(10)
        assert second.flush(timeout=30)
        assert _wait(lambda: not crashed.exists())
    finally:
        second.close()
    got = _rows(url)
    assert len(got) == 61 and len({r[3] for r in got}) == 61  # no duplicate of the 60 re-drained rows
    assert second.stats.leftover_rows == 60 and second.stats.torn_records == 1
    assert second.stats.dead_letter_rows == 0  # a torn record was never acknowledged: no row lost
    letters = [json.loads(line) for line in second.dead_letter_path.read_text().splitlines()]
    assert ["torn" in d["reason"] for d in letters] == [True]


def test_the_schema_gains_the_unique_row_id_on_a_log_created_before_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(url).begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE predictions (request_id TEXT NOT NULL, entity_id TEXT, "
                "event_time TEXT, ts TEXT NOT NULL, variant TEXT NOT NULL, model_version TEXT, "
                "features TEXT, prediction FLOAT, latency_ms FLOAT, error TEXT)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO predictions (request_id, ts, variant) VALUES ('old', 't', 'champion')")
        )
    writer = PredictionLogWriter(url, flush_ms=20)
    try:
        req = _request("new", ["f"], [[1.0]], 1)
        writer.submit(req).result(10)
        assert writer.flush(timeout=30)
    finally:
        writer.close()
    with engine_for(url).begin() as conn:
        assert conn.execute(sa.text("select count(*) from predictions")).scalar_one() == 2
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(
                sa.text(
                    f"INSERT INTO predictions (request_id, ts, variant, row_id) "
                    f"VALUES ('dup', 't', 'champion', '{req.log_id}:0')"
                )
            )


def test_gateway_metrics_count_failures_backlog_and_dead_letters_as_they_happen(tmp_path: Path) -> None:
    from pipelines.serving.metrics import GatewayMetrics

    blocker = tmp_path / "db"
    blocker.write_text("")
    writer = PredictionLogWriter(f"sqlite:///{blocker / 'log.db'}", flush_ms=20, spool_dir=tmp_path / "s")
    metrics = GatewayMetrics([0.5])
    metrics.watch_prediction_log(writer)
    try:
        writer.submit(_request("r", ["f"], [[1.0, 2.0, 3.0]], 3)).result(10)
        assert _wait(lambda: writer.stats.failures > 0)
        text = metrics.render().decode()
    finally:
        writer.close()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("gateway_prediction_log_")
    }
    assert values["gateway_prediction_log_write_failures_total"] >= 1  # before any successful flush
    assert values["gateway_prediction_log_backlog_rows"] == 3
    assert values["gateway_prediction_log_dead_letter_rows_total"] == 0
    assert values["gateway_prediction_log_degraded"] == 1
    assert not math.isnan(values["gateway_prediction_log_rows_written"])


def test_a_backlog_that_stops_draining_is_degraded_with_the_reason(tmp_path: Path) -> None:
    """No write fails, the database just does not take rows (another writer holds its lock)."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine_for(url)  # the tables exist before the lock is taken
    holder = sqlite3.connect(tmp_path / "log.db", timeout=1, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    writer = PredictionLogWriter(url, flush_ms=20, degraded_lag_s=0.5)
    try:
        for i in range(5):
            writer.submit(_request(f"r{i}", ["f"], [[1.0]], 1)).result(10)
        assert _wait(lambda: writer.status()["status"] == "degraded")
        status = writer.status()
        assert "not draining" in status["reason"] and status["backlog_rows"] == 5
        holder.execute("COMMIT")  # the other writer lets go: the backlog drains
        assert writer.flush(timeout=60), writer.status()
        assert writer.status()["status"] == "ok"
    finally:
        holder.close()
        writer.close()
    assert len(_rows(url)) == 5
