"""The prediction log's writer: answered requests leave the request path and are inserted in batches.

The gateway hands each answered request to a :class:`PredictionLogWriter`, whose thread inserts
in batches every few hundred milliseconds (a per-request INSERT would cost more than the model).
Rows are never dropped silently: a failed flush is retried, :meth:`PredictionLogWriter.close`
drains the queue on a clean shutdown, and anything still unwritten is counted and logged.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.core.observability import get_logger
from pipelines.core.predlog.schema import PREDICTIONS, engine_for, to_utc_iso

log = get_logger(__name__)


@dataclass
class LoggedRequest:
    """One answered (or failed) request as the gateway hands it to the writer.

    Column-major feature values exactly as validated; row expansion and JSON
    encoding happen on the writer thread, off the request path.
    """

    request_id: str
    ts: str
    variant: str
    model_version: str | None
    columns: Sequence[str]
    values: Sequence[Sequence[Any]]
    n_rows: int
    predictions: Sequence[float] | None
    latency_ms: float
    error: str | None = None
    entity_ids: Sequence[Any] | None = None
    event_times: Sequence[Any] | None = None

    def rows(self) -> list[dict[str, Any]]:
        columns = list(self.columns)
        dumps = json.dumps
        n = self.n_rows
        if columns:
            features = [
                dumps(dict(zip(columns, vals, strict=True)))
                for vals in zip(*map(_jsonable, self.values), strict=True)
            ]
        else:  # nothing to record but the prediction (e.g. an input that never parsed)
            features = ["{}"] * n
        preds = [None] * n if self.predictions is None else [float(p) for p in self.predictions]
        ids = [None] * n if self.entity_ids is None else [_text(v) for v in self.entity_ids]
        times: list[str | None] = [None] * n
        if self.event_times is not None:
            seen: dict[Any, str | None] = {}  # a replayed batch repeats the same hours
            times = [seen[t] if t in seen else seen.setdefault(t, to_utc_iso(t)) for t in self.event_times]
        const = {
            "request_id": self.request_id,
            "ts": self.ts,
            "variant": self.variant,
            "model_version": self.model_version,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }
        return [
            {
                **const,
                "entity_id": ids[i],
                "event_time": times[i],
                "features": features[i],
                "prediction": preds[i],
            }
            for i in range(n)
        ]


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def _jsonable(col: Sequence[Any]) -> list[Any]:
    vals = col.tolist() if hasattr(col, "tolist") else list(col)
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in vals]


@dataclass
class WriterStats:
    rows_written: int = 0
    flushes: int = 0
    failures: int = 0
    rows_dropped: int = 0
    last_error: str | None = None
    pending: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class PredictionLogWriter:
    """Batches logged requests onto a background thread and inserts them together.

    ``on_flushed(requests)`` runs on the writer thread after each successful insert
    (the gateway updates its prediction histograms there, off the request path).
    """

    def __init__(
        self,
        url: str,
        flush_ms: int = 200,
        max_pending_rows: int = 1_000_000,
        on_flushed: Callable[[list[LoggedRequest]], None] | None = None,
    ) -> None:
        self.url = url
        self._engine = engine_for(url)
        self._flush_s = flush_ms / 1000.0
        self._max_pending = max_pending_rows
        self._on_flushed = on_flushed
        self._queue: queue.SimpleQueue[LoggedRequest] = queue.SimpleQueue()
        self._carry: list[LoggedRequest] = []
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._submitted = 0
        self._done = 0
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def submit(self, item: LoggedRequest) -> None:
        with self._idle:
            self._submitted += 1
        self._queue.put(item)

    def _drain(self) -> list[LoggedRequest]:
        items = self._carry
        self._carry = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _rows(self, items: list[LoggedRequest]) -> list[dict[str, Any]]:
        """Rows of every item; an item that cannot be serialised is counted and reported, not fatal
        (an exception here would end the writer thread and stop the whole log)."""
        rows: list[dict[str, Any]] = []
        for it in items:
            try:
                rows.extend(it.rows())
            except Exception as exc:
                self.stats.rows_dropped += it.n_rows
                self.stats.last_error = f"unserialisable request {it.request_id}: {type(exc).__name__}: {exc}"
                log.error("prediction log: request not serialisable", error=self.stats.last_error)
        return rows

    def _write(self, items: list[LoggedRequest]) -> bool:
        rows = self._rows(items)
        if not rows:
            return True
        try:
            with self._engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), rows)
        except Exception as exc:  # DB down or locked: keep the rows, retry next tick
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error(
                "prediction log flush failed", url=self.url, rows=len(rows), error=self.stats.last_error
            )
            pending_rows = sum(it.n_rows for it in items)
            if pending_rows > self._max_pending:
                self.stats.rows_dropped += pending_rows
                log.error("prediction log dropping rows: writer backlog over limit", rows=pending_rows)
                return True
            self._carry = items
            return False
        self.stats.rows_written += len(rows)
        self.stats.flushes += 1
        if self._on_flushed is not None:
            try:
                self._on_flushed(items)
            except Exception as exc:
                log.error("prediction log on_flushed hook failed", error=str(exc))
        return True

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._flush_s)
            items = self._drain()
            if items:
                ok = self._write(items)
                if ok:
                    with self._idle:
                        self._done += len(items)
                        self._idle.notify_all()
                elif stopping:
                    time.sleep(min(self._flush_s, 0.5))
                    ok = self._write(self._drain())
                    if not ok:
                        lost = sum(it.n_rows for it in self._carry)
                        self.stats.rows_dropped += lost
                        log.error("prediction log: rows not written at shutdown", rows=lost, url=self.url)
                    return
            if stopping and self._queue.empty() and not self._carry:
                return

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is written (tests, admin, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            target = self._submitted
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued, then stop the thread (called on clean shutdown)."""
        self._stop.set()
        self._thread.join(timeout)
        self.stats.pending = self._queue.qsize() + len(self._carry)
        if self.stats.pending:
            log.error("prediction log closed with rows unwritten", requests=self.stats.pending)
