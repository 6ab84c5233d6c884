"""What the monitoring step measured for one window: per-column drift, performance, the result.

Plain data, no I/O: the Evidently run (:mod:`pipelines.monitoring.monitor`) fills a
:class:`WindowResult`, ``result.json`` stores it, and the retrain policy
(:mod:`pipelines.monitoring.policy`) reads it. Kept apart from the policy so the policy module
holds only the rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

WindowStatus = Literal["ok", "insufficient_data", "error"]


# Evidently stattests whose score is a p-value (drift when p < threshold); the others are
# distances (drift when score >= threshold). Only distances have a meaningful "x threshold".
P_VALUE_METHODS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "fisher_exact",
        "g_test",
        "t_test",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "epps_singleton",
        "es",
        "perc_text_content_drift",
    }
)


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's drift verdict for one column; ``score`` is None when it was not computed."""

    column: str
    method: str
    threshold: float
    score: float | None
    detected: bool | None
    note: str = ""

    @property
    def severity(self) -> float | None:
        """Score as a multiple of its threshold (distance methods only)."""
        if self.score is None or self.method in P_VALUE_METHODS or self.threshold <= 0:
            return None
        return self.score / self.threshold

    def describe(self) -> str:
        if self.score is None:
            return f"{self.column}: not computed ({self.note or 'no data'})"
        op = "<" if self.method in P_VALUE_METHODS else ">="
        verdict = "drift" if self.detected else "no drift"
        return f"{self.column} {self.method}={self.score:.4g} ({verdict}; drift when {op} {self.threshold:g})"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnDrift:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Performance:
    """Quality of the champion's served predictions on labels matured by the as-of time."""

    metric: str
    higher_is_better: bool
    value: float | None
    baseline: float | None
    n_labels: int
    n_immature: int
    note: str = ""

    @property
    def drop(self) -> float | None:
        """Loss against the baseline (positive = worse), whatever the metric's direction."""
        if self.value is None or self.baseline is None:
            return None
        return self.baseline - self.value if self.higher_is_better else self.value - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Performance:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class WindowResult:
    """Everything the monitoring step measured for one window (what the policy reads)."""

    window: str
    ordinal: int
    as_of: str
    status: WindowStatus
    reason: str = ""
    model_version: str | None = None
    reference_key: str = ""
    reference_batches: list[str] = field(default_factory=list)
    n_predictions: int = 0
    important_features: list[str] = field(default_factory=list)
    feature_drift: dict[str, ColumnDrift] = field(default_factory=dict)
    drift_share: float | None = None
    prediction_drift: ColumnDrift | None = None
    performance: Performance | None = None
    data_quality: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowResult:
        data = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        data["feature_drift"] = {
            k: ColumnDrift.from_dict(v) for k, v in (d.get("feature_drift") or {}).items()
        }
        if d.get("prediction_drift"):
            data["prediction_drift"] = ColumnDrift.from_dict(d["prediction_drift"])
        if d.get("performance"):
            data["performance"] = Performance.from_dict(d["performance"])
        return cls(**data)
