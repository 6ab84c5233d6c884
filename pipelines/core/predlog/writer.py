"""The prediction log's writer: accepted requests are spooled before the answer, stored after it.

The gateway hands each answered request to :meth:`PredictionLogWriter.submit`, which encodes it
at the door (:mod:`.encode`: a value that cannot be stored is escaped or the request refused),
appends it to the local spool (:mod:`.spool`) and returns a future that resolves once the record
is durable; the gateway answers only then. A background thread drains the spool into the
database in batches (a per-request INSERT would cost more than the model):

* Inserts are idempotent (``row_id`` is unique, conflicts are skipped), so re-draining a spool
  after a crash, or draining one a dead process left behind, stores nothing twice.
* A failed insert is counted at once. When the database does not answer, the batch waits on the
  spool (nothing is lost, nothing is dropped) and the writer retries with a growing pause. When
  the database answers but refuses the batch, the batch is split in halves down to single rows
  (at most ~2n inserts for n rows); a single row the reachable database still refuses goes to
  the dead-letter file with the reason, and every other row is stored.
* :meth:`PredictionLogWriter.status` is what ``/health`` reports: ``degraded`` (with the reason)
  while writes fail or the backlog stops draining, ``failed`` when the spool itself cannot write.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipelines.core.observability import get_logger
from pipelines.core.predlog.encode import (
    UnstorableError,
    entity_ids_text,
    error_text,
    event_times_text,
    features_json,
    prediction_value,
    safe_text,
)
from pipelines.core.predlog.schema import PREDICTIONS, engine_for
from pipelines.core.predlog.spool import Chunk, Spool, SyncMode

log = get_logger(__name__)


@dataclass
class LoggedRequest:
    """One answered (or failed) request as the gateway hands it to the writer.

    Column-major feature values exactly as validated. ``log_id`` is the server's own id of the
    record (the caller's request id may repeat); row ``i`` is stored with ``row_id = log_id:i``.
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
    log_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def rows(self) -> list[dict[str, Any]]:
        """The stored rows, every value made storable (see :mod:`.encode`); raises
        :class:`UnstorableError` when the request cannot be stored as sent."""
        n = self.n_rows
        columns = [str(c) for c in self.columns]
        features = self._features(columns) if columns else ["{}"] * n
        ids = entity_ids_text(self.entity_ids) or [None] * n
        times = event_times_text(self.event_times) or [None] * n
        if self.predictions is None:
            preds: list[tuple[float | None, str | None]] = [(None, None)] * n
        else:
            preds = [prediction_value(p) for p in self.predictions]
        for what, got in (
            ("feature", features),
            ("entity id", ids),
            ("event time", times),
            ("prediction", preds),
        ):
            if len(got) != n:
                raise UnstorableError(f"request {self.request_id}: {len(got)} {what} values for {n} rows")
        error = error_text(self.error)
        const = {
            "request_id": safe_text(self.request_id),
            "ts": self.ts,
            "variant": safe_text(self.variant),
            "model_version": None if self.model_version is None else safe_text(str(self.model_version)),
            "latency_ms": float(self.latency_ms) if math.isfinite(self.latency_ms) else None,
        }
        return [
            {
                **const,
                "entity_id": ids[i],
                "event_time": times[i],
                "features": features[i],
                "prediction": preds[i][0],
                "error": error if error is not None else preds[i][1],
                "row_id": f"{self.log_id}:{i}",
            }
            for i in range(n)
        ]

    def _features(self, columns: list[str]) -> list[str]:
        cols = [_plain(c) for c in self.values]
        try:
            rows = list(zip(*cols, strict=True))
        except ValueError:
            raise UnstorableError(
                f"request {self.request_id}: feature columns of different lengths {[len(c) for c in cols]}"
            ) from None
        dumps = json.dumps
        out = []
        for vals in rows:
            try:  # the fast path: plain finite values
                out.append(dumps(dict(zip(columns, vals, strict=True)), ensure_ascii=True, allow_nan=False))
            except (ValueError, TypeError):
                try:
                    out.append(features_json(columns, vals))
                except ValueError as exc:  # e.g. an integer beyond Python's digit limit
                    raise UnstorableError(
                        f"request {self.request_id}: a feature value cannot be stored: {exc}"
                    ) from None
        return out


def _plain(col: Sequence[Any]) -> list[Any]:
    vals = col.tolist() if hasattr(col, "tolist") else list(col)
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in vals]


@dataclass
class WriterStats:
    """Counters of the writer since the process started (the gateway's metrics read them)."""

    rows_written: int = 0
    flushes: int = 0
    failures: int = 0  # failed insert attempts, counted as they happen
    dead_letter_rows: int = 0
    rejected_requests: int = 0
    torn_records: int = 0
    leftover_rows: int = 0  # rows found in spools of dead processes at start
    last_error: str | None = None
    last_error_at: str | None = None
    pending: int = 0


def _short(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement and parameters (row data, kilobytes)."""
    orig = getattr(exc, "orig", None)
    text = f"{type(orig or exc).__name__}: {orig or exc}"
    return safe_text(text.split("\n[SQL:")[0].strip())[:400]


def _transient(exc: BaseException) -> bool:
    """An error of the connection or the database as a whole, not of the rows sent."""
    if isinstance(exc, (sa.exc.DisconnectionError, sa.exc.TimeoutError, OSError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return any(
        s in text
        for s in (
            "database is locked",
            "unable to open",
            "disk i/o",
            "connection",
            "server closed",
            "timeout",
        )
    )


class PredictionLogWriter:
    """Spools submitted requests and drains them into the database on a background thread.

    ``on_flushed(rows)`` runs on the writer thread after each successful insert (the gateway
    updates its prediction histograms there, off the request path). ``spool_dir`` defaults to a
    directory next to a SQLite log (callers without durability needs); the gateway passes its own.
    """

    def __init__(
        self,
        url: str,
        flush_ms: int = 200,
        *,
        spool_dir: Path | None = None,
        dead_letter: Path | None = None,
        sync: SyncMode = "fsync",
        max_batch_rows: int = 2000,
        degraded_backlog_rows: int = 50_000,
        degraded_lag_s: float = 10.0,
        on_flushed: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.url = url
        self.display_url = sa.make_url(url).render_as_string(hide_password=True)
        spool_dir = spool_dir or _default_spool(url)
        self.dead_letter_path = dead_letter or spool_dir.parent / "predlog-dead-letter.jsonl"
        self.spool = Spool(spool_dir, sync=sync)
        self._flush_s = flush_ms / 1000.0
        self._max_rows = max_batch_rows
        self._degraded_rows = degraded_backlog_rows
        self._degraded_lag = degraded_lag_s
        self._on_flushed = on_flushed
        self._engine: sa.Engine | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._submitted = 0
        self._done_own = 0
        self._rows_done = 0
        self._write_failing = False
        self._last_progress = time.monotonic()
        self._drained_at_close = False
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request path
    def submit(self, item: LoggedRequest) -> Future[None]:
        """Encode and spool one request; the future resolves when it is durable (answer then).

        Raises :class:`UnstorableError` (nothing spooled) when the request cannot be stored.
        """
        try:
            rows = item.rows()
            line = json.dumps({"id": item.log_id, "rows": rows}, ensure_ascii=True, allow_nan=False)
        except UnstorableError:
            self.stats.rejected_requests += 1
            raise
        except (ValueError, TypeError) as exc:
            self.stats.rejected_requests += 1
            raise UnstorableError(f"request {item.request_id} cannot be stored: {exc}") from None
        with self._progress:
            self._submitted += 1
        fut = self.spool.append(f"{len(rows)} {line}\n".encode("ascii"), len(rows))
        fut.add_done_callback(self._spooled)
        return fut

    def _spooled(self, fut: Future[None]) -> None:
        if fut.exception() is not None:  # refused: it will never be drained, do not wait for it
            with self._progress:
                self._done_own += 1
                self._progress.notify_all()

    # ------------------------------------------------------------------ draining
    def _run(self) -> None:
        try:
            self.stats.leftover_rows = self.spool.adopt_leftovers()
        except OSError as exc:
            log.error("prediction log: could not scan the spool for leftovers", error=str(exc))
        delay = self._flush_s
        while True:
            stopping = self._stop.is_set()
            chunk = self.spool.read(self._max_rows)
            if chunk is None:
                with self._progress:
                    self._last_progress = time.monotonic()
                if stopping and self.spool.close_requested():
                    self._drained_at_close = True
                    return
                self._wake.wait(self._flush_s)
                self._wake.clear()
                continue
            if self._store(chunk):
                self.spool.commit(chunk)
                with self._progress:
                    self._done_own += chunk.own_records
                    self._rows_done += chunk.rows
                    self._last_progress = time.monotonic()
                    self._progress.notify_all()
                delay = self._flush_s
                if chunk.rows < self._max_rows and not stopping:
                    self._wake.wait(self._flush_s)  # let the next batch fill up
                    self._wake.clear()
            else:
                if stopping:
                    return  # the database is down at shutdown: the spool keeps the rows
                self._wake.wait(delay)  # a flush() retries at once instead of after the backoff
                self._wake.clear()
                delay = min(delay * 2, 5.0)

    def _store(self, chunk: Chunk) -> bool:
        """Insert the chunk; False when the database is unreachable (retry the same chunk later)."""
        rows: list[dict[str, Any]] = []
        for n, body in chunk.records:
            try:
                record = json.loads(body)
                got = record["rows"]
                if len(got) != n:
                    raise ValueError(f"{len(got)} rows, header says {n}")
                rows.extend(got)
            except (ValueError, KeyError, TypeError) as exc:
                self._dead_letter(
                    [{"spool_record": body.decode("ascii", "backslashreplace")}],
                    f"unreadable spool record: {exc}",
                    n,
                )
        for line in chunk.torn:
            self.stats.torn_records += 1
            self._dead_letter(
                [{"spool_record": line.decode("ascii", "backslashreplace")}],
                "torn spool record (cut by a crash while being written; never acknowledged)",
                0,
            )
        if not rows:
            return True
        try:
            self._insert(rows)
        except Exception as exc:
            self._failed(exc, len(rows))
            if _transient(exc) or not self._reachable():
                return False
            return self._isolate(rows)
        self._stored(rows)
        return True

    def _isolate(self, rows: list[dict[str, Any]]) -> bool:
        """Split a refused batch down to single rows; dead-letter the rows refused on their own."""
        stack = [rows[len(rows) // 2 :], rows[: len(rows) // 2]]
        while stack:
            part = stack.pop()
            if not part:
                continue
            try:
                self._insert(part)
            except Exception as exc:
                self._failed(exc, len(part))
                if _transient(exc) or not self._reachable():
                    return False  # the database went away meanwhile: retry it all (idempotent)
                if len(part) == 1:
                    self._dead_letter(part, _short(exc), 1)
                else:
                    stack.extend([part[len(part) // 2 :], part[: len(part) // 2]])
                continue
            self._stored(part, isolating=True)
        self._write_failing = False  # the refused rows are set aside: the log itself is healthy
        return True

    def _connect(self) -> sa.Engine:
        if self._engine is None:
            self._engine = engine_for(self.url)  # creates the tables: may fail while the DB is down
        return self._engine

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        engine = self._connect()
        dialect = engine.dialect.name
        stmt: Any
        if dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            stmt = sqlite.insert(PREDICTIONS).on_conflict_do_nothing(index_elements=["row_id"])
        elif dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            stmt = postgresql.insert(PREDICTIONS).on_conflict_do_nothing(index_elements=["row_id"])
        else:
            stmt = PREDICTIONS.insert()
        with engine.begin() as conn:
            conn.execute(stmt, rows)

    def _reachable(self) -> bool:
        try:
            with self._connect().connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    def _stored(self, rows: list[dict[str, Any]], isolating: bool = False) -> None:
        self.stats.rows_written += len(rows)
        self.stats.flushes += 1
        if self._write_failing and not isolating:
            log.info("prediction log writes recovered", url=self.display_url)
            self._write_failing = False
        if self._on_flushed is not None:
            try:
                self._on_flushed(rows)
            except Exception as exc:
                log.error("prediction log on_flushed hook failed", error=str(exc))

    def _failed(self, exc: BaseException, n: int) -> None:
        # The failing state and its reason first, the counter last: a reader that sees the failure
        # counted (the metrics, /health) must also see the status it implies.
        was_failing = self._write_failing
        self.stats.last_error = _short(exc)
        self.stats.last_error_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._write_failing = True
        self.stats.failures += 1
        if not was_failing or self.stats.failures % 50 == 0:  # one line per outage, not per retry
            log.error(
                "prediction log write failed",
                url=self.display_url,
                rows=n,
                failures=self.stats.failures,
                error=self.stats.last_error,
            )

    def _dead_letter(self, rows: list[dict[str, Any]], reason: str, n_rows: int) -> None:
        """Set rows aside with the reason, durably, before the spool forgets them."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        lines = "".join(
            json.dumps({"at": at, "reason": reason, "row": r}, ensure_ascii=True, default=str) + "\n"
            for r in rows
        )
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letter_path.open("a", encoding="ascii") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
        self.stats.dead_letter_rows += n_rows
        log.error(
            "prediction log: rows dead-lettered",
            rows=n_rows,
            reason=reason,
            file=str(self.dead_letter_path),
        )

    # ------------------------------------------------------------------ views
    @property
    def backlog_rows(self) -> int:
        """Rows accepted (spooled, or found in a dead process's spool) and not yet stored or set aside."""
        with self._progress:
            return max(0, self.spool.appended_rows + self.stats.leftover_rows - self._rows_done)

    def status(self) -> dict[str, Any]:
        """``ok`` | ``degraded`` | ``failed`` with the reason, and the figures behind it."""
        backlog = self.backlog_rows
        with self._progress:
            lag = time.monotonic() - self._last_progress if backlog else 0.0
        st = self.stats
        if self.spool.error is not None:
            status, reason = "failed", self.spool.error
        elif self._write_failing:
            status = "degraded"
            reason = (
                f"prediction-log writes are failing ({st.failures} failed attempts, "
                f"{backlog} rows spooled): {st.last_error}"
            )
        elif backlog >= self._degraded_rows:
            status, reason = (
                "degraded",
                f"prediction-log backlog of {backlog} rows (limit {self._degraded_rows})",
            )
        elif lag >= self._degraded_lag:
            status, reason = (
                "degraded",
                f"prediction-log backlog of {backlog} rows not draining for {lag:.0f}s",
            )
        else:
            status, reason = "ok", None
        return {
            "status": status,
            "reason": reason,
            "rows_written": st.rows_written,
            "backlog_rows": backlog,
            "write_failures": st.failures,
            "dead_letter_rows": st.dead_letter_rows,
            "rejected_requests": st.rejected_requests,
            "last_error": st.last_error,
            "last_error_at": st.last_error_at,
            "spool": str(self.spool.dir),
            "spool_sync": self.spool.sync,
            "dead_letter": str(self.dead_letter_path),
        }

    # ------------------------------------------------------------------ control
    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is stored or set aside (tests, admin, shutdown)."""
        start = time.monotonic()
        deadline = start + timeout
        failures = self.stats.failures
        self._wake.set()
        with self._progress:
            target = self._submitted
            while self._done_own < target:
                remaining = deadline - time.monotonic()
                retried_and_failed = self._write_failing and self.stats.failures > failures
                if remaining <= 0 or (retried_and_failed and time.monotonic() - start > 2.0):
                    return False  # timed out, or the database still refuses: the spool holds the rows
                self._progress.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking requests, store what the database takes within ``timeout``; whatever it does
        not take stays in the spool for the next process (nothing acknowledged is dropped)."""
        self.spool.close_appends()
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        drained = self._drained_at_close and not self._thread.is_alive()
        self.stats.pending = self.backlog_rows
        self.spool.close(drained=drained)
        if not drained:
            log.warning(
                "prediction log closed with rows still spooled; the next start stores them",
                rows=self.stats.pending,
                spool=str(self.spool.dir),
            )


def _default_spool(url: str) -> Path:
    db = sa.make_url(url).database if url.startswith("sqlite") else None
    if db and db != ":memory:":
        return Path(db).with_name(Path(db).name + ".spool")
    import tempfile

    return Path(tempfile.mkdtemp(prefix="predlog-spool-"))
