"""The prediction log: every served prediction, and the labels that arrive later.

The gateway writes here, monitoring and optimization read here, so this module owns
the schema (the team's contract) and the read helpers; nothing else should issue SQL
against these tables.

* ``predictions``: request_id, entity_id (the dataset's id column, when the caller
  sent it), event_time (the dataset's event-time column: the *business* time a
  replay simulates), ts (wall clock, UTC ISO), variant (champion|canary),
  model_version, features (JSON), prediction, latency_ms, error (NULL when served).
* ``labels``: entity_id (primary key), label, event_time, available_at (when the
  label became known, in business time).

Writes leave the request path: the gateway hands each answered request to a
:class:`PredictionLogWriter`, whose thread inserts in batches every few hundred
milliseconds (a per-request INSERT would cost more than the model). Rows are never
dropped silently: a failed flush is retried, :meth:`PredictionLogWriter.close`
drains the queue on a clean shutdown, and anything still unwritten is counted and
logged. All times are stored as ISO-8601 UTC strings so SQLite and PostgreSQL
compare them the same way (lexicographically).
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from pipelines.config import Settings
from pipelines.core.observability import get_logger

log = get_logger(__name__)

METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions",
    METADATA,
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("entity_id", sa.Text),
    sa.Column("event_time", sa.Text),
    sa.Column("ts", sa.Text, nullable=False),
    sa.Column("variant", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text),
    sa.Column("features", sa.Text),
    sa.Column("prediction", sa.Float),
    sa.Column("latency_ms", sa.Float),
    sa.Column("error", sa.Text),
    sa.Index("ix_predictions_ts", "ts"),
    sa.Index("ix_predictions_entity", "entity_id"),
    sa.Index("ix_predictions_version_ts", "model_version", "ts"),
    sa.Index("ix_predictions_event_time", "event_time"),
)
LABELS = sa.Table(
    "labels",
    METADATA,
    sa.Column("entity_id", sa.Text, primary_key=True),
    sa.Column("label", sa.Float),
    sa.Column("event_time", sa.Text),
    sa.Column("available_at", sa.Text),
)
PREDICTION_COLUMNS = [c.name for c in PREDICTIONS.columns]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def to_utc_iso(value: Any) -> str | None:
    """Normalise a timestamp (ISO string, datetime, pandas Timestamp) to ISO-8601 UTC.

    Naive values are taken as UTC. Unparseable strings are kept as sent (the log
    must not refuse a row the model answered), so readers should not assume order
    for rows whose caller sent garbage.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
        except ValueError:
            return text
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def log_url(settings: Settings) -> str:
    """The configured SQLAlchemy URL, or the embedded default under ``paths.serving``."""
    return settings.serving.prediction_log_url or (
        f"sqlite:///{settings.paths.serving / 'prediction_log.db'}"
    )


@lru_cache(maxsize=8)
def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process, with the tables created (idempotent)."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        db = sa.make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers (monitoring) never block the gateway's writer and vice versa.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    try:
        METADATA.create_all(engine, checkfirst=True)
    except sa.exc.SQLAlchemyError:
        # Another process (gateway, a task) created the tables between the check and the create.
        METADATA.create_all(engine, checkfirst=True)
    return engine


# --------------------------------------------------------------------------- writing
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


# --------------------------------------------------------------------------- reading
def _frame(conn_result: sa.CursorResult[Any]) -> pd.DataFrame:
    return pd.DataFrame(conn_result.fetchall(), columns=list(conn_result.keys()))


def _filtered(
    q: sa.Select[Any],
    ts_from: str | None,
    ts_to: str | None,
    event_from: str | None,
    event_to: str | None,
    variant: str | None,
    model_version: str | int | None,
) -> sa.Select[Any]:
    """The prediction-row filters both readers share: half-open time windows, variant, version."""
    p = PREDICTIONS
    for col, lo, hi in ((p.c.ts, ts_from, ts_to), (p.c.event_time, event_from, event_to)):
        if lo is not None:
            q = q.where(col >= to_utc_iso(lo))
        if hi is not None:
            q = q.where(col < to_utc_iso(hi))
    if variant is not None:
        q = q.where(p.c.variant == variant)
    if model_version is not None:
        q = q.where(p.c.model_version == str(model_version))
    return q


def read_predictions(
    settings: Settings,
    *,
    ts_from: str | None = None,
    ts_to: str | None = None,
    event_from: str | None = None,
    event_to: str | None = None,
    variant: str | None = None,
    model_version: str | int | None = None,
    include_errors: bool = True,
    expand_features: bool = False,
    latest: int | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Logged predictions, oldest first; windows are half-open ``[from, to)``.

    ``ts_*`` filter on wall-clock serving time, ``event_*`` on the business time
    the caller sent (a replayed month); both take ISO strings (any offset, naive =
    UTC). ``latest`` keeps only the most recent N rows. ``expand_features`` adds
    the feature columns parsed from the JSON.
    """
    t = PREDICTIONS
    q = _filtered(sa.select(t), ts_from, ts_to, event_from, event_to, variant, model_version)
    if not include_errors:
        q = q.where(t.c.error.is_(None))
    q = q.order_by(t.c.ts.desc()).limit(latest) if latest is not None else q.order_by(t.c.ts)
    with engine_for(url or log_url(settings)).connect() as conn:
        df = _frame(conn.execute(q))
    if latest is not None:
        df = df.iloc[::-1].reset_index(drop=True)
    if df.empty:
        df = pd.DataFrame(columns=PREDICTION_COLUMNS)
    df["prediction"] = pd.to_numeric(df["prediction"], errors="coerce")
    df["latency_ms"] = pd.to_numeric(df["latency_ms"], errors="coerce")
    return features_frame(df) if expand_features else df


def features_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """The prediction rows with their logged features as columns (JSON expanded)."""
    if predictions.empty:
        return predictions.copy()
    feats = pd.DataFrame.from_records(
        [json.loads(f) if f else {} for f in predictions["features"]], index=predictions.index
    )
    clash = [c for c in feats.columns if c in predictions.columns]
    return predictions.join(feats.rename(columns={c: f"feature_{c}" for c in clash}))


def record_labels(
    settings: Settings,
    labels: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    url: str | None = None,
) -> int:
    """Upsert labels keyed by entity id (re-sending a label replaces it: idempotent).

    Each record needs ``entity_id`` and ``label``; ``event_time`` and ``available_at``
    are optional ISO timestamps. Returns the number of records written.
    """
    records: list[Mapping[str, Any]] = (
        [{str(k): v for k, v in r.items()} for r in labels.to_dict("records")]
        if isinstance(labels, pd.DataFrame)
        else list(labels)
    )
    rows = []
    for i, r in enumerate(records):
        if r.get("entity_id") in (None, "") or r.get("label") is None:
            raise ValueError(f"label record {i} needs entity_id and label, got {dict(r)}")
        label = float(r["label"])
        if not math.isfinite(label):
            raise ValueError(f"label record {i} (entity {r['entity_id']}) has a non-finite label")
        rows.append(
            {
                "entity_id": str(r["entity_id"]),
                "label": label,
                "event_time": to_utc_iso(r.get("event_time")),
                "available_at": to_utc_iso(r.get("available_at")),
            }
        )
    if not rows:
        return 0
    engine = engine_for(url or log_url(settings))
    # Last write wins within one call, like it does across calls.
    dedup = list({row["entity_id"]: row for row in rows}.values())
    with engine.begin() as conn:
        dialect = engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            ins: Any = sqlite.insert(LABELS) if dialect == "sqlite" else postgresql.insert(LABELS)
            stmt = ins.on_conflict_do_update(
                index_elements=[LABELS.c.entity_id],
                set_={c: ins.excluded[c] for c in ("label", "event_time", "available_at")},
            )
            conn.execute(stmt, dedup)
        else:  # portable fallback
            conn.execute(LABELS.delete().where(LABELS.c.entity_id.in_([r["entity_id"] for r in dedup])))
            conn.execute(LABELS.insert(), dedup)
    return len(dedup)


def read_labels(
    settings: Settings, *, available_before: str | None = None, url: str | None = None
) -> pd.DataFrame:
    """Labels known so far (``available_at < available_before`` when given)."""
    q = sa.select(LABELS)
    if available_before is not None:
        q = q.where(LABELS.c.available_at < to_utc_iso(available_before))
    with engine_for(url or log_url(settings)).connect() as conn:
        df = _frame(conn.execute(q))
    if df.empty:
        df = pd.DataFrame(columns=[c.name for c in LABELS.columns])
    df["label"] = pd.to_numeric(df["label"], errors="coerce")
    return df


def read_labelled(
    settings: Settings,
    *,
    ts_from: str | None = None,
    ts_to: str | None = None,
    event_from: str | None = None,
    event_to: str | None = None,
    variant: str | None = None,
    model_version: str | int | None = None,
    available_before: str | None = None,
    expand_features: bool = False,
    latest: int | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Served predictions joined with their labels on the entity id (errors excluded).

    ``available_before`` keeps only labels known by then (business time), so an
    analysis "as of" a date cannot peek at labels that had not arrived yet.
    """
    p, lab = PREDICTIONS, LABELS
    q = (
        sa.select(
            p,
            lab.c.label,
            lab.c.available_at,
            lab.c.event_time.label("label_event_time"),
        )
        .join(lab, p.c.entity_id == lab.c.entity_id)
        .where(p.c.error.is_(None), p.c.prediction.is_not(None))
    )
    q = _filtered(q, ts_from, ts_to, event_from, event_to, variant, model_version)
    if available_before is not None:
        q = q.where(lab.c.available_at < to_utc_iso(available_before))
    q = q.order_by(p.c.ts.desc()).limit(latest) if latest is not None else q.order_by(p.c.ts)
    with engine_for(url or log_url(settings)).connect() as conn:
        df = _frame(conn.execute(q))
    if latest is not None:
        df = df.iloc[::-1].reset_index(drop=True)
    if df.empty:
        df = pd.DataFrame(columns=[*PREDICTION_COLUMNS, "label", "available_at", "label_event_time"])
    for col in ("prediction", "latency_ms", "label"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return features_frame(df) if expand_features else df
