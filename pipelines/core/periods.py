"""Batch periods: a batch id (2013-04, 2013-W05, 2013-04-07) as a span of business time.

One batch id names the same span everywhere: the quality gate lands and publishes it, training
trains on it, monitoring watches it as a window. So the id shapes (one regex per frequency), the
mapping rows → ids, the mapping of an orchestrator's data interval → id and the check that an id
is safe to use in a path all live here, once.

A period's *ordinal* counts periods, which is what the retrain policy's cooldown and period
limits are expressed in; it is computed from the id alone, so gaps (an unmonitored month) still
count as time passing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.errors import InvalidInputError
from pipelines.core.period_ids import _DAY, _MONTH, _WEEK, PARAM_PATTERN, SHAPE_HINT, check_batch_id

__all__ = [
    "PARAM_PATTERN",
    "SHAPE_HINT",
    "Window",
    "as_of_iso",
    "batch_ids",
    "check_batch_id",
    "local_time",
    "parse_window",
    "period_at",
    "period_for_interval",
]


@dataclass(frozen=True)
class Window:
    """A monitoring window with its bounds as UTC ISO strings (half-open ``[start, end)``)."""

    id: str
    frequency: str
    start: str
    end: str
    ordinal: int

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    @property
    def end_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.end)


def _utc_iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").isoformat()


def parse_window(window_id: str, frequency: str, timezone: str = "UTC") -> Window:
    """Bounds of a batch id in the contract's frequency and zone.

    Raises:
        InvalidInputError: the id does not have the shape of the frequency (e.g. a week id for
            months), or names no real period (month 13, ISO week 54, February 30).
    """
    try:
        return _parse_window(window_id, frequency, timezone)
    except pd.errors.OutOfBoundsDatetime as exc:  # e.g. 9999-W52: a real week pandas cannot hold
        raise InvalidInputError(f"window {window_id!r} is outside the dates pandas can hold ({exc})") from exc


def _parse_window(window_id: str, frequency: str, timezone: str) -> Window:
    wid = window_id.strip()
    if frequency == "month" and (m := _MONTH.match(wid)):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise InvalidInputError(f"window {window_id!r}: month {month} out of range")
        start = pd.Timestamp(year=year, month=month, day=1).tz_localize(timezone)
        end = (start.tz_localize(None) + pd.offsets.MonthBegin(1)).tz_localize(timezone)
        ordinal = year * 12 + month - 1
    elif frequency == "week" and (m := _WEEK.match(wid)):
        year, week = int(m[1]), int(m[2])
        weeks = date(year, 12, 28).isocalendar().week  # 28 December is always in the last ISO week
        if not 1 <= week <= weeks:
            raise InvalidInputError(
                f"window {window_id!r}: week {week} out of range (ISO year {year} has weeks 01..{weeks})"
            )
        monday = date.fromisocalendar(year, week, 1)
        start = pd.Timestamp(monday).tz_localize(timezone)
        end = (start.tz_localize(None) + pd.Timedelta(days=7)).tz_localize(timezone)
        ordinal = monday.toordinal() // 7
    elif frequency == "day" and (m := _DAY.match(wid)):
        try:
            day = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as exc:  # 2013-02-30, 2013-13-01: the shape is right, the day does not exist
            raise InvalidInputError(f"window {window_id!r} is not a real day ({exc})") from exc
        start = pd.Timestamp(day).tz_localize(timezone)
        end = (start.tz_localize(None) + pd.Timedelta(days=1)).tz_localize(timezone)
        ordinal = day.toordinal()
    else:
        raise InvalidInputError(
            f"window {window_id!r} is not a {frequency} batch id ({SHAPE_HINT.get(frequency, '?')})"
        )
    return Window(wid, frequency, _utc_iso(start), _utc_iso(end), ordinal)


def as_of_iso(value: str | datetime | pd.Timestamp | None, window: Window) -> str:
    """The instant labels must be known by; default: the moment the window closes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return window.end
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return _utc_iso(ts)


def local_time(event_time: pd.Series, timezone: str, naive: str = "utc") -> pd.Series:
    """Event times as tz-aware timestamps in the contract's zone.

    ``naive`` is the contract's ``dataset.naive_timestamps``: a value written without a zone is an
    instant in UTC (``"utc"``) or a wall-clock time in ``timezone`` (``"local"``: the ambiguous
    fall-back hour is read as standard time, a spring-forward gap is shifted forward). Values with
    a zone or offset keep it either way; values that do not parse become NaT (no batch).
    """
    if naive == "utc":
        return _parse(event_time, utc=True).dt.tz_convert(timezone)
    if naive != "local":
        raise InvalidInputError(f"unknown naive_timestamps convention {naive!r} (utc or local)")
    text = event_time.astype("string")
    aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})\s*$", regex=True, na=False)
    out = _parse(text.where(aware), utc=True).dt.tz_convert(timezone)
    if (~aware).any():
        wall = _parse(text.where(~aware), utc=False)
        local = wall.dt.tz_localize(
            timezone, ambiguous=np.zeros(len(wall), dtype=bool), nonexistent="shift_forward"
        )
        out = out.where(aware, local)
    return out


def _parse(values: pd.Series, *, utc: bool) -> pd.Series:
    """Timestamps as pandas infers them; mixed or broken values fall back to per-value parsing (NaT)."""
    try:
        return pd.to_datetime(values, utc=utc)
    except (ValueError, TypeError):
        return pd.to_datetime(values, utc=utc, format="mixed", errors="coerce")


def batch_ids(event_time: pd.Series, frequency: str, timezone: str = "UTC", naive: str = "utc") -> pd.Series:
    """Stable batch id of each row: 2013-01 (month), 2013-W05 (ISO week) or 2013-01-05 (day).

    A row whose event time does not parse gets a missing id: it belongs to no batch.
    """
    ts = local_time(event_time, timezone, naive)
    if frequency == "month":
        return ts.dt.strftime("%Y-%m")
    if frequency == "week":
        iso = ts.dt.isocalendar()
        ids = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
        return ids.where(ts.notna())
    if frequency == "day":
        return ts.dt.strftime("%Y-%m-%d")
    raise InvalidInputError(f"unknown batch frequency {frequency!r}")


def period_at(instant: pd.Timestamp | datetime | str, frequency: str, timezone: str = "UTC") -> str:
    """The batch id of the period that contains ``instant``."""
    return str(batch_ids(pd.Series([pd.Timestamp(instant).isoformat()]), frequency, timezone).iloc[0])


def period_for_interval(
    interval_start: Any, interval_end: Any, frequency: str, timezone: str = "UTC", *, closed_end: bool = False
) -> str:
    """The batch period an orchestrator's data interval stands for.

    A real interval maps through its midpoint, cut in the contract's zone, so a monthly interval
    [Jan 1 00:00 UTC, Feb 1 00:00 UTC) is ``2013-01`` whatever the zone. An empty interval
    (a manual or trigger-style run, start == end) maps to the period holding ``end``, or, with
    ``closed_end``, to the period that closed just before it (what monitoring looks back on).

    Raises:
        InvalidInputError: there is no interval to derive a period from.
    """
    if interval_start is None or interval_end is None:
        raise InvalidInputError("no batch id given and the run has no data interval to derive one from")
    start, end = pd.Timestamp(interval_start), pd.Timestamp(interval_end)
    if end > start:
        instant = start + (end - start) / 2
    else:
        instant = end - pd.Timedelta(microseconds=1) if closed_end else end
    return period_at(instant, frequency, timezone)
