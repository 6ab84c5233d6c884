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

    invariance: mean |shift| must stay <= tolerance (a change that should not matter);
    directional: the mean shift must go the ``expect`` way, allowing ``tolerance`` against it.
    """

    name: str
    kind: Literal["invariance", "directional"]
    column: str = Field(description="A feature of the dataset contract.")
    op: Literal["add", "multiply", "set"]
    value: float | str
    expect: Literal["increase", "decrease"] | None = Field(
        default=None, description="Directional checks only."
    )
    tolerance: float = Field(default=0.01, ge=0, description="In prediction units (probability).")
    sample_rows: int = Field(default=2000, ge=50)

    @model_validator(mode="after")
    def _expect_matches_kind(self) -> BehaviouralCheck:
        if self.kind == "directional" and self.expect is None:
            raise ValueError(f"directional check {self.name!r} needs expect: increase|decrease")
        if self.kind == "invariance" and self.expect is not None:
            raise ValueError(f"invariance check {self.name!r} takes no expect")
        return self


class GateConfig(Section):
    classification: TaskGate = Field(
        default_factory=lambda: TaskGate(primary_metric="roc_auc", absolute={"roc_auc": 0.60})
    )
    regression: TaskGate = Field(default_factory=lambda: TaskGate(primary_metric="r2", absolute={"r2": 0.05}))
    max_regression: float = Field(
        default=0.01,
        ge=0,
        description="Candidate may trail the champion by at most this on the primary metric.",
    )
    slice_tolerance: float = Field(
        default=0.03, ge=0, description="Per slice: max loss of the primary metric vs the champion."
    )
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
