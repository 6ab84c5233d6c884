"""Batch-id shapes, without pandas: the one check before a batch id or a user's path is used.

Kept apart from :mod:`pipelines.core.periods` (which needs pandas for intervals) so that DAG
files can take ``PARAM_PATTERN`` for their params at parse time without loading pandas, and so
the CLI can refuse a malformed id before importing anything heavy.

Every entry that takes a batch id (the CLIs, the DAG steps, landing, the validated store, the
gate's evidence folders) validates it here, with the contract's ``batch_frequency``; every path
built from such an id is then checked to stay under the runtime root (:func:`check_under`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from pipelines.core.errors import InvalidInputError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_SHAPES = {"month": _MONTH, "week": _WEEK, "day": _DAY}
SHAPE_HINT = {"month": "YYYY-MM", "week": "YYYY-Www", "day": "YYYY-MM-DD"}
#: JSON-schema pattern for an orchestrator param that takes a batch id of any frequency (or empty).
PARAM_PATTERN = r"^$|^\d{4}-(\d{2}|W\d{2}|\d{2}-\d{2})$"
#: Longest id echoed back in an error message (an attacker's megabyte id is not repeated in logs).
_ECHO = 40


def _echo(value: object) -> str:
    text = repr(str(value))
    return text if len(text) <= _ECHO else text[: _ECHO - 4] + "...'"


def _start(m: re.Match[str], frequency: str) -> date:
    """First day of a well-shaped id's period; ``ValueError`` when no such period exists."""
    if frequency == "month":
        return date(int(m[1]), int(m[2]), 1)
    if frequency == "week":
        return date.fromisocalendar(int(m[1]), int(m[2]), 1)
    return date(int(m[1]), int(m[2]), int(m[3]))


def _in_calendar(m: re.Match[str], frequency: str) -> bool:
    """Whether a well-shaped id names a real period (month 13, week 54, Feb 30 do not exist)."""
    try:
        _start(m, frequency)
    except ValueError:
        return False
    return True


def check_batch_id(batch_id: str, frequency: str) -> str:
    """The id stripped, if it names a real period of the contract's frequency; else an error.

    Batch ids become folder and file names (landing, quarantine, reports), so every id that comes
    from a person or a file (CLI, DAG params, replayed files) passes here first: only the shapes
    above can reach a path, never ``../`` or an absolute path, and only periods that exist
    (``2013-13`` is refused here, not by a stack trace three steps later).
    """
    bid = str(batch_id).strip()
    shape = _SHAPES.get(frequency)
    if shape is None:
        raise InvalidInputError(f"unknown batch frequency {frequency!r} (month, week or day)")
    m = shape.match(bid)
    if m is None:
        raise InvalidInputError(
            f"batch id {_echo(batch_id)} is not a {frequency} batch id ({SHAPE_HINT[frequency]})"
        )
    if not _in_calendar(m, frequency):
        raise InvalidInputError(f"batch id {_echo(batch_id)} is not a real {frequency} (no such period)")
    return bid


def period_start(batch_id: str, frequency: str) -> date:
    """First day of a batch period (the id checked first): where a period DAG's schedule starts.

    Pandas-free like the rest of this module, so DAG files can call it at parse time.
    """
    bid = check_batch_id(batch_id, frequency)
    m = _SHAPES[frequency].match(bid)
    assert m is not None  # check_batch_id matched the same shape
    return _start(m, frequency)


def check_batch_ids(batch_ids: Iterable[str], frequency: str) -> list[str]:
    """Each id of a list (a ``--reference`` or ``--window`` list) through :func:`check_batch_id`."""
    return [check_batch_id(b, frequency) for b in batch_ids]


def check_under(root: Path, path: Path) -> Path:
    """``path`` resolved, if it stays under ``root`` (the runtime root); else :class:`InvalidInputError`.

    The second line of defence behind :func:`check_batch_id`: whatever a folder name was built
    from, a path that resolves outside the runtime root (``..``, an absolute part, a symlink
    pointing out) is refused before anything is read or written there.
    """
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidInputError(f"path {_echo(path)} leaves the runtime root {base}; refused")
    return resolved
