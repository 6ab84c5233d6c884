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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
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


def _reject_constant(token: str) -> float:
    if token == "NaN":
        return math.nan
    raise BadInputError(f"malformed JSON: {token} is not a number JSON allows (infinite values are refused)")


def parse_body(body: bytes, max_rows: int, positional_columns: list[str]) -> Table:
    """Parse a scoring request body into a :class:`Table` (raises BadInputError)."""
    if not body or not body.strip():
        raise BadInputError("empty request body: send a JSON object with one of " + ", ".join(FORMATS))
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except BadInputError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInputError(f"malformed JSON: {exc}") from None
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
