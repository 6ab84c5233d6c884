"""``mlops init``: a complete, reviewable starting config derived from one data file.

From a CSV or Parquet file and its target column, writes ``<out>/pipeline.yaml`` (the dataset
contract and every data-dependent threshold) and ``<out>/expectations.json`` (a GX suite with
``meta.severity`` and ``meta.why`` on every expectation). The data is profiled with Great
Expectations' own metrics (row count, column types, null counts, distinct values, descriptive
statistics) and the suite is built from GX's expectation classes, so GX validates every kwarg.

Nothing is guessed silently: every derived value carries a comment saying what it was derived
from, and what only a person can decide (the event times' zone, a suspected leak, behaviour
checks) is marked ``REVIEW``. Values that come out equal to the code defaults are written as
comments only, so the file stays a list of what this dataset needs (one source of defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipelines.config import CanaryConfig, GateConfig, MonitoringConfig, TrainingConfig
from pipelines.core.periods import batch_ids

#: Names that suggest a value known only after the event (an outcome, not a feature).
LEAKY_NAME = re.compile(
    r"(delay|outcome|result|label|actual|arriv|arr_|_after|after_|closed|resolved|end_time|ended|"
    r"duration|elapsed|status|paid|refund|churn)",
    re.IGNORECASE,
)
#: A feature this predictive on its own is more likely a leak than a feature.
LEAK_CORRELATION = 0.95
LEAK_AUC = 0.97
MAX_CATEGORIES = 200
NUMERIC_DTYPES = ["int64", "float64", "Int64", "Float64", "int32"]
PERIOD_DAYS = {"month": 30.4, "week": 7.0, "day": 1.0}


@dataclass
class ColumnProfile:
    name: str
    dtype: str
    nulls: int
    distinct: int
    stats: dict[str, float] | None = None  # min, max, mean, standard_deviation (numeric)
    values: list[Any] | None = None  # distinct values (small categoricals)


@dataclass
class Derived:
    """The written values, each with the comment that says how it was derived."""

    sections: dict[str, list[tuple[str, Any, str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, section: str, key: str, value: Any, why: str, default: Any = None) -> None:
        """Record ``key``; a value equal to the code default is written as a comment only."""
        self.sections.setdefault(section, []).append(
            (key, value, why if value != default else f"= default; {why}")
        )


def read_data(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    return pd.read_csv(path, low_memory=False)


def gx_profile(df: pd.DataFrame) -> dict[str, ColumnProfile]:
    """Column profiles computed by GX's metrics on an ephemeral context (no files written)."""
    import great_expectations as gx
    from great_expectations import metrics as gxm
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        ctx.data_sources.add_pandas(name="init")
        .add_dataframe_asset(name="data")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    numeric = [
        c
        for c in df.columns
        if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    ]
    requests: list[Any] = [gxm.BatchColumnTypes()]
    for c in df.columns:
        requests += [gxm.ColumnNullCount(column=c), gxm.ColumnDistinctValuesCount(column=c)]
    requests += [gxm.ColumnDescriptiveStats(column=c) for c in numeric]
    with contextlib.redirect_stderr(io.StringIO()):  # GX's metric progress bars
        results = batch.compute_metrics(requests)
    types = {t.name: str(t.type) for t in results[0].value}
    profiles: dict[str, ColumnProfile] = {}
    for i, c in enumerate(df.columns):
        nulls, distinct = results[1 + 2 * i].value, results[2 + 2 * i].value
        profiles[c] = ColumnProfile(c, types.get(c, str(df[c].dtype)), int(nulls), int(distinct))
    offset = 1 + 2 * len(df.columns)
    for j, c in enumerate(numeric):
        s = results[offset + j].value
        profiles[c].stats = {k: float(getattr(s, k)) for k in ("min", "max", "mean", "standard_deviation")}
    small = [c for c, p in profiles.items() if p.distinct <= 50 and c not in numeric]
    if small:
        with contextlib.redirect_stderr(io.StringIO()):
            found = batch.compute_metrics([gxm.ColumnDistinctValues(column=c) for c in small])
        for c, r in zip(small, found, strict=True):
            profiles[c].values = sorted(str(v) for v in r.value)
    return profiles


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "dataset"


def _detect_event_time(df: pd.DataFrame, target: str) -> str:
    for c in df.columns:
        if c == target or pd.api.types.is_numeric_dtype(df[c]):
            continue
        sample = df[c].dropna().astype(str).head(500)
        if len(sample) and pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() > 0.95:
            return str(c)
    raise SystemExit("no event-time column found (a column of timestamps): pass --event-time COLUMN")


def _round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(round(x, -math.floor(math.log10(abs(x))) + digits - 1))


def _frequency(event_time: pd.Series) -> str:
    """The coarsest batch period that still cuts the data into >= 6 batches (month, week, then day).

    Coarse batches hold the most rows per window, so monitoring and the gate get the most evidence
    per decision; six batches are the fewest that leave a training window, a holdout and served
    batches after the bootstrap.
    """
    for freq in ("month", "week"):
        if batch_ids(event_time, freq, "UTC").nunique() >= 6:
            return freq
    return "day"


def derive(
    df: pd.DataFrame,
    target: str,
    event_time: str | None = None,
    task: str | None = None,
    name: str | None = None,
    id_column: str | None = None,
) -> tuple[dict[str, Any], Derived, list[Any], dict[str, ColumnProfile]]:
    """The contract, the derived settings and the suite's expectations for ``df``."""
    import great_expectations as gx

    if target not in df.columns:
        raise SystemExit(f"target column {target!r} is not in the data (columns: {list(df.columns)})")
    prof = gx_profile(df)
    d = Derived()
    event_time = event_time or _detect_event_time(df, target)
    if event_time not in df.columns:
        raise SystemExit(f"event-time column {event_time!r} is not in the data")
    y = df[target]
    if task is None:
        numeric_target = pd.api.types.is_numeric_dtype(y)
        task = "classification" if (not numeric_target or prof[target].distinct <= 2) else "regression"
        d.notes.append(
            f"task: {task} (target has {prof[target].distinct} distinct values; --task to override)"
        )
    rows = len(df)

    # --- id -------------------------------------------------------------------------------------
    candidates = [
        c
        for c in df.columns
        if c not in {target, event_time}
        and prof[c].nulls == 0
        and prof[c].distinct == rows
        and not pd.api.types.is_float_dtype(df[c])
    ]
    candidates.sort(key=lambda c: 0 if re.search(r"(^|_)id$|_id|^id", str(c), re.IGNORECASE) else 1)
    id_spec: dict[str, Any]
    if id_column:
        id_spec = {"column": id_column}
    elif candidates:
        id_spec = {"column": candidates[0]}
    else:
        id_spec = {
            "column": "row_id",
            "compose_from": [event_time, *[c for c in df.columns if c not in {target, event_time}]],
        }
        d.notes.append("REVIEW id: no unique column; row_id is composed from every column (pass --id)")

    # --- event time: zone convention ----------------------------------------------------------------
    raw_times = df[event_time].dropna().astype(str)
    naive_share = float((~raw_times.head(2000).str.contains(r"(?:Z|[+-]\d{2}:?\d{2})\s*$")).mean())
    ts = pd.to_datetime(df[event_time], utc=True, errors="coerce", format="mixed")
    span_days = float((ts.max() - ts.min()).total_seconds() / 86400) if ts.notna().any() else 0.0
    freq = _frequency(df[event_time])
    ids = batch_ids(df[event_time], freq, "UTC")
    counts = ids.value_counts().sort_index()
    batches = [str(b) for b in counts.index]
    sizes = counts.to_numpy()
    median_batch = int(np.median(sizes)) if len(sizes) else 0
    smallest, largest = (int(sizes.min()), int(sizes.max())) if len(sizes) else (0, 0)
    hourly = bool((ts.dropna().dt.hour != 0).any())

    # --- roles: features, leakage suspects ------------------------------------------------------------
    drop: list[str] = []
    drop_why: dict[str, str] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    y_num = pd.to_numeric(y, errors="coerce")
    for c in df.columns:
        if c in {target, event_time, id_spec["column"]}:
            continue
        p = prof[c]
        col = df[c]
        if p.nulls == rows or p.distinct <= 1:
            drop.append(c)
            drop_why[c] = "constant or empty: carries no information"
            continue
        if pd.api.types.is_datetime64_any_dtype(col) or (
            not pd.api.types.is_numeric_dtype(col)
            and pd.to_datetime(col.dropna().astype(str).head(200), errors="coerce", format="mixed")
            .notna()
            .mean()
            > 0.95
        ):
            drop.append(c)
            drop_why[c] = "LEAKAGE SUSPECT (REVIEW): a second timestamp is often known only after the event"
            continue
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            leak = None
            if y_num.notna().sum() > 10 and col.notna().sum() > 10:
                if task == "regression":
                    r = abs(float(col.astype("float64").corr(y_num)))
                    if r >= LEAK_CORRELATION:
                        leak = f"|correlation| with {target} is {r:.3f}"
                else:
                    auc = _univariate_auc(col, y)
                    if auc is not None and auc >= LEAK_AUC:
                        leak = f"alone it separates {target} with AUC {auc:.3f}"
            if leak is None and LEAKY_NAME.search(str(c)):
                leak = "its name suggests a value known only after the event"
            if leak:
                drop.append(c)
                drop_why[c] = f"LEAKAGE SUSPECT (REVIEW): {leak}"
                continue
            numeric.append(c)
        else:
            if p.distinct > MAX_CATEGORIES or p.distinct > 0.5 * rows:
                drop.append(c)
                drop_why[c] = f"{p.distinct} distinct values: free text or a key, not a category"
                continue
            if LEAKY_NAME.search(str(c)):
                drop.append(c)
                drop_why[c] = "LEAKAGE SUSPECT (REVIEW): its name suggests a value known only after the event"
                continue
            categorical.append(c)
    derived_time: dict[str, str] = {}
    for feat, part in (("hour", "hour"), ("dayofweek", "dayofweek")):
        if feat in df.columns or (feat == "hour" and not hourly):
            continue
        derived_time[f"event_{feat}" if feat in df.columns else feat] = part
    numeric_all = [*numeric, *derived_time]

    # --- slices: categoricals with a few sizeable groups ------------------------------------------------
    slice_cols = sorted(
        (c for c in categorical if 2 <= prof[c].distinct <= 20),
        key=lambda c: -int(df[c].value_counts().min()),
    )[:2]

    contract: dict[str, Any] = {
        "name": name or "dataset",
        "source": {"path": "<data>"},
        "id": id_spec,
        "event_time": event_time,
        "event_timezone": "UTC",
        "naive_timestamps": "utc",
        "target": {"name": target, "task": task},
        "features": {"numeric": numeric_all, "categorical": categorical},
        "derived_time_features": derived_time,
        "drop_columns": drop,
        "batch_frequency": freq,
        "batches": batches,
        "slice_columns": slice_cols,
        "expectation_suite": "expectations.json",
    }
    contract["_why"] = {
        "naive_timestamps": (
            f"REVIEW: {naive_share:.0%} of {event_time} values carry no zone; read as UTC instants. If they "
            "are local wall-clock times, set naive_timestamps: local and event_timezone: <zone>"
            if naive_share
            else f"{event_time} values carry their offset"
        ),
        "batch_frequency": f"{event_time} spans {span_days:.0f} days: {len(batches)} {freq} batches of "
        f"{smallest}..{largest} rows (median {median_batch})",
        "drop_columns": drop_why,
        "slice_columns": "categoricals with 2-20 groups, largest smallest-group first",
        "derived_time_features": "calendar parts of the event time (known when the prediction is asked for)",
    }

    # --- thresholds from batch sizes and the target's scale ---------------------------------------------
    t, g, k, m = TrainingConfig(), GateConfig(), CanaryConfig(), MonitoringConfig()
    n = len(batches)
    window = min(t.window_batches, max(1, n - 3))
    d.set(
        "training",
        "window_batches",
        window,
        f"{n} batches: a window, a holdout and >= 2 served batches",
        t.window_batches,
    )
    labelled = int(y.notna().groupby(ids).sum().median()) if n else 0
    d.set(
        "training",
        "min_rows",
        min(t.min_rows, max(1, int(0.5 * labelled * window))),
        f"half of {window} median batches' labelled rows ({labelled} each)",
        t.min_rows,
    )
    d.set(
        "training",
        "min_holdout_rows",
        min(t.min_holdout_rows, max(1, int(0.5 * labelled))),
        f"half a median batch's labelled rows ({labelled})",
        t.min_holdout_rows,
    )
    if task == "classification":
        minority = int(
            y.dropna().groupby(ids[y.notna()]).value_counts().unstack(fill_value=0).min(axis=1).median()
        )
        d.set(
            "training",
            "min_class_rows",
            min(t.min_class_rows, max(1, int(0.5 * minority * window))),
            f"half of the rarer class in {window} median batches ({minority} each)",
            t.min_class_rows,
        )
    if slice_cols:
        group = int(min(df.groupby([ids, df[c]]).size().groupby(level=0).max().median() for c in slice_cols))
        d.set(
            "gate",
            "slice_min_rows",
            min(g.slice_min_rows, max(30, int(0.5 * group))),
            f"half the median largest slice group of a batch ({group}), at least 30",
            g.slice_min_rows,
        )
    std = float(y_num.std()) if task == "regression" and y_num.notna().sum() > 1 else None
    checks = []
    pred_unit = "probability points" if task == "classification" else f"{target} units"
    tol = 0.02 if task == "classification" else _round_sig(0.02 * (std or 1.0), 2)
    continuous = [c for c in numeric if prof[c].distinct > 12]
    for c in continuous[:2]:
        stats = prof[c].stats or {}
        c_std = stats.get("standard_deviation", 0.0)
        step = _round_sig(0.01 * c_std, 2) if c_std else 0.0
        if step:
            checks.append(
                {
                    "name": f"{_slug(str(c))}_small_change_invariance",
                    "kind": "invariance",
                    "column": c,
                    "op": "add",
                    "value": step,
                    "tolerance": tol,
                }
            )
    why_checks = (
        f"REVIEW: generic smoothness checks (1% of the column's std must not move predictions by more than "
        f"{tol} {pred_unit}{'; 2% of the target std' if std else ''}); add directional checks you know"
    )
    d.set("gate", "behavioural", checks, why_checks, [])
    if len(checks) < g.min_behavioural_checks:
        d.set(
            "gate",
            "min_behavioural_checks",
            len(checks),
            f"only {len(checks)} numeric features to perturb: REVIEW and add your own checks",
            g.min_behavioural_checks,
        )
    d.set(
        "serving",
        "non_null_features",
        [c for c in numeric + categorical if prof[c].nulls == 0],
        "features never null in the data: callers must send them",
        [],
    )
    if task == "regression":
        qs = sorted({_round_sig(float(q)) for q in y_num.quantile(np.linspace(0.05, 0.95, 10)).to_numpy()})
        d.set(
            "serving",
            "prediction_buckets",
            qs,
            f"deciles of {target} (the default buckets suit probabilities)",
        )
    d.set(
        "canary",
        "quality_min_labels",
        min(k.quality_min_labels, max(10, int(0.5 * median_batch))),
        f"half a median batch ({median_batch} rows; at least 10)",
        k.quality_min_labels,
    )
    d.set(
        "monitoring",
        "min_window_rows",
        min(m.min_window_rows, max(1, int(0.5 * median_batch))),
        f"half a median batch ({median_batch} rows): every normal window can decide",
        m.min_window_rows,
    )
    mature = max(0.0, 1 - m.label_delay_days / PERIOD_DAYS[freq])
    d.set(
        "monitoring",
        "min_mature_labels",
        min(m.min_mature_labels, max(1, int(0.5 * labelled * mature))),
        f"half the labels a median batch has matured by its window's end ({labelled} x {mature:.2f} with "
        f"label_delay_days {m.label_delay_days}: REVIEW the delay of your labels)",
        m.min_mature_labels,
    )
    codes = [c for c in numeric if prof[c].distinct <= 12 and pd.api.types.is_integer_dtype(df[c])]
    if codes:
        d.set(
            "monitoring",
            "column_tests",
            {c: {"method": "jensenshannon", "threshold": 0.1} for c in codes},
            "integer columns with <= 12 values are codes: compared as categories",
            {},
        )
    served = n - window - 1
    if served < m.hysteresis_m:
        d.set(
            "monitoring",
            "hysteresis_m",
            max(1, served),
            f"only {served} batches are served after the bootstrap",
            m.hysteresis_m,
        )
        if m.hysteresis_n > max(1, served):
            d.set("monitoring", "hysteresis_n", max(1, served), "no more than hysteresis_m", m.hysteresis_n)

    # --- the GX suite ----------------------------------------------------------------------------------
    E = gx.expectations  # noqa: N806 - GX's own short name for its expectation classes
    exps: list[Any] = []

    seen: dict[tuple[str, str], int] = {}

    def add(exp: Any, severity: str, why: str) -> None:
        meta = {"severity": severity, "why": why}
        key = (type(exp).__name__, str(getattr(exp, "column", "")))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # a second rule of one type on one column: reports tell them apart by name
            meta["name"] = "guard" if severity == "critical" else f"rule{seen[key]}"
        exp.meta = meta
        exps.append(exp)

    add(
        E.ExpectTableColumnsToMatchOrderedList(column_list={"$PARAMETER": "landed_columns"}),
        "critical",
        "Schema: exactly the contract's landed columns, in order.",
    )
    add(
        E.ExpectTableRowCountToBeBetween(min_value=max(1, smallest // 2), max_value=max(2, largest * 2)),
        "critical",
        f"Row count: half the smallest to twice the largest batch seen ({smallest}..{largest}); "
        "outside that the "
        "extract is partial or duplicated.",
    )
    for c in numeric + ([target] if task == "regression" else []):
        add(
            E.ExpectColumnValuesToBeInTypeList(column=c, type_list=NUMERIC_DTYPES),
            "critical",
            "Types: a numeric column that parses as text means the file's format changed.",
        )
    idc = id_spec["column"]
    add(
        E.ExpectColumnValuesToNotBeNull(column=idc),
        "row",
        "Key: a row without an id cannot be traced to its label.",
    )
    add(E.ExpectColumnValuesToBeUnique(column=idc), "row", "Key uniqueness: duplicated ids go to quarantine.")
    add(
        E.ExpectColumnProportionOfUniqueValuesToBeBetween(column=idc, min_value=0.99),
        "critical",
        "Key guard: mass duplication (a file appended to itself) fails the batch.",
    )
    add(
        E.ExpectColumnValuesToNotBeNull(column=event_time),
        "row",
        "Timestamp: missing or unparseable event time.",
    )
    add(
        E.ExpectColumnValuesToBeBetween(
            column=event_time,
            min_value={"$PARAMETER": "batch_start"},
            max_value={"$PARAMETER": "batch_end"},
            strict_max=True,
        ),
        "row",
        "Timestamp: inside the batch's own period [start, end).",
    )
    add(
        E.ExpectColumnValuesToBeBetween(column=event_time, max_value={"$PARAMETER": "now"}),
        "row",
        "Timestamp: an event in the future (after validation time) is a clock or extract error.",
    )
    for c in numeric:
        p = prof[c]
        assert p.stats is not None
        lo, hi = p.stats["min"], p.stats["max"]
        pad = 0.1 * (hi - lo) if hi > lo else abs(hi) * 0.1 or 1.0
        if p.nulls == 0:
            add(
                E.ExpectColumnValuesToNotBeNull(column=c),
                "row",
                f"Required: {c} was never null in the data profiled.",
            )
        else:
            present = 1 - p.nulls / rows
            add(
                E.ExpectColumnProportionOfNonNullValuesToBeBetween(
                    column=c, min_value=_round_sig(max(0.0, present - 0.1), 2)
                ),
                "critical",
                f"Completeness guard: {c} was {present:.0%} present; "
                "10 points less means the source changed.",
            )
        add(
            E.ExpectColumnValuesToBeBetween(
                column=c, min_value=_round_sig(lo - pad), max_value=_round_sig(hi + pad)
            ),
            "row",
            f"Range: observed {lo:g}..{hi:g}, widened by 10% of the range; "
            "REVIEW against the column's real limits.",
        )
    for c in categorical:
        p = prof[c]
        if p.nulls == 0:
            add(
                E.ExpectColumnValuesToNotBeNull(column=c),
                "row",
                f"Required: {c} was never null in the data profiled.",
            )
        if p.values is not None:
            add(
                E.ExpectColumnValuesToBeInSet(column=c, value_set=p.values),
                "row",
                "Categorical set seen in the data; an unseen value goes to quarantine for review.",
            )
            add(
                E.ExpectColumnValuesToBeInSet(column=c, value_set=p.values, mostly=0.95),
                "critical",
                f"Categorical guard: if >5% of {c} is unknown the coding changed.",
            )
    add(
        E.ExpectColumnValuesToNotBeNull(column=target),
        "row",
        "Label present: a row without a label cannot be learned from.",
    )
    label_present = 1 - prof[target].nulls / rows
    add(
        E.ExpectColumnValuesToNotBeNull(column=target, mostly=_round_sig(max(0.5, label_present - 0.1), 2)),
        "critical",
        f"Label guard: {label_present:.0%} of labels were present; "
        "10 points less means the label source broke.",
    )
    if task == "classification" and prof[target].distinct <= 2 and pd.api.types.is_numeric_dtype(y):
        add(
            E.ExpectColumnValuesToBeInSet(column=target, value_set=[0, 1]), "row", "Label values: binary 0/1."
        )
    elif task == "regression" and (tstats := prof[target].stats):
        lo, hi = tstats["min"], tstats["max"]
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        add(
            E.ExpectColumnValuesToBeBetween(
                column=target, min_value=_round_sig(lo - pad), max_value=_round_sig(hi + pad)
            ),
            "row",
            f"Label range: observed {lo:g}..{hi:g}, widened by 10% of the range.",
        )
    return contract, d, exps, prof


def _univariate_auc(col: pd.Series, y: pd.Series) -> float | None:
    from sklearn.metrics import roc_auc_score

    mask = col.notna() & y.notna()
    labels = y[mask]
    if labels.nunique() != 2:
        return None
    positive = labels == sorted(labels.unique())[-1]
    auc = float(roc_auc_score(positive, col[mask]))
    return max(auc, 1 - auc)


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def render_yaml(contract: dict[str, Any], d: Derived, data_path: str, data_file: Path) -> str:
    why = contract.pop("_why")
    c = dict(contract)
    c["source"] = {"path": data_path}
    lines = [
        f"# Written by `mlops init --data {data_file.name}`: a starting point, derived from the data itself.",
        "# Every value below says how it was derived; REVIEW marks what only you can decide. Values equal",
        "# to the code defaults (pipelines/config/<section>.py) appear as comments only. Next:",
        "#   mlops config check   (MLOPS_CONFIG=<this file>): can every stage act on this data?",
        "#   make demo CONFIG=<this file>",
        "# MLflow names default to the dataset's: experiment <name>, registered model <name>_<task>.",
        "# Runtime state goes under paths.root (default <repo>/var; MLOPS__PATHS__ROOT to move it).",
        "",
        "dataset:",
    ]
    for key, value in c.items():
        if key == "drop_columns":
            lines.append("  drop_columns:")
            for col in value:
                lines.append(f"    - {_flow(col)}    # {why['drop_columns'][col]}")
            if not value:
                lines[-1] = "  drop_columns: []"
            continue
        comment = why.get(key)
        text = f"  {key}: {_flow(value)}"
        lines.append(f"{text}    # {comment}" if isinstance(comment, str) else text)
    for section, items in d.sections.items():
        written = any(not comment.startswith("= default") for _, _, comment in items)
        lines += ["", f"{section}:" if written else f"# {section}: every derived value equals the default"]
        for key, value, comment in items:
            if comment.startswith("= default"):
                lines.append(f"  # {key}: {_flow(value)}    # {comment}")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f"  # {comment}")
                lines.append(f"  {key}:")
                lines += [f"    - {_flow(v)}" for v in value]
            else:
                lines.append(f"  {key}: {_flow(value)}    # {comment}")
    if d.notes:
        lines += ["", *[f"# {note}" for note in d.notes]]
    return "\n".join(lines) + "\n"


def init(
    data: Path,
    target: str,
    event_time: str | None = None,
    task: str | None = None,
    out: Path | None = None,
    id_column: str | None = None,
) -> tuple[Path, Path]:
    """Write ``out/pipeline.yaml`` and ``out/expectations.json``; return their paths."""
    import great_expectations as gx

    data = data.resolve()
    name = _slug(data.stem)
    out = (out or Path.cwd() / f"{name}-mlops").resolve()
    df = read_data(data)
    contract, derived, exps, _ = derive(df, target, event_time, task, name=name, id_column=id_column)
    out.mkdir(parents=True, exist_ok=True)
    try:  # beside or under the config: relative, so the folder can move as a whole
        data_path = str(data.relative_to(out))
    except ValueError:
        data_path = str(data)
    suite = gx.ExpectationSuite(name=name, expectations=exps)
    doc: dict[str, Any] = json.loads(json.dumps(suite.to_json_dict(), default=str))
    doc["meta"] = {
        **(doc.get("meta") or {}),
        "written_by": f"mlops init --data {data.name} --target {target}",
        "severity_policy": {
            "critical": "the whole batch goes to quarantine, nothing is published",
            "row": "only the offending rows go to quarantine; the clean rows are published with a warning",
        },
    }
    doc["notes"] = "Derived from the data by mlops init: every bound says in meta.why how; REVIEW them."
    for e in doc["expectations"]:
        e.pop("id", None)
        e["severity"] = "critical" if e["meta"]["severity"] == "critical" else "warning"
    yaml_path, suite_path = out / "pipeline.yaml", out / "expectations.json"
    yaml_path.write_text(render_yaml(contract, derived, data_path, data), encoding="utf-8")
    suite_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return yaml_path, suite_path


def main(argv: list[str] | None = None, prog: str = "mlops init") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CSV or Parquet file")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument(
        "--event-time", default=None, help="timestamp column batches are cut on (default: detected)"
    )
    parser.add_argument("--task", choices=["classification", "regression"], default=None)
    parser.add_argument("--id", dest="id_column", default=None, help="unique id column (default: detected)")
    parser.add_argument("--out", type=Path, default=None, help="folder to write (default: ./<name>-mlops)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"mlops init: no such file: {args.data}")
        return 2
    yaml_path, suite_path = init(args.data, args.target, args.event_time, args.task, args.out, args.id_column)
    print(f"wrote {yaml_path}\nwrote {suite_path}")
    print(f"review the REVIEW lines, then: MLOPS_CONFIG={yaml_path} mlops config check")
    return 0
