"""Progressive delivery of a challenger (section ``canary``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.config.base import Section


class CanaryConfig(Section):
    """Progressive delivery of a challenger: traffic steps, the analysis that judges each, fail-safes."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Canary traffic percentages, in order; the last should be 100.",
    )
    min_requests: int = Field(
        default=200, ge=1, description="Canary requests a step needs before it can be judged."
    )
    step_window_s: float = Field(
        default=60, ge=0, description="Minimum time each step is held before it is judged."
    )
    step_timeout_s: float = Field(
        default=900,
        gt=0,
        description="A step still inconclusive after this long fails safe (rollback).",
    )
    analysis_interval_s: float = Field(
        default=5, gt=0, description="Pause between re-analyses of an inconclusive step."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Canary request error rate above which it fails."
    )
    latency_p99_slo_ms: float = Field(
        default=50, gt=0, description="Server-side p99 latency SLO per request of the canary."
    )
    latency_min_samples: int = Field(
        default=50, ge=1, description="Canary requests needed before the p99 is judged."
    )
    latency_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="An SLO breach fails the canary only if its share of requests over the SLO is "
        "significantly above the champion's (one-sided z-test): a slow host is not its fault.",
    )
    latency_max_ratio: float = Field(
        default=1.5,
        ge=1,
        description="An SLO breach is the canary's fault only if its p99 is also more than this many "
        "times the champion's (the minority variant has a heavier tail on a busy host).",
    )
    shift_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Significance of the two-sample KS test, canary vs champion predictions.",
    )
    shift_max_statistic: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="KS distance beyond which a significant shift of the canary's predictions is "
        "material (large samples make tiny shifts significant). A material shift is a warning, never "
        "a rollback on its own: it only raises the bar for quality (see quality_undecided).",
    )
    shift_max_psi: float = Field(
        default=0.25,
        gt=0,
        description="Population stability index (champion deciles) beyond which the shift is material "
        "too (0.25: the conventional 'major shift').",
    )
    quality_min_labels: int = Field(
        default=200,
        ge=10,
        description="Labelled rows (both variants, paired) below which quality is not tested at all.",
    )
    quality_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="The quality CI is at 1 - quality_alpha; each one-sided decision (non-inferior, "
        "worse) errs with probability <= quality_alpha / 2 per analysis (strict: a step is re-analysed "
        "many times).",
    )
    quality_max_drop: float = Field(
        default=0.02,
        ge=0,
        description="Non-inferiority margin: the quality loss vs the champion still tolerated. AUC "
        "points for classification, relative MAE increase for regression. A step passes when the CI "
        "rules out a loss of this size; fails when the canary is significantly worse and a loss of "
        "this size is not ruled out.",
    )
    quality_power: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Power of the minimum detectable effect written in each step's evidence: the "
        "smallest loss the labelled rows at hand detect with this probability, at quality_alpha / 2.",
    )
    quality_undecided: Literal["hold", "rollback", "promote_if_no_harm", "pool"] = Field(
        default="promote_if_no_harm",
        description="What a step does when quality cannot be decided (too few labels for the margin: "
        "the MDE exceeds quality_max_drop) and no more labels can come: 'hold' waits for labels "
        "until step_timeout_s, then rolls back (fail safe); 'rollback' rolls back as soon as the step "
        "is undecidable (its labels stopped growing after the step window, or the timeout); "
        "'promote_if_no_harm' (default) then passes quality if its point estimate of the loss is at "
        "most half the margin (the midpoint between 'equal' and 'worse by the margin', which "
        "balances the two errors when the data cannot separate them) and no material prediction "
        "shift was seen; with a shift it rolls back, since a model that predicts differently must "
        "prove its quality. Below quality_min_labels the estimate is too noisy to read: no evidence "
        "of harm, the other checks decide (unless shifted). Why not fail closed by default: the "
        "evaluation gate has already shown non-inferiority on a full holdout month; the canary's "
        "quality check guards against a live regression, and on small batches rolling back every "
        "undecided step rolls back equal models most of the time. 'pool' keeps the split instead and "
        "pools the labels of later batches into the release's paired evidence (which already spans "
        "the whole release), testing at a group-sequential boundary (quality_pool_max_batches) so "
        "that the repeated looks do not inflate either error; once quality_pool_max_batches batches "
        "are pooled (or at step_timeout_s) it settles by promote_if_no_harm's rule. The live "
        "stepping loop judges a release within one run and cannot bring another batch yet, so "
        "there 'pool' settles like promote_if_no_harm (at the pooled boundary); pooling across "
        "batches runs in judge_look for a caller that can (measured by "
        "benchmarks/decisions_canary.py on 720-row batches).",
    )
    quality_pool_max_batches: int = Field(
        default=6,
        ge=1,
        le=50,
        description="With quality_undecided 'pool': the most label batches a release pools, i.e. the "
        "planned looks K of the sequential design. Each batch look is tested at "
        "quality_alpha / (2K) per side (Bonferroni alpha spending: valid whatever the correlation "
        "of the pooled looks, so the release errs each way with probability <= quality_alpha / 2 "
        "over all K looks); the MDE and labels_for_margin in the evidence use that level too. "
        "6: at 720 labels a batch, a 0.02 AUC margin needs ~3-4 k labels.",
    )
    seed: int = 42
    precheck_rows: int = Field(
        default=200, ge=1, description="Rows of the newest published batch sent by the pre-rollout check."
    )
    replay_traffic: bool = Field(
        default=False,
        description="Drive each step with replayed traffic from the newest published batch "
        "(demo and tests); in production real callers supply it.",
    )
    replay_rate: float = Field(default=300, gt=0, description="Replay requests per second.")
    replay_concurrency: int = Field(default=4, ge=1)
    replay_label_delay_s: float = Field(
        default=0,
        ge=0,
        description="Wall-clock delay before replayed labels are fed back (the business-time "
        "delay is monitoring.label_delay_days).",
    )
