"""The prediction log's schema and connection: the tables, the time format, one engine per URL.

All times are stored as ISO-8601 UTC strings so SQLite and PostgreSQL compare them the same way
(lexicographically); :func:`to_utc_iso` is the one conversion every writer and reader uses.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    # "<spool record id>:<row index>", unique: re-draining a spool after a crash inserts nothing
    # twice (NULL on rows logged before the spool existed; NULLs never collide).
    sa.Column("row_id", sa.Text),
    sa.Index("ix_predictions_ts", "ts"),
    sa.Index("ix_predictions_entity", "entity_id"),
    sa.Index("ix_predictions_version_ts", "model_version", "ts"),
    sa.Index("ix_predictions_event_time", "event_time"),
    sa.Index("ux_predictions_row_id", "row_id", unique=True),
)
LABELS = sa.Table(
    "labels",
    METADATA,
    sa.Column("entity_id", sa.Text, primary_key=True),
    sa.Column("label", sa.Float),
    sa.Column("event_time", sa.Text),
    sa.Column("available_at", sa.Text),
)
# Who changed which label, when, from what to what: one row per label written through an
# authenticated write path (the gateway's POST /labels). ``actor`` is the token's identity (a
# fingerprint, never the token); ``previous_label`` is NULL for a first write.
LABEL_AUDIT = sa.Table(
    "label_audit",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text),
    sa.Column("entity_id", sa.Text, nullable=False),
    sa.Column("label", sa.Float),
    sa.Column("previous_label", sa.Float),
    sa.Column("event_time", sa.Text),
    sa.Column("available_at", sa.Text),
    sa.Index("ix_label_audit_entity", "entity_id"),
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
        if url.startswith(("postgresql", "postgres")):
            # A log database host that does not answer (not even with a refusal) must not hang
            # the gateway's writer thread or a monitoring read for the OS's TCP timeout.
            kwargs["connect_args"] = {"connect_timeout": 10}
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
    _add_row_id(engine)
    return engine


def _add_row_id(engine: sa.Engine) -> None:
    """Bring a log created before ``row_id`` existed up to the schema (column + unique index)."""
    columns = {c["name"] for c in sa.inspect(engine).get_columns("predictions")}
    index = next(i for i in PREDICTIONS.indexes if i.name == "ux_predictions_row_id")
    for attempt in range(2):  # a concurrent process may migrate between our check and our change
        try:
            with engine.begin() as conn:
                if "row_id" not in columns:
                    conn.execute(sa.text("ALTER TABLE predictions ADD COLUMN row_id TEXT"))
                    columns.add("row_id")
                index.create(conn, checkfirst=True)
            return
        except sa.exc.SQLAlchemyError:
            if attempt:
                raise
            columns = {c["name"] for c in sa.inspect(engine).get_columns("predictions")}
