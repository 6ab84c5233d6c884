"""The Evidently reports of a window (current API only: ``evidently.Report`` and ``evidently.metrics``).

Why this configuration and not ``DataDriftPreset``: the preset computes every
column's drift about three times and renders every widget, ~6-7 s per month here.
We ask Evidently once per column, for what the decision needs:

* ``DriftedColumnsCount`` over all features with per-column methods/thresholds — the
  drift share for the dashboard, computed without per-column widgets;
* ``ValueDrift`` (score + Evidently's own drift test) only for the important features
  and the prediction, the columns the policy reads and the dashboard plots;
* data quality as ``RowCount`` + ``MissingValueCount`` per feature (current vs reference);
* a separate performance report on the matured labels (``RocAuc``/... or ``RMSE``/...).

Both inputs are sampled with a fixed seed (``monitoring.*_sample_rows``); distance
tests on 20k rows move by about 0.01 between resamples, a tenth of their threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import DriftTest, Settings
from pipelines.monitoring.evidence import ColumnDrift

PREDICTION = "prediction"
TARGET = "target"

# Gate metric name -> Evidently metric class name (see evidently.metrics).
CLASSIFICATION_METRICS = {"roc_auc": "RocAuc", "log_loss": "LogLoss", "accuracy": "Accuracy"}
REGRESSION_METRICS = {"rmse": "RMSE", "mae": "MAE", "r2": "R2Score", "mape": "MAPE"}


@dataclass(frozen=True)
class DriftPlan:
    """Which test each column gets; the same plan feeds Evidently and the numpy floor benchmark."""

    tests: dict[str, DriftTest]  # feature -> test
    numeric: list[str]
    categorical: list[str]
    important: list[str]
    prediction_test: DriftTest | None
    skipped: dict[str, str]  # feature -> why no drift was computed


def drift_plan(
    settings: Settings, current: pd.DataFrame, reference: pd.DataFrame, important: list[str]
) -> DriftPlan:
    """Per-column tests from the config; columns empty on either side are skipped with the reason."""
    cfg, feats = settings.monitoring, settings.dataset.features
    tests: dict[str, DriftTest] = {}
    skipped: dict[str, str] = {}
    for col in feats.all:
        if current[col].notna().sum() == 0 or reference[col].notna().sum() == 0:
            side = "window" if current[col].notna().sum() == 0 else "reference"
            skipped[col] = f"no non-null values in the {side}"
            continue
        default = cfg.numerical_test if col in feats.numeric else cfg.categorical_test
        tests[col] = cfg.column_tests.get(col, default)
    has_pred = PREDICTION in current and PREDICTION in reference and reference[PREDICTION].notna().any()
    return DriftPlan(
        tests=tests,
        numeric=[c for c in feats.numeric if c in tests],
        categorical=[c for c in feats.categorical if c in tests],
        important=[c for c in important if c in tests],
        prediction_test=cfg.prediction_test if has_pred else None,
        skipped=skipped,
    )


def sample(df: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return (df.sample(rows, random_state=seed) if len(df) > rows else df).reset_index(drop=True)


def run_drift_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    plan: DriftPlan,
    *,
    timestamp: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    quality: bool = True,
) -> Any:
    """One Evidently run: drift share, per-column drift of important features and prediction, quality."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, MissingValueCount, RowCount, ValueDrift

    cols = [*plan.numeric, *plan.categorical]
    num = list(plan.numeric)
    if plan.prediction_test is not None:
        cols.append(PREDICTION)
        num.append(PREDICTION)
    definition = DataDefinition(numerical_columns=num, categorical_columns=list(plan.categorical))
    cur = Dataset.from_pandas(current[cols], data_definition=definition)
    ref = Dataset.from_pandas(reference[cols], data_definition=definition)
    features = [*plan.numeric, *plan.categorical]
    metrics: list[Any] = [
        DriftedColumnsCount(
            columns=features,
            per_column_method={c: plan.tests[c].method for c in features},
            per_column_threshold={c: plan.tests[c].threshold for c in features},
        )
    ]
    metrics += [
        ValueDrift(column=c, method=plan.tests[c].method, threshold=plan.tests[c].threshold)
        for c in plan.important
    ]
    if plan.prediction_test is not None:
        metrics.append(
            ValueDrift(
                column=PREDICTION,
                method=plan.prediction_test.method,
                threshold=plan.prediction_test.threshold,
            )
        )
    if quality:
        metrics += [RowCount(), *(MissingValueCount(column=c) for c in features)]
    report = Report(metrics, include_tests=True)
    return report.run(cur, ref, timestamp=timestamp, metadata=metadata or {}, tags=tags or [])


def drift_figures(snapshot: Any, plan: DriftPlan) -> dict[str, Any]:
    """Scores and Evidently's own drift verdicts out of a drift snapshot."""
    d = snapshot.dict()
    status = {
        t["metric_config"]["metric_id"]: str(getattr(t["status"], "value", t["status"])) for t in d["tests"]
    }
    out: dict[str, Any] = {"columns": {}, "missing": {}, "rows": None, "drift_share": None, "drifted": None}
    for m in d["metrics"]:
        kind = m["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            out["drift_share"] = float(m["value"]["share"])
            out["drifted"] = int(m["value"]["count"])
        elif kind == "ValueDrift":
            col = m["config"]["column"]
            test = status.get(m["id"])
            out["columns"][col] = ColumnDrift(
                column=col,
                method=str(m["config"]["method"]),
                threshold=float(m["config"]["threshold"]),
                score=float(m["value"]),
                detected=None if test is None else test == "FAIL",
                note="" if test is not None else "Evidently reported no drift test",
            )
        elif kind == "RowCount":
            out["rows"] = int(m["value"])
        elif kind == "MissingValueCount":
            out["missing"][m["config"]["column"]] = float(m["value"]["share"])
    for col, reason in plan.skipped.items():
        spec = plan.tests.get(col)
        method, threshold = (spec.method, spec.threshold) if spec else ("-", 0.0)
        out["columns"].setdefault(col, ColumnDrift(col, method, threshold, None, None, reason))
    return out


def metric_spec(settings: Settings, name: str) -> tuple[str, bool]:
    """(Evidently metric class, higher is better) for a gate metric name; raises if Evidently lacks it."""
    from pipelines import training  # its public API (``metrics`` is exported as a module)

    task = settings.dataset.target.task
    table = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if name not in table:
        raise ValueError(
            f"performance metric {name!r} has no Evidently equivalent for {task} "
            f"(supported: {sorted(table)}); set monitoring.performance_metric"
        )
    return table[name], training.metrics.spec(task, name).higher_is_better


def run_performance_report(
    settings: Settings,
    labelled: pd.DataFrame,
    metric: str,
    *,
    timestamp: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> tuple[Any, float]:
    """Evidently quality metrics on matured labels; returns (snapshot, value of ``metric``)."""
    import evidently.metrics as em
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report

    evidently_name, _ = metric_spec(settings, metric)
    frame = pd.DataFrame(
        {TARGET: pd.to_numeric(labelled["label"]), PREDICTION: pd.to_numeric(labelled["prediction"])}
    )
    if settings.dataset.target.task == "classification":
        frame[TARGET] = frame[TARGET].round().astype(int)
        definition = DataDefinition(
            numerical_columns=[PREDICTION],
            classification=[BinaryClassification(target=TARGET, prediction_probas=PREDICTION, pos_label=1)],
        )
    else:
        definition = DataDefinition(
            numerical_columns=[TARGET, PREDICTION],
            regression=[Regression(target=TARGET, prediction=PREDICTION)],
        )
    # The policy's metric only: each Evidently quality metric recomputes the task's curves.
    report = Report([getattr(em, evidently_name)()], include_tests=False)
    snap = report.run(
        Dataset.from_pandas(frame, data_definition=definition),
        None,
        timestamp=timestamp,
        metadata=metadata or {},
        tags=tags or [],
    )
    values = {m["config"]["type"].rsplit(":", 1)[-1]: m["value"] for m in snap.dict()["metrics"]}
    return snap, float(values[evidently_name])


def save_snapshot(snapshot: Any, folder: Path, name: str) -> dict[str, str]:
    """HTML for people, ``dumps()`` JSON for machines (round-trips with ``Snapshot.load``)."""
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / f"{name}.html"
    tmp = folder / f".{name}.html.tmp"
    snapshot.save_html(str(tmp))
    tmp.replace(html)
    js = folder / f"{name}.snapshot.json"
    tmp_js = folder / f".{name}.snapshot.json.tmp"
    tmp_js.write_text(snapshot.dumps())
    tmp_js.replace(js)
    return {f"{name}_html": str(html), f"{name}_snapshot": str(js)}
