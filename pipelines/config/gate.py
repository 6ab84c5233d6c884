"""The evaluation gate a candidate must pass before it becomes ``@challenger`` (section ``gate``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.config.base import Section


class TaskGate(Section):
    """Absolute thresholds for one kind of target (the gate picks the contract's task)."""

    primary_metric: str = Field(description="Compared with the champion, overall and per slice.")
    absolute: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> bound: a minimum for higher-is-better metrics (roc_auc, r2...), "
        "a maximum for lower-is-better ones (log_loss, rmse...).",
    )


class BehaviouralCheck(Section):
    """A model behaviour test: perturb one feature on holdout rows, measure the prediction shift.

    Judged against its own uncertainty (the standard error of the mean shift over the sampled
    rows), never on the point estimate alone:

    invariance: fails only when the mean |shift| is *significantly* above ``tolerance``;
    directional: fails only when the mean shift is *significantly* beyond ``tolerance`` against
    ``expect``. ``tolerance`` is in prediction units (probability points for a classifier, target
    units for a regressor) and must cover what an equally good retrain may do: a weak effect's
    sign differs between seeds of the same pipeline (issue 12 measured -0.017 vs +0.015 for
    precip +0.2 between two seeds).
    """

    name: str
    kind: Literal["invariance", "directional"]
    column: str = Field(description="A feature of the dataset contract.")
    op: Literal["add", "multiply", "set"]
    value: float | str
    expect: Literal["increase", "decrease"] | None = Field(
        default=None, description="Directional checks only."
    )
    tolerance: float = Field(
        default=0.01,
        ge=0,
        description="In prediction units (probability for classification, target units for regression).",
    )
    sample_rows: int = Field(default=2000, ge=50)

    @model_validator(mode="after")
    def _expect_matches_kind(self) -> BehaviouralCheck:
        if self.kind == "directional" and self.expect is None:
            raise ValueError(f"directional check {self.name!r} needs expect: increase|decrease")
        if self.kind == "invariance" and self.expect is not None:
            raise ValueError(f"invariance check {self.name!r} takes no expect")
        return self


class GateConfig(Section):
    """The evaluation gate: absolute bars, then paired tests against ``@champion`` on the same rows.

    Comparisons (overall and per slice) and behavioural checks are *harm* tests: a criterion fails
    only when the evidence shows the candidate worse than the champion by more than its margin
    (one-sided p < alpha after multiple-comparison control), never because a noisy point estimate
    crossed a line. Statistics: DeLong's paired AUC for ``roc_auc``, a seeded paired bootstrap for
    every other metric (R², MAE, log loss...).

    Multiple comparisons: Holm, over every statistical criterion of one evaluation (overall,
    every gated slice, every behavioural check). The gate rejects when *any* of them fails, so the
    error to bound is the chance of at least one false failure (the family-wise error rate), which
    is what Holm controls: at most ``alpha`` per candidate when every true effect sits exactly at
    its margin (and far less for a truly equal retrain). Benjamini–Hochberg controls the share of
    false discoveries among many acted-on discoveries, the wrong quantity for a veto, and assumes
    positive dependence; slices of two columns (carrier, origin) overlap, and Holm needs no
    assumption on dependence.
    """

    classification: TaskGate = Field(
        default_factory=lambda: TaskGate(primary_metric="roc_auc", absolute={"roc_auc": 0.60})
    )
    regression: TaskGate = Field(default_factory=lambda: TaskGate(primary_metric="r2", absolute={"r2": 0.05}))
    max_regression: float = Field(
        default=0.01,
        ge=0,
        description="Non-inferiority margin, in units of the primary metric (AUC points, R²...): the "
        "candidate fails only when significantly worse than the champion by more than this.",
    )
    slice_tolerance: float = Field(
        default=0.03,
        ge=0,
        description="The same margin per slice group (units of the primary metric); wider than the "
        "overall one because a slice's own estimate is noisier and a small loss there is tolerable.",
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Family-wise error rate of the statistical criteria (one-sided, Holm-adjusted).",
    )
    bootstrap_resamples: int = Field(
        default=1000,
        ge=100,
        description="Paired bootstrap resamples for metrics without a closed-form variance (seeded).",
    )
    max_latency_ratio: float = Field(
        default=3.0,
        gt=1,
        description="Candidate's predict time per request may be at most this many times the "
        "champion's (best of interleaved repeats on the same rows) ...",
    )
    latency_min_delta_ms: float = Field(
        default=20.0,
        ge=0,
        description="... unless it is slower by less than this (ms per call): timer noise and a few "
        "more trees must not decide.",
    )
    latency_rows: int = Field(
        default=1,
        ge=1,
        description="Rows per timed predict call. 1 = a single request, as the gateway serves it: "
        "measured on 1000-row batches, an equally good retrain that early-stopped later (3x the "
        "trees) was 3.1x slower than its champion and would have been rejected (issue 12).",
    )
    latency_repeats: int = Field(default=7, ge=1, description="Timed calls per model (interleaved).")
    slice_min_rows: int = Field(
        default=300, ge=1, description="Smaller slices of the holdout are reported, not gated."
    )
    behavioural: list[BehaviouralCheck] = Field(default_factory=list)
    min_behavioural_checks: int = Field(
        default=2,
        ge=0,
        description="Fewer configured behavioural checks fail the gate: a model nobody stated an "
        "expected behaviour for is not released by default (set 0 only knowingly).",
    )

    def for_task(self, task: str) -> TaskGate:
        return self.classification if task == "classification" else self.regression
