"""Request parsing and input enforcement for MLflow's scoring protocol.

Accepted bodies (``application/json``), as ``mlflow models serve`` accepts them:

* ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``
* ``{"dataframe_records": [{col: value, ...}, ...]}``
* ``{"instances": [{...}, ...]}`` or ``{"instances": [[...], ...]}`` (signature order)
* ``{"inputs": {col: [values...]}}`` (columnar), or rows as for ``instances``

Every failure is a :class:`BadInputError` carrying the HTTP status and a message that
names the column (and row) and the problem; nothing in here may raise anything
else for any body, so a caller can never turn bad input into a 500. Checks work
per column on the whole batch (``set(map(type, values))``), which keeps a
100-row payload at tens of microseconds instead of a Python loop per value.

Cost is bounded before it is spent: :func:`read_limited` refuses a body over the byte limit
or holding more JSON containers (rows) than the row limit *while it is being read*, so a
megabyte of empty rows never reaches the JSON parser; numbers JSON can spell but a model
cannot take (``Infinity``, ``1e309``, a 400-digit integer) are parsed into an
:class:`Unrepresentable` marker instead of a float or a huge int, and refused with the column
and row that held them; strings holding lone surrogates (which no database can store) are
refused likewise.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError
from pipelines.serving.models import ColumnSpec

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NONE = type(None)
_ALLOWED: dict[str, set[type]] = {
    "float": {float, int},
    "int": {int},
    "str": {str},
    "bool": {bool},
    "datetime": {str},
}
_EXPECTED = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "a boolean",
    "datetime": "an ISO-8601 string",
}


class BadInputError(PipelineError):
    """A request the gateway refuses, with the status to answer and why (the same on every try)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass
class Table:
    """A parsed payload, column-major: ``values[j]`` holds column ``columns[j]``."""

    columns: list[str]
    values: list[list[Any]]
    n_rows: int
    fmt: str

    def column(self, name: str) -> list[Any] | None:
        try:
            return self.values[self.columns.index(name)]
        except ValueError:
            return None


@dataclass
class Validated:
    """Inputs ready for one model: typed column arrays in signature order (also what the log needs)."""

    columns: list[str]
    arrays: list[Any]
    n_rows: int

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(zip(self.columns, self.arrays, strict=True)), copy=False)


# --------------------------------------------------------------------------- reading
JSON_MEDIA = "application/json"
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
# Largest integer literal kept as an int (int64 has 19 digits); longer ones are never a valid
# feature and cost quadratic time to convert.
_MAX_INT_DIGITS = 19


def check_media_type(header: str | None, allowed: tuple[str, ...] = (JSON_MEDIA,)) -> None:
    """Exactly one of ``allowed`` (parameters aside; a charset must be UTF-8), else 415."""
    if not header:
        raise BadInputError(f"missing Content-Type: send {' or '.join(allowed)}", status_code=415)
    media, _, params = header.partition(";")
    media = media.strip().lower()
    if media not in allowed:
        shown = header if len(header) <= 100 else header[:100] + "..."
        raise BadInputError(
            f"unsupported content type {shown!r}: send {' or '.join(allowed)}", status_code=415
        )
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise BadInputError(f"unsupported charset {value.strip()!r}: send UTF-8", status_code=415)


def count_containers(buf: bytes) -> int:
    """JSON arrays and objects opened in ``buf`` (brackets inside strings excluded).

    A row is one array or object, so this bounds the rows of a (possibly partial) body without
    parsing it; an unterminated string at the end is excluded too.
    """
    stripped = _STRINGS.sub(b"", buf)
    quote = stripped.find(b'"')
    if quote >= 0:
        stripped = stripped[:quote]
    return stripped.count(b"[") + stripped.count(b"{")


async def read_limited(
    stream: AsyncIterator[bytes],
    *,
    declared_length: str | None,
    max_bytes: int,
    max_containers: int,
    limit_name: str,
    bytes_name: str = "serving.max_body_bytes",
) -> bytes:
    """Read a request body, refusing it (413) as soon as it is too large or holds too many rows.

    ``declared_length`` (the Content-Length header) is checked before reading anything; the
    container count is checked while reading, on the bytes received so far, so a body of a
    million empty rows is refused after the first ``max_containers`` of them arrive.
    """
    if declared_length is not None:
        if not declared_length.strip().isdigit():
            raise BadInputError(f"invalid Content-Length {declared_length[:40]!r}")
        if int(declared_length) > max_bytes:
            raise BadInputError(
                f"body of {int(declared_length)} bytes exceeds the limit of {max_bytes} bytes ({bytes_name})",
                status_code=413,
            )
    chunks: list[bytes] = []
    size = raw = 0
    next_check = max_containers
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise BadInputError(
                f"body exceeds the limit of {max_bytes} bytes ({bytes_name})", status_code=413
            )
        chunks.append(chunk)
        raw += chunk.count(b"[") + chunk.count(b"{")
        if raw > next_check:  # brackets in strings inflate `raw`: count exactly, rarely
            buf = b"".join(chunks)
            chunks = [buf]
            if count_containers(buf) > max_containers:
                raise BadInputError(
                    f"body holds more than {max_containers} JSON rows/objects ({limit_name}): refused "
                    f"after {size} bytes, split it",
                    status_code=413,
                )
            next_check = raw * 2
    return b"".join(chunks)


class Unrepresentable:
    """A JSON number no column can take (non-finite or beyond 64 bits); refused with its place."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"<{self.why}>"


def _parse_int(text: str) -> int | Unrepresentable:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        return Unrepresentable(f"a {digits}-digit integer literal (beyond the 64-bit range)")
    return int(text)


def _parse_float(text: str) -> float | Unrepresentable:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return Unrepresentable(f"number {text[:30]} overflows a 64-bit float")
    return value


def _parse_constant(token: str) -> float | Unrepresentable:
    if token == "NaN":
        return float("nan")  # MLflow's protocol sends NaN for a missing value
    return Unrepresentable(f"{token} (infinite values are refused)")


def loads(body: bytes | str) -> Any:
    """``json.loads``; ``NaN``/``Infinity`` literals and numbers Python cannot convert are parsed.

    The fast path is the C parser (numbers as floats and ints: ``1e309`` becomes ``inf`` and a
    400-digit literal a big int, both refused later by :func:`number_problem` with their
    column); only a body with an integer literal beyond Python's conversion limit (4,300
    digits) is parsed again with per-number hooks, which turn such literals into
    :class:`Unrepresentable` markers (twice the parse cost, for bad input only).
    """
    try:
        try:
            return json.loads(body, parse_constant=_parse_constant)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise
            return json.loads(
                body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
            )
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInputError(f"malformed JSON: {exc}") from None
    except ValueError as exc:  # a literal even the hooks cannot convert
        raise BadInputError(f"malformed JSON number: {str(exc)[:100]}") from None


_INT64 = 2**63


def number_problem(value: Any) -> str | None:
    """Why a parsed JSON number cannot be taken (None for anything else, NaN included)."""
    kind = type(value)
    if kind is float:
        if value in (math.inf, -math.inf):
            return "a number beyond the 64-bit float range (e.g. 1e309)"
    elif kind is int:
        if not -_INT64 <= value < _INT64:
            return f"a {len(str(abs(value)))}-digit integer literal (beyond the 64-bit range)"
    elif kind is Unrepresentable:
        return str(value.why)
    return None


def _bad_number(values: list[Any]) -> tuple[int, str] | None:
    for i, v in enumerate(values):
        problem = number_problem(v) if type(v) is not str else None
        if problem:
            return i, problem
    return None


def text_problem(value: str, max_chars: int | None = None) -> str | None:
    """Why ``value`` cannot be stored as an id or key (None when it can)."""
    if max_chars is not None and len(value) > max_chars:
        return f"{len(value)} characters (the limit is {max_chars})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (not valid Unicode)"
    if max_chars is not None and any(unicodedata.category(ch) == "Cc" for ch in value):
        return "a control character"
    return None


def _check_strings(name: str, values: list[Any]) -> None:
    texts = [v for v in values if type(v) is str]
    if not texts:
        return
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        i = next(i for i, v in enumerate(values) if type(v) is str and text_problem(v) is not None)
        raise BadInputError(f"column {name!r}: a lone surrogate (not valid Unicode) in row {i}") from None


def check_values(table: Table, *, id_column: str, time_column: str, max_id_chars: int) -> None:
    """Refuse what no column may hold, and ids/event times the prediction log cannot key on.

    Every column: no :class:`Unrepresentable` number, no lone surrogate. The id column: strings
    or integers, bounded, printable. The event-time column: ISO-8601 strings (or null).
    """
    for name, values in zip(table.columns, table.values, strict=True):
        kinds = set(map(type, values))
        if kinds & {float, int, Unrepresentable}:
            bad = _bad_number(values)
            if bad is not None:
                raise BadInputError(f"column {name!r}: {bad[1]} in row {bad[0]}")
        if str in kinds:
            _check_strings(name, values)
        if name == id_column:
            _check_ids(name, values, kinds, max_id_chars)
        elif name == time_column:
            _check_times(name, values, kinds, max_id_chars)


def _check_ids(name: str, values: list[Any], kinds: set[type], max_chars: int) -> None:
    if not kinds <= {str, int, _NONE}:
        i, v = _first_bad(values, {str, int, _NONE})
        raise BadInputError(
            f"column {name!r} (the entity id): expected a string or integer, got {_describe(v)} in row {i}"
        )
    texts = [v for v in values if type(v) is str]
    if not texts:
        return
    # Fast path (C speed): all printable (no control character, no surrogate) and short enough.
    if max(map(len, texts)) <= max_chars and "".join(texts).isprintable():
        return
    for i, v in enumerate(values):
        if type(v) is str:
            problem = text_problem(v, max_chars)
            if problem:
                raise BadInputError(f"column {name!r} (the entity id): {problem} in row {i}")


def _check_times(name: str, values: list[Any], kinds: set[type], max_chars: int) -> None:
    if not kinds <= {str, _NONE}:
        i, v = _first_bad(values, {str, _NONE})
        raise BadInputError(
            f"column {name!r} (the event time): expected an ISO-8601 string, got {_describe(v)} in row {i}"
        )
    for text in {v for v in values if v is not None}:
        problem = iso_problem(text, max_chars)
        if problem:
            i = values.index(text)
            raise BadInputError(f"column {name!r} (the event time): {problem} in row {i}")


def iso_problem(text: str, max_chars: int) -> str | None:
    """Why ``text`` is not an ISO-8601 timestamp the log can order (None when it is)."""
    if len(text) > max_chars:
        return f"{len(text)} characters (the limit is {max_chars})"
    stripped = text.strip()
    try:
        datetime.fromisoformat(stripped.replace(" ", "T", 1) if "T" not in stripped else stripped)
    except ValueError:
        return f"{json.dumps(text[:40])} is not an ISO-8601 timestamp"
    return None


def parse_body(
    body: bytes,
    max_rows: int,
    positional_columns: list[str],
    *,
    id_column: str = "",
    time_column: str = "",
    max_id_chars: int = 256,
) -> Table:
    """Parse a scoring request body into a :class:`Table` (raises BadInputError)."""
    if not body or not body.strip():
        raise BadInputError("empty request body: send a JSON object with one of " + ", ".join(FORMATS))
    payload = loads(body)
    if not isinstance(payload, dict):
        raise BadInputError(f"the body must be a JSON object with one of {', '.join(FORMATS)}")
    keys = [k for k in FORMATS if k in payload]
    if len(keys) != 1:
        found = sorted(k for k in payload if k != "params")
        raise BadInputError(f"expected exactly one of {', '.join(FORMATS)}; got keys {found}")
    fmt = keys[0]
    data = payload[fmt]
    if fmt == "dataframe_split":
        table = _split(data)
    elif fmt == "dataframe_records":
        table = _records(data, fmt)
    elif fmt == "inputs" and isinstance(data, dict):
        table = _columnar(data)
    else:
        table = _rows(data, fmt, positional_columns)
    if table.n_rows == 0:
        raise BadInputError(f"'{fmt}' holds no rows: nothing to predict")
    if table.n_rows > max_rows:
        raise BadInputError(
            f"payload has {table.n_rows} rows; the limit is {max_rows} (serving.max_rows): split it",
            status_code=413,
        )
    check_values(table, id_column=id_column, time_column=time_column, max_id_chars=max_id_chars)
    return table


def _split(data: Any) -> Table:
    if not isinstance(data, dict) or "data" not in data or "columns" not in data:
        raise BadInputError("'dataframe_split' must be an object with 'columns' and 'data'")
    columns, rows = data["columns"], data["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadInputError("'dataframe_split.columns' must be a list of column names")
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise BadInputError(f"'dataframe_split.columns' names {dup} more than once")
    if not isinstance(rows, list):
        raise BadInputError("'dataframe_split.data' must be a list of rows")
    n = len(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise BadInputError(
                f"row {i} of 'dataframe_split.data' has {got} values, expected {n} (one per column)"
            )
    values = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in columns]
    return Table(columns=list(columns), values=values, n_rows=len(rows), fmt="dataframe_split")


def _records(data: Any, fmt: str) -> Table:
    if not isinstance(data, list):
        raise BadInputError(f"'{fmt}' must be a list of records (objects)")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise BadInputError(f"record {i} of '{fmt}' is a {type(rec).__name__}, expected an object")
    columns = list(dict.fromkeys(k for rec in data for k in rec))
    # A key absent from some records means null there (as pandas reads records).
    values = [[rec.get(c) for rec in data] for c in columns]
    return Table(columns=columns, values=values, n_rows=len(data), fmt=fmt)


def _columnar(data: dict[str, Any]) -> Table:
    columns = list(data)
    values = []
    lengths = set()
    for c in columns:
        col = data[c]
        if not isinstance(col, list):
            raise BadInputError(f"'inputs' column {c!r} must be a list of values (columnar format)")
        values.append(col)
        lengths.add(len(col))
    if len(lengths) > 1:
        raise BadInputError(f"'inputs' columns have different lengths {sorted(lengths)}")
    return Table(columns=columns, values=values, n_rows=lengths.pop() if lengths else 0, fmt="inputs")


def _rows(data: Any, fmt: str, positional_columns: list[str]) -> Table:
    if not isinstance(data, list):
        raise BadInputError(f"'{fmt}' must be a list of rows")
    if not data:
        return Table(columns=[], values=[], n_rows=0, fmt=fmt)
    if all(isinstance(r, dict) for r in data):
        return _records(data, fmt)
    if all(isinstance(r, list) for r in data):
        n = len(positional_columns)
        for i, row in enumerate(data):
            if len(row) != n:
                raise BadInputError(
                    f"row {i} of '{fmt}' has {len(row)} values; positional rows need {n} in signature "
                    f"order {positional_columns}"
                )
        values = [list(col) for col in zip(*data, strict=True)]
        return Table(columns=list(positional_columns), values=values, n_rows=len(data), fmt=fmt)
    raise BadInputError(f"'{fmt}' rows must all be objects or all be lists")


def _first_bad(values: list[Any], allowed: set[type]) -> tuple[int, Any]:
    for i, v in enumerate(values):
        if type(v) not in allowed:
            return i, v
    return -1, None


def _describe(v: Any) -> str:
    if isinstance(v, Unrepresentable):
        return v.why
    text = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__
    return f"{type(v).__name__ if v is not None else 'null'} {text[:40]}"


def validate(
    table: Table,
    columns: list[ColumnSpec],
    *,
    passthrough: set[str],
    allow_extra: bool,
) -> Validated:
    """Check a table against a model's input columns and build the model's frame.

    ``passthrough`` names columns accepted besides the signature (the dataset's id
    and event time, kept for the log); any other unknown column is refused unless
    ``allow_extra``.
    """
    known = {c.name for c in columns}
    if not allow_extra:
        unknown = [c for c in table.columns if c not in known and c not in passthrough]
        if unknown:
            raise BadInputError(f"unknown column(s) {unknown}: the model takes {[c.name for c in columns]}")
    missing = [c.name for c in columns if c.required and c.name not in table.columns]
    if missing:
        raise BadInputError(f"missing required column(s) {missing}")
    index = {name: j for j, name in enumerate(table.columns)}
    arrays: list[Any] = []
    for spec in columns:
        j = index.get(spec.name)
        values: list[Any] = [None] * table.n_rows if j is None else table.values[j]
        arrays.append(_column(spec, values))
    return Validated(columns=[c.name for c in columns], arrays=arrays, n_rows=table.n_rows)


def _column(spec: ColumnSpec, values: list[Any]) -> Any:
    kinds = set(map(type, values))
    allowed = _ALLOWED[spec.kind]
    has_null = _NONE in kinds
    if has_null and not spec.nullable:
        i = values.index(None)
        raise BadInputError(f"column {spec.name!r}: null in row {i}, but this column may not be missing")
    kinds.discard(_NONE)
    if spec.kind == "int" and float in kinds:
        # JSON writers often spell integers as 3.0; accept exactly integral floats only.
        bad = next((i for i, v in enumerate(values) if type(v) is float and not v.is_integer()), -1)
        if bad >= 0:
            raise BadInputError(
                f"column {spec.name!r}: expected an integer ({spec.mlflow_type}), got "
                f"{_describe(values[bad])} in row {bad}"
            )
        kinds.discard(float)
    if not kinds <= allowed:
        i, v = _first_bad(values, allowed | {_NONE, float} if spec.kind == "int" else allowed | {_NONE})
        raise BadInputError(
            f"column {spec.name!r}: expected {_EXPECTED[spec.kind]} ({spec.mlflow_type}), got "
            f"{_describe(v)} in row {i}"
        )
    if spec.kind == "float":
        arr = np.array(values, dtype=np.float64)
        finite = np.isfinite(arr)
        if not finite.all():
            bad_idx = np.flatnonzero(~finite & ~np.isnan(arr))
            if bad_idx.size:
                raise BadInputError(f"column {spec.name!r}: infinite value in row {int(bad_idx[0])}")
            if not spec.nullable:
                i = int(np.flatnonzero(np.isnan(arr))[0])
                raise BadInputError(
                    f"column {spec.name!r}: NaN in row {i}, but this column may not be missing"
                )
        return arr
    if spec.kind == "int":
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            raise BadInputError(f"column {spec.name!r}: integer out of the 64-bit range") from None
    if spec.kind == "bool":
        return np.array(values, dtype=bool)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr
