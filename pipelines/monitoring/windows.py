"""Monitoring windows: a batch id (2013-04, 2013-W05, 2013-04-07) as a span of business time.

A window is the same unit the quality gate publishes and training trains on, so a
monitored window can be handed straight to training as a holdout or window batch.
Its *ordinal* counts windows, which is what the policy's cooldown and period limits
are expressed in; it is computed from the id alone, so gaps (an unmonitored month)
still count as time passing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


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
        ValueError: the id does not have the shape of the frequency (e.g. a week id for months).
    """
    wid = window_id.strip()
    if frequency == "month" and (m := _MONTH.match(wid)):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"window {window_id!r}: month {month} out of range")
        start = pd.Timestamp(year=year, month=month, day=1).tz_localize(timezone)
        end = (start.tz_localize(None) + pd.offsets.MonthBegin(1)).tz_localize(timezone)
        ordinal = year * 12 + month - 1
    elif frequency == "week" and (m := _WEEK.match(wid)):
        monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        start = pd.Timestamp(monday).tz_localize(timezone)
        end = (start.tz_localize(None) + pd.Timedelta(days=7)).tz_localize(timezone)
        ordinal = monday.toordinal() // 7
    elif frequency == "day" and (m := _DAY.match(wid)):
        day = date(int(m[1]), int(m[2]), int(m[3]))
        start = pd.Timestamp(day).tz_localize(timezone)
        end = (start.tz_localize(None) + pd.Timedelta(days=1)).tz_localize(timezone)
        ordinal = day.toordinal()
    else:
        shapes = {"month": "YYYY-MM", "week": "YYYY-Www", "day": "YYYY-MM-DD"}
        raise ValueError(f"window {window_id!r} is not a {frequency} batch id ({shapes.get(frequency, '?')})")
    return Window(wid, frequency, _utc_iso(start), _utc_iso(end), ordinal)


def as_of_iso(value: str | datetime | pd.Timestamp | None, window: Window) -> str:
    """The instant labels must be known by; default: the moment the window closes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return window.end
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return _utc_iso(ts)
