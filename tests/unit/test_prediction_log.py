"""The prediction-log writer on a real SQLite file: what it writes, and what it survives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from pipelines.core.predlog import LoggedRequest, PredictionLogWriter


def _request(rid: str, columns: list[str], values: list[list[object]], n: int) -> LoggedRequest:
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
        entity_ids=[f"{rid}-{i}" for i in range(n)],
        event_times=["2013-01-01T05:00:00-05:00"] * n,
    )


def test_writer_keeps_going_past_a_request_it_cannot_serialise(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = PredictionLogWriter(url, flush_ms=20)
    try:
        writer.submit(_request("good", ["dep_hour", "origin"], [[5.0, 6.0], ["EWR", None]], 2))
        writer.submit(_request("bare", [], [], 3))  # no features recorded: rows still logged
        writer.submit(_request("broken", ["dep_hour"], [[1.0]], 2))  # 1 value for 2 rows
        writer.submit(_request("after", ["dep_hour"], [[7.0]], 1))
        assert writer.flush(timeout=30)
        assert writer._thread.is_alive()
    finally:
        writer.close()
    with sa.create_engine(url).connect() as conn:
        got = conn.execute(sa.text("select request_id, entity_id, features from predictions")).all()
    by_id = {(r[0], r[1]): r[2] for r in got}
    assert sorted({r[0] for r in got}) == ["after", "bare", "good"]
    assert json.loads(by_id[("good", "good-1")]) == {"dep_hour": 6.0, "origin": None}
    assert json.loads(by_id[("bare", "bare-2")]) == {}
    assert writer.stats.rows_written == 6 and writer.stats.rows_dropped == 2
    assert "broken" in (writer.stats.last_error or "")
