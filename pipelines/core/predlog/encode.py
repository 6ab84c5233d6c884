"""The prediction log's door: every value a row carries is made storable, or the request is refused.

A row that reaches the spool (:mod:`.spool`) must be insertable by every backend the log runs on
(SQLite, PostgreSQL): one unstorable value used to fail the batch insert, and the retried batch
took every later row down with it. So each field is decided here, once, before the answer:

=============  =====================================================================================
field          decision
=============  =====================================================================================
request_id     The caller's ``X-Request-Id``: 1-128 printable ASCII characters, else **4xx**
               (:func:`request_id_text`). It is the key a client uses to find its request again, so
               it is refused rather than rewritten.
entity_id      The dataset's id column. Strings are stored with lone surrogates escaped
               (``backslashreplace``: ``"\\udcff"`` becomes the 6 characters ``\\udcff``) and NUL
               as ``\\x00`` (PostgreSQL text cannot hold it); integers and finite floats as their
               text; null, NaN and +-Infinity as NULL (a missing id). Longer than
               :data:`MAX_ENTITY_ID_CHARS` after escaping, or a list/object: **4xx** (the column is
               indexed; a PostgreSQL btree refuses entries over ~2.7 kB).
event_time     The dataset's event-time column: null/empty/NaN -> NULL; an ISO-8601 string or a
               datetime -> ISO-8601 UTC; anything else (an unparseable string, a number, a list)
               -> **4xx**. Monitoring windows are cut on this column, so a value stored as sent
               would silently drop the row from every window.
features       JSON text with ``ensure_ascii`` (surrogates and NUL become ``\\uXXXX`` escapes, so
               the text is plain ASCII); NaN and +-Infinity become JSON ``null`` (missing, which is
               how the model read them); a value JSON cannot encode is written with ``str()``.
prediction     A finite float; a non-finite model output is stored as NULL with
               ``error = "non-finite prediction: <value>"`` (the flag: such a row counts as a failed
               prediction for the canary analysis and is left out of labelled reads).
error, ids     Server-made text (error messages can quote the caller's input): escaped as
               entity_id, errors truncated to :data:`MAX_ERROR_CHARS`.
=============  =====================================================================================

Every refusal is a :class:`UnstorableError` naming the field, the row and the limit; the gateway
answers it with a 400. Over HTTP most of these never get this far: the gateway's input checks
(:mod:`pipelines.serving.inputs`) already refuse lone surrogates, over-long ids and non-ISO event
times with a 400 before the model runs; the rules here are the log's own guarantee for every
writer (error texts quoting the caller, direct writers, replays of a spool).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pipelines.core.predlog.schema import to_utc_iso

MAX_ENTITY_ID_CHARS = 256
MAX_REQUEST_ID_CHARS = 128
MAX_EVENT_TIME_CHARS = 64
MAX_ERROR_CHARS = 2000


class UnstorableError(ValueError):
    """A value the log cannot store as it is; ``message`` names the field and the row."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def safe_text(value: str) -> str:
    """``value`` encodable as UTF-8 and storable in PostgreSQL text: lone surrogates and NUL escaped.

    Idempotent on clean text (the common case costs one ``encode`` attempt).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\x00", "\\x00") if "\x00" in value else value


def request_id_text(value: str) -> str:
    """The caller's request id, or :class:`UnstorableError` (it is a key: refused, never rewritten)."""
    if not 1 <= len(value) <= MAX_REQUEST_ID_CHARS or not all("\x21" <= ch <= "\x7e" for ch in value):
        shown = safe_text(value[:40])
        raise UnstorableError(
            f"X-Request-Id must be 1-{MAX_REQUEST_ID_CHARS} printable ASCII characters without spaces "
            f"(got {len(value)} characters starting {shown!r})"
        )
    return value


def entity_id_text(value: Any, row: int = 0) -> str | None:
    """The stored text of one entity id (see the module table)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = safe_text(value)
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        if value.bit_length() > 3 * MAX_ENTITY_ID_CHARS:  # str() of a huge int costs, refuse first
            raise UnstorableError(f"entity id of row {row}: an integer of over {MAX_ENTITY_ID_CHARS} digits")
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    elif hasattr(value, "item") and not isinstance(value, (list, dict)):  # numpy scalar
        return entity_id_text(value.item(), row)
    else:
        raise UnstorableError(
            f"entity id of row {row} must be a string or a number, got {type(value).__name__}"
        )
    if len(text) > MAX_ENTITY_ID_CHARS:
        raise UnstorableError(
            f"entity id of row {row} has {len(text)} characters; the prediction log keeps at most "
            f"{MAX_ENTITY_ID_CHARS}"
        )
    return text


def event_time_text(value: Any, row: int = 0) -> str | None:
    """The stored ISO-8601 UTC text of one event time (see the module table)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime) or (hasattr(value, "isoformat") and hasattr(value, "tzinfo")):
        return to_utc_iso(value)
    if not isinstance(value, str):
        raise UnstorableError(
            f"event time of row {row} must be an ISO-8601 string, got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_EVENT_TIME_CHARS:
        raise UnstorableError(f"event time of row {row} has {len(text)} characters: not a timestamp")
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise UnstorableError(
            f"event time of row {row} is not an ISO-8601 timestamp: {safe_text(text)!r}"
        ) from None
    return to_utc_iso(parsed)


def entity_ids_text(values: Sequence[Any] | None) -> list[str | None] | None:
    return None if values is None else [entity_id_text(v, i) for i, v in enumerate(values)]


def event_times_text(values: Sequence[Any] | None) -> list[str | None] | None:
    """Event times of a request; a replayed batch repeats the same hours, so each is parsed once."""
    if values is None:
        return None
    seen: dict[Any, str | None] = {}
    out: list[str | None] = []
    for i, v in enumerate(values):
        try:
            known = v in seen
        except TypeError:  # unhashable (a list): refused by event_time_text
            known = False
        if known:
            out.append(seen[v])
        else:
            text = event_time_text(v, i)
            with contextlib.suppress(TypeError):
                seen[v] = text
            out.append(text)
    return out


def error_text(value: str | None) -> str | None:
    return None if value is None else safe_text(value[:MAX_ERROR_CHARS])


def prediction_value(value: Any) -> tuple[float | None, str | None]:
    """(stored prediction, flag): a non-finite output is NULL with the error that says so."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None, f"non-numeric prediction: {safe_text(repr(value)[:80])}"
    if not math.isfinite(number):
        return None, f"non-finite prediction: {number}"
    return number, None


def features_json(columns: Sequence[str], values: Sequence[Any]) -> str:
    """One row's features as ASCII JSON (NaN/Infinity -> null; unencodable values as text)."""
    return json.dumps(
        {str(c): _finite(v) for c, v in zip(columns, values, strict=True)},
        ensure_ascii=True,
        allow_nan=False,
        default=str,
    )


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    return v
