"""Progressive delivery of a challenger (section ``canary``)."""

from __future__ import annotations

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
        description="KS distance the canary's predictions may differ by (a significant but "
        "smaller shift is reported, not failed: large samples make tiny shifts significant).",
    )
    shift_quality_margin: float = Field(
        default=0.1,
        ge=0,
        description="A material prediction shift is accepted once labelled quality rules out a "
        "loss larger than this (AUC points; relative MAE for regression) at quality_alpha.",
    )
    quality_min_labels: int = Field(
        default=200,
        ge=10,
        description="Labelled predictions per variant before model quality is compared.",
    )
    quality_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Significance of the quality comparison (strict: a step is re-analysed many times).",
    )
    quality_max_drop: float = Field(
        default=0.02,
        ge=0,
        description="Tolerated quality loss vs the champion: AUC points for classification, "
        "relative MAE increase for regression.",
    )
    quality_required: bool = Field(
        default=False,
        description="Hold a step (inconclusive) until quality can be judged; otherwise too few "
        "labels only means quality is reported as insufficient.",
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
