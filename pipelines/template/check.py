"""``mlops config check``: can each stage act with this config on this data? Said up front, per stage.

A template whose stages go inert silently is worse than one that fails: the loop runs, the
summary looks green, and the retrain policy never fires because every window is smaller than
``monitoring.min_window_rows``. This module reads the configured source once (the landed
schema, cut into the configured batches), measures what every stage's thresholds are compared
with (rows per batch, labelled rows, slice sizes, the target's scale) and reports, for each
stage, one of:

* ``ok`` — it can act;
* ``warn`` — it can run but can never decide something it exists to decide (an *inert* stage),
  or the data needs a look (rows outside every batch, an ambiguous timestamp convention);
* ``error`` — a contradiction: unknown columns, a margin in the wrong units for its metric, an
  unknown metric or zone, a gate no candidate can ever pass.

Every reason names the setting, its value and the figure it was compared with.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from pipelines.config import Settings
from pipelines.core.period_ids import check_batch_id
from pipelines.core.periods import batch_ids

Level = Literal["ok", "warn", "error"]
STAGES = ("data", "quality", "training", "gate", "serving", "canary", "monitoring", "retrain", "schedule")
_RANK = {"ok": 0, "warn": 1, "error": 2}

#: Metrics whose values live on a fixed scale (probabilities, AUC, R²): margins must be below 1.
UNIT_FREE = {"roc_auc", "average_precision", "brier", "brier_skill", "accuracy", "log_loss", "r2"}
#: Metrics in the target's own units: a margin must be read against the target's spread.
TARGET_UNITS = {"mae", "rmse"}
KNOWN_METRICS = {
    "classification": {"roc_auc", "average_precision", "log_loss", "brier", "brier_skill", "accuracy"},
    "regression": {"r2", "rmse", "mae"},
}
#: A target-unit margin below this share of the target's standard deviation is a unit mistake
#: (an AUC-sized 0.01 on a target whose spread is 77): no retrain is ever that close to its champion.
MIN_MARGIN_STD_SHARE = 0.001
PERIOD_DAYS = {"month": 30.4, "week": 7.0, "day": 1.0}
_AWARE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})\s*$")


@dataclass(frozen=True)
class Finding:
    stage: str
    level: Level
    reason: str


@dataclass
class DataProfile:
    """What the thresholds are compared with, measured on the configured batches of the source."""

    rows: dict[str, int]  # batch id -> rows
    labelled: dict[str, int]  # batch id -> rows with a label
    minority: dict[str, int]  # classification: batch id -> rows of the rarer class
    largest_slice: dict[str, int]  # slice column -> largest group in any one batch
    target_std: float | None
    target_range: tuple[float, float] | None
    naive_share: float  # share of sampled event times written without a zone
    outside_rows: int
    outside_detail: str
    missing_batches: list[str] = field(default_factory=list)

    @property
    def largest(self) -> int:
        return max(self.rows.values(), default=0)

    @property
    def smallest(self) -> int:
        return min(self.rows.values(), default=0)


def profile_data(settings: Settings) -> DataProfile:
    """Read the source once (the landing cache) and measure it per configured batch."""
    from pipelines.data.landing import outside_batches, source_frame

    c = settings.dataset
    df = source_frame(settings)
    ids = batch_ids(df[c.event_time], c.batch_frequency, c.event_timezone)
    configured = list(c.batches) or sorted(ids.dropna().unique())
    inside = ids.isin(configured)
    frame, bids = df[inside], ids[inside]
    rows = {str(b): int(n) for b, n in bids.value_counts().items()}
    y = frame[c.target.name]
    labelled = {str(b): int(n) for b, n in y.notna().groupby(bids).sum().items()}
    minority: dict[str, int] = {}
    if c.target.task == "classification":
        counts = y.dropna().groupby(bids[y.notna()]).value_counts().unstack(fill_value=0)
        minority = {str(b): int(r.min()) if len(r) > 1 else 0 for b, r in counts.iterrows()}
    largest_slice = {
        col: int(frame.groupby([bids, frame[col]]).size().max()) if len(frame) else 0
        for col in c.slice_columns
        if col in frame.columns
    }
    numeric_y = pd.to_numeric(y, errors="coerce").dropna()
    target_std = float(numeric_y.std()) if len(numeric_y) > 1 else None
    target_range = (float(numeric_y.min()), float(numeric_y.max())) if len(numeric_y) else None
    raw = df[c.event_time].dropna().astype(str).head(2000)
    naive_share = float((~raw.str.contains(_AWARE)).mean()) if len(raw) else 0.0
    outside = outside_batches(settings, ids)
    return DataProfile(
        rows=rows,
        labelled=labelled,
        minority=minority,
        largest_slice=largest_slice,
        target_std=target_std,
        target_range=target_range,
        naive_share=naive_share,
        outside_rows=outside.rows,
        outside_detail=outside.summary() if outside.rows else "",
        missing_batches=[b for b in configured if b not in rows],
    )


def _window_sum(values: dict[str, int], order: list[str], n: int) -> int:
    """Largest sum of ``n`` consecutive batches (the most a training window can hold)."""
    seq = [values.get(b, 0) for b in order]
    if len(seq) < n:
        return sum(seq)
    return max(sum(seq[i : i + n]) for i in range(len(seq) - n + 1))


def _margin_findings(
    stage: str, setting: str, value: float, metric: str, p: DataProfile
) -> Iterable[Finding]:
    """A margin of ``metric`` must be in the metric's units (points of a bounded score, or target units)."""
    if metric in UNIT_FREE and value >= 1:
        yield Finding(stage, "error", f"{setting} {value:g} is in {metric} points, whose whole range is <= 1")
    if metric in TARGET_UNITS and p.target_std:
        share = value / p.target_std
        if share < MIN_MARGIN_STD_SHARE:
            yield Finding(
                stage,
                "error",
                f"{setting} {value:g} is in {metric} units (target std {p.target_std:.3g}): "
                f"{share:.2g} std is a probability/AUC-sized margin on a target-unit metric",
            )


def check(settings: Settings, profile: DataProfile | None = None) -> list[Finding]:
    """Every finding, stage by stage (a stage with none is ``ok``)."""
    c = settings.dataset
    out: list[Finding] = []
    add = out.append
    features = set(c.features.all)

    # --- data: the contract against the source ----------------------------------------------------
    try:
        ZoneInfo(c.event_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        add(Finding("data", "error", f"dataset.event_timezone {c.event_timezone!r} is not an IANA zone"))
        return out
    for b in c.batches:
        try:
            check_batch_id(b, c.batch_frequency)
        except ValueError as exc:
            add(Finding("data", "error", f"dataset.batches: {exc}"))
    unknown_slices = sorted(set(c.slice_columns) - set(c.landed_columns))
    if unknown_slices:
        add(Finding("data", "error", f"dataset.slice_columns {unknown_slices} are not landed columns"))
    if any(f.level == "error" for f in out):
        return out
    if profile is None:
        try:
            profile = profile_data(settings)
        except Exception as exc:  # the source or the contract's columns: the reason is the finding
            add(Finding("data", "error", f"cannot read the source into the contract: {exc}"))
            return out
    p = profile
    order = list(c.batches) or sorted(p.rows)
    if p.missing_batches:
        add(Finding("data", "error", f"configured batches with no source rows: {p.missing_batches}"))
    if p.outside_rows:
        add(Finding("data", "warn", p.outside_detail))
    if p.naive_share > 0 and c.event_timezone != "UTC" and "naive_timestamps" not in c.model_fields_set:
        add(
            Finding(
                "data",
                "warn",
                f"{p.naive_share:.0%} of {c.event_time} values carry no zone and are read as UTC "
                f"(dataset.naive_timestamps default) while batches are cut in {c.event_timezone}: "
                "state naive_timestamps: utc, or local if they are wall-clock times",
            )
        )

    # --- quality --------------------------------------------------------------------------------
    out += _quality_findings(settings, p)

    # --- training ---------------------------------------------------------------------------------
    t = settings.training
    w = t.window_batches
    if len(order) < w + 1:
        add(
            Finding(
                "training",
                "error",
                f"training.window_batches {w} + 1 holdout > {len(order)} configured batches",
            )
        )
    else:
        most = _window_sum(p.labelled, order, w)
        if t.min_rows > most:
            add(
                Finding(
                    "training",
                    "warn",
                    f"training can never act: min_rows {t.min_rows} > {most} labelled rows in the "
                    f"largest {w}-batch window",
                )
            )
        biggest_holdout = max((p.labelled.get(b, 0) for b in order[w:]), default=0)
        if t.min_holdout_rows > biggest_holdout:
            add(
                Finding(
                    "training",
                    "warn",
                    f"training can never act: min_holdout_rows {t.min_holdout_rows} > largest "
                    f"labelled batch {biggest_holdout}",
                )
            )
        if c.target.task == "classification" and p.minority:
            rare = _window_sum(p.minority, order, w)
            if t.min_class_rows > rare:
                add(
                    Finding(
                        "training",
                        "warn",
                        f"training can never act: min_class_rows {t.min_class_rows} > {rare} rows of "
                        f"the rarer class in the largest {w}-batch window",
                    )
                )
    if t.estimator:
        module, _, name = t.estimator.rpartition(".")
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            add(Finding("training", "error", f"training.estimator {t.estimator!r} cannot be imported"))

    # --- gate ---------------------------------------------------------------------------------------
    g = settings.gate
    task_gate = g.for_task(c.target.task)
    metric = task_gate.primary_metric
    if metric not in KNOWN_METRICS[c.target.task]:
        add(
            Finding(
                "gate",
                "error",
                f"gate.{c.target.task}.primary_metric {metric!r} is not a {c.target.task} metric "
                f"({sorted(KNOWN_METRICS[c.target.task])})",
            )
        )
    for name in task_gate.absolute:
        if name not in KNOWN_METRICS[c.target.task]:
            add(Finding("gate", "error", f"gate.{c.target.task}.absolute names unknown metric {name!r}"))
    out += _margin_findings("gate", "gate.max_regression", g.max_regression, metric, p)
    out += _margin_findings("gate", "gate.slice_tolerance", g.slice_tolerance, metric, p)
    if len(g.behavioural) < g.min_behavioural_checks:
        add(
            Finding(
                "gate",
                "error",
                f"no candidate can ever pass: {len(g.behavioural)} behavioural checks configured < "
                f"gate.min_behavioural_checks {g.min_behavioural_checks}",
            )
        )
    for bc in g.behavioural:
        if bc.column not in features:
            add(
                Finding(
                    "gate", "error", f"behavioural check {bc.name!r}: column {bc.column!r} is not a feature"
                )
            )
        if c.target.task == "classification" and bc.tolerance >= 1:
            add(
                Finding(
                    "gate",
                    "error",
                    f"behavioural check {bc.name!r}: tolerance {bc.tolerance:g} is in probability "
                    "points (classification), whose range is 1",
                )
            )
        if (
            c.target.task == "regression"
            and p.target_std
            and bc.tolerance / p.target_std < MIN_MARGIN_STD_SHARE
        ):
            add(
                Finding(
                    "gate",
                    "warn",
                    f"behavioural check {bc.name!r}: tolerance {bc.tolerance:g} is in target units "
                    f"(std {p.target_std:.3g}): any shift at all fails it",
                )
            )
    if c.slice_columns and p.largest_slice:
        biggest = max(p.largest_slice.values())
        if g.slice_min_rows > biggest:
            add(
                Finding(
                    "gate",
                    "warn",
                    f"no slice is ever gated: slice_min_rows {g.slice_min_rows} > largest slice group "
                    f"in a batch {biggest} ({', '.join(f'{k}: {v}' for k, v in p.largest_slice.items())})",
                )
            )

    # --- serving ------------------------------------------------------------------------------------
    s = settings.serving
    unknown = sorted(set(s.non_null_features) - features)
    if unknown:
        add(Finding("serving", "error", f"serving.non_null_features {unknown} are not features"))
    if c.target.task == "regression" and p.target_range and s.prediction_buckets:
        lo, hi = p.target_range
        top = max(s.prediction_buckets)
        if top < lo + 0.5 * (hi - lo):
            add(
                Finding(
                    "serving",
                    "warn",
                    f"serving.prediction_buckets end at {top:g} (probability-sized) while "
                    f"{c.target.name} spans {lo:.3g}..{hi:.3g}: the /metrics histogram is one bucket",
                )
            )

    # --- canary ---------------------------------------------------------------------------------------
    k = settings.canary
    if k.quality_min_labels > p.largest:
        add(
            Finding(
                "canary",
                "warn",
                f"canary quality is never judged: quality_min_labels {k.quality_min_labels} > largest "
                f"batch {p.largest} (only errors, latency and prediction shift decide)",
            )
        )
    if k.quality_max_drop >= 1:
        unit = "AUC points" if c.target.task == "classification" else "a relative MAE increase"
        add(Finding("canary", "error", f"canary.quality_max_drop {k.quality_max_drop:g} is in {unit} (< 1)"))

    # --- monitoring -----------------------------------------------------------------------------------
    m = settings.monitoring
    unknown_imp = sorted(set(m.important_features) - features)
    if unknown_imp:
        add(Finding("monitoring", "error", f"monitoring.important_features {unknown_imp} are not features"))
    unknown_tests = sorted(set(m.column_tests) - features)
    if unknown_tests:
        add(Finding("monitoring", "error", f"monitoring.column_tests {unknown_tests} are not features"))
    perf_metric = m.performance_metric or metric
    if perf_metric not in KNOWN_METRICS[c.target.task]:
        add(Finding("monitoring", "error", f"monitoring.performance_metric {perf_metric!r} is unknown"))
    out += _margin_findings(
        "monitoring", "monitoring.max_performance_drop", m.max_performance_drop, perf_metric, p
    )
    out += _margin_findings(
        "monitoring", "monitoring.severe_performance_drop", m.severe_performance_drop, perf_metric, p
    )
    decides = m.min_window_rows <= p.largest
    if not decides:
        add(
            Finding(
                "monitoring",
                "warn",
                f"monitoring can never decide: min_window_rows {m.min_window_rows} > largest batch "
                f"{p.largest}",
            )
        )
    mature_share = max(0.0, 1 - m.label_delay_days / PERIOD_DAYS[c.batch_frequency])
    mature = int(max(p.labelled.values(), default=0) * mature_share)
    judges_performance = m.min_mature_labels <= mature
    if decides and not judges_performance:
        why = (
            f"label_delay_days {m.label_delay_days} >= one {c.batch_frequency}"
            if mature_share == 0
            else f"min_mature_labels {m.min_mature_labels} > ~{mature} labels matured by a window's end "
            f"(largest batch, label_delay_days {m.label_delay_days})"
        )
        add(Finding("monitoring", "warn", f"performance is never judged (drift only): {why}"))

    # --- retrain: the policy acts only on windows monitoring can judge --------------------------------
    if not decides:
        add(
            Finding(
                "retrain", "warn", "the retrain policy never fires: every window is no_decision (monitoring)"
            )
        )
    elif m.hysteresis_m > len(order) - w - 1 and len(order) > w + 1:
        add(
            Finding(
                "retrain",
                "warn",
                f"hysteresis needs {m.hysteresis_n} of {m.hysteresis_m} judged windows but only "
                f"{len(order) - w - 1} batches follow the bootstrap: only a severe violation can fire",
            )
        )

    # --- schedule ---------------------------------------------------------------------------------------
    if not c.batches:
        add(
            Finding(
                "schedule",
                "warn",
                "dataset.batches is empty: every period in the source is a batch, and the DAGs start "
                "at 2000-01-01 (list the batches to anchor the schedule)",
            )
        )
    return out


def _quality_findings(settings: Settings, p: DataProfile) -> list[Finding]:
    import json

    from pipelines.quality import load_suite

    c = settings.dataset
    path = settings.resolve(c.expectation_suite)
    try:  # the quality gate's own suite rules (severity, columns, parameters, names)
        load_suite(settings)
    except Exception as exc:  # a suite the gate refuses: every batch would fail to validate
        return [Finding("quality", "error", " ".join(str(exc).split()))]
    suite = json.loads(path.read_text(encoding="utf-8"))
    found: list[Finding] = []
    landed = set(c.landed_columns)
    for exp in suite.get("expectations", []):
        kwargs = exp.get("kwargs", {})
        where = f"{path.name}: {exp.get('type')}"
        for key in ("column", "column_A", "column_B"):
            col = kwargs.get(key)
            if isinstance(col, str) and col not in landed:
                found.append(Finding("quality", "error", f"{where} names unknown column {col!r}"))
        if (exp.get("meta") or {}).get("severity") not in {"critical", "row"}:
            found.append(Finding("quality", "error", f"{where} has no meta.severity (critical|row)"))
        if exp.get("type") == "expect_table_row_count_to_be_between":
            lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
            if isinstance(lo, int | float) and p.rows and lo > p.smallest:
                small = [b for b, n in p.rows.items() if n < lo]
                found.append(
                    Finding(
                        "quality",
                        "warn",
                        f"{where}: min_value {lo} rejects batches {small} (smallest has {p.smallest} rows)",
                    )
                )
            if isinstance(hi, int | float) and p.rows and hi < p.largest:
                big = [b for b, n in p.rows.items() if n > hi]
                found.append(
                    Finding(
                        "quality", "warn", f"{where}: max_value {hi} rejects batches {big} ({p.largest} rows)"
                    )
                )
    return found


def stage_lines(findings: list[Finding]) -> list[tuple[str, Level, str]]:
    """One ``(stage, level, reasons)`` per stage, worst level first in its reasons."""
    lines: list[tuple[str, Level, str]] = []
    for stage in STAGES:
        mine = sorted((f for f in findings if f.stage == stage), key=lambda f: -_RANK[f.level])
        if not mine:
            lines.append((stage, "ok", _OK[stage]))
            continue
        lines.append((stage, mine[0].level, "; ".join(f.reason for f in mine)))
    return lines


_OK = {
    "data": "every configured batch has rows; no row outside them",
    "quality": "the suite passes the gate's own checks (severity, columns, parameters)",
    "training": "enough labelled rows for a window and a holdout",
    "gate": "metric, margins and behavioural checks fit the task",
    "serving": "required features are features",
    "canary": "labels enough to judge quality",
    "monitoring": "windows large enough to decide",
    "retrain": "the policy can fire",
    "schedule": "DAGs run once per batch period from the first batch",
}


def exit_code(findings: list[Finding], strict: bool = False) -> int:
    """1 on any contradiction (or, with ``strict``, any inert stage); else 0."""
    worst = max((_RANK[f.level] for f in findings), default=0)
    return 1 if worst == 2 or (strict and worst == 1) else 0


def report(settings: Settings, strict: bool = False) -> tuple[list[str], int]:
    """The printed lines (``<stage>: ok|warn|error: <reason>``) and the exit code."""
    findings = check(settings)
    lines = [f"{stage}: {level}: {reason}" for stage, level, reason in stage_lines(findings)]
    return lines, exit_code(findings, strict)
