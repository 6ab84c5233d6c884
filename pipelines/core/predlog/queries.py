"""Reading the prediction log (monitoring, canary analysis, optimization) and recording labels.

Every query any component needs is a function here, so nothing else issues SQL against these
tables and a schema change is made in one package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa

from pipelines.config import Settings
from pipelines.core.observability import get_logger
from pipelines.core.predlog.schema import (
    LABEL_AUDIT,
    LABELS,
    PREDICTION_COLUMNS,
    PREDICTIONS,
    engine_for,
    log_url,
    to_utc_iso,
    utc_now_iso,
)

log = get_logger(__name__)


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


#: The columns of a labelled read; a logged feature named like one of them is expanded under
#: another name (:func:`feature_column`).
LABELLED_COLUMNS = (*PREDICTION_COLUMNS, "label", "available_at", "label_event_time")


def feature_column(feature: str, taken: Collection[str] = LABELLED_COLUMNS) -> str:
    """Where a logged feature lands in an expanded frame: its own name, or ``feature_<name>``
    when a log column (``taken``) already has that name. The one rename rule, both ways."""
    return f"feature_{feature}" if feature in taken else feature


def features_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """The prediction rows with their logged features as columns (JSON expanded)."""
    if predictions.empty:
        return predictions.copy()
    feats = pd.DataFrame.from_records(
        [json.loads(f) if f else {} for f in predictions["features"]], index=predictions.index
    )
    return predictions.join(
        feats.rename(columns={c: feature_column(c, predictions.columns) for c in feats.columns})
    )


def logged_features(
    expanded: pd.DataFrame, features: Iterable[str], taken: Collection[str] = LABELLED_COLUMNS
) -> pd.DataFrame:
    """The logged ``features`` of an expanded labelled frame, back under their own names."""
    return pd.DataFrame({c: expanded[feature_column(c, taken)] for c in features})


def record_labels(
    settings: Settings,
    labels: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    url: str | None = None,
    audit: Mapping[str, str | None] | None = None,
) -> int:
    """Upsert labels keyed by entity id (re-sending a label replaces it: idempotent).

    Each record needs ``entity_id`` and ``label``; ``event_time`` and ``available_at``
    are optional ISO timestamps. Returns the number of records written. With ``audit``
    (``actor`` and ``request_id``), each written label also gets a ``label_audit`` row with
    the value it replaced, in the same transaction: no label changes without its record.
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
        if audit is not None:
            conn.execute(LABEL_AUDIT.insert(), _audit_rows(conn, dedup, audit))
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


def _audit_rows(
    conn: sa.Connection, rows: list[dict[str, Any]], audit: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The audit rows of ``rows`` (read before the upsert, so ``previous_label`` is what it replaced)."""
    previous: dict[str, float | None] = {}
    ids = [r["entity_id"] for r in rows]
    for k in range(0, len(ids), 500):  # bounded IN lists (SQLite's variable limit)
        q = sa.select(LABELS.c.entity_id, LABELS.c.label).where(LABELS.c.entity_id.in_(ids[k : k + 500]))
        previous.update({str(e): lab for e, lab in conn.execute(q)})
    ts = utc_now_iso()
    return [
        {
            "ts": ts,
            "actor": str(audit.get("actor") or "unknown"),
            "request_id": audit.get("request_id"),
            "entity_id": r["entity_id"],
            "label": r["label"],
            "previous_label": previous.get(r["entity_id"]),
            "event_time": r["event_time"],
            "available_at": r["available_at"],
        }
        for r in rows
    ]


def read_label_audit(
    settings: Settings, *, entity_id: str | None = None, url: str | None = None
) -> pd.DataFrame:
    """The label audit trail (oldest first), optionally for one entity."""
    q = sa.select(LABEL_AUDIT).order_by(LABEL_AUDIT.c.id)
    if entity_id is not None:
        q = q.where(LABEL_AUDIT.c.entity_id == entity_id)
    with engine_for(url or log_url(settings)).connect() as conn:
        df = _frame(conn.execute(q))
    return df if not df.empty else pd.DataFrame(columns=[c.name for c in LABEL_AUDIT.columns])


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
        df = pd.DataFrame(columns=list(LABELLED_COLUMNS))
    for col in ("prediction", "latency_ms", "label"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return features_frame(df) if expand_features else df


def count_predictions(settings: Settings, *, url: str | None = None) -> int:
    """How many prediction rows the log holds (served and failed requests alike)."""
    q = sa.select(sa.func.count()).select_from(PREDICTIONS)
    with engine_for(url or log_url(settings)).connect() as conn:
        return int(conn.execute(q).scalar_one())


def count_labels(settings: Settings, *, url: str | None = None) -> int:
    """How many labels the log holds."""
    q = sa.select(sa.func.count()).select_from(LABELS)
    with engine_for(url or log_url(settings)).connect() as conn:
        return int(conn.execute(q).scalar_one())
