"""Batch-id shapes, without pandas: the one regex per frequency and the check before any path use.

Kept apart from :mod:`pipelines.core.periods` (which needs pandas for intervals) so that DAG
files can take ``PARAM_PATTERN`` for their params at parse time without loading pandas, and so
the CLI can refuse a malformed id before importing anything heavy.
"""

from __future__ import annotations

import re

from pipelines.core.errors import InvalidInputError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_SHAPES = {"month": _MONTH, "week": _WEEK, "day": _DAY}
SHAPE_HINT = {"month": "YYYY-MM", "week": "YYYY-Www", "day": "YYYY-MM-DD"}
#: JSON-schema pattern for an orchestrator param that takes a batch id of any frequency (or empty).
PARAM_PATTERN = r"^$|^\d{4}-(\d{2}|W\d{2}|\d{2}-\d{2})$"


def check_batch_id(batch_id: str, frequency: str) -> str:
    """The id stripped, if it has the contract frequency's shape; else :class:`InvalidInputError`.

    Batch ids become folder and file names (landing, quarantine, reports), so every id that comes
    from a person or a file (CLI, DAG params, replayed files) passes here first: only the shapes
    above can reach a path, never ``../`` or an absolute path.
    """
    bid = str(batch_id).strip()
    shape = _SHAPES.get(frequency)
    if shape is None:
        raise InvalidInputError(f"unknown batch frequency {frequency!r} (month, week or day)")
    if not shape.match(bid):
        raise InvalidInputError(
            f"batch id {batch_id!r} is not a {frequency} batch id ({SHAPE_HINT[frequency]})"
        )
    return bid
