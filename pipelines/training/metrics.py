"""The metric catalogue: how each metric is computed and which direction is better.

The gate reads directions from here, so a threshold in config is a minimum for
higher-is-better metrics and a maximum for the others, without per-metric code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from pipelines.training.errors import TrainingConfigError

Scorer = Callable[[np.ndarray, np.ndarray], float]


def _brier_skill(y: np.ndarray, p: np.ndarray) -> float:
    """1 - Brier / Brier of always predicting the base rate: > 0 means better than no model."""
    base = float(np.mean(y))
    ref = base * (1 - base)
    return float("nan") if ref == 0 else 1.0 - float(brier_score_loss(y, p)) / ref


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    fn: Scorer
    needs_both_classes: bool = False


CLASSIFICATION: dict[str, MetricSpec] = {
    m.name: m
    for m in [
        MetricSpec("roc_auc", True, lambda y, p: float(roc_auc_score(y, p)), needs_both_classes=True),
        MetricSpec(
            "average_precision",
            True,
            lambda y, p: float(average_precision_score(y, p)),
            needs_both_classes=True,
        ),
        MetricSpec(
            "log_loss", False, lambda y, p: float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
        ),
        MetricSpec("brier", False, lambda y, p: float(brier_score_loss(y, p))),
        MetricSpec("brier_skill", True, _brier_skill, needs_both_classes=True),
        MetricSpec("accuracy", True, lambda y, p: float(accuracy_score(y, (p >= 0.5).astype(int)))),
    ]
}
REGRESSION: dict[str, MetricSpec] = {
    m.name: m
    for m in [
        MetricSpec("r2", True, lambda y, p: float(r2_score(y, p))),
        MetricSpec("rmse", False, lambda y, p: float(root_mean_squared_error(y, p))),
        MetricSpec("mae", False, lambda y, p: float(mean_absolute_error(y, p))),
    ]
}


def catalogue(task: str) -> dict[str, MetricSpec]:
    return CLASSIFICATION if task == "classification" else REGRESSION


def spec(task: str, name: str) -> MetricSpec:
    """The metric's spec; unknown names fail loudly (a typo in a gate threshold must not pass)."""
    specs = catalogue(task)
    if name not in specs:
        raise TrainingConfigError(f"unknown {task} metric {name!r}; known: {sorted(specs)}")
    return specs[name]


def compute(task: str, y: np.ndarray, scores: np.ndarray, names: list[str] | None = None) -> dict[str, float]:
    """Metrics of scores against labels; undefined ones (a single class) are left out."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype="float64")
    both = len(np.unique(y)) > 1
    out: dict[str, float] = {}
    for name, m in catalogue(task).items():
        if names is not None and name not in names:
            continue
        if m.needs_both_classes and not both:
            continue
        out[name] = m.fn(y, scores)
    return out


def improvement(task: str, name: str, candidate: float, reference: float) -> float:
    """candidate - reference, signed so that positive always means 'candidate is better'."""
    diff = candidate - reference
    return diff if spec(task, name).higher_is_better else -diff
