"""What the optimization DAG tasks take and hand each other: params in, references out.

Each task's params arrive as one of the ``*Request`` dataclasses (``dags/_common.call`` rebuilds
it from Airflow's validated params; unknown keys are ignored) and each result is a frozen
dataclass that ``call`` turns into JSON for XCom. The reports themselves (JSON, PNG, HTML) stay
on disk and in MLflow; XCom carries their paths, run ids, versions and the headline figures.

The chains (one per DAG)::

    tuning:       TuningRequest -> tune -> TuningResult -> has_new_challenger -> bool
                                           TuningResult -> challenger_event_extra -> ChallengerEvent
    model choice: ModelChoiceRequest -> compare -> ModelChoiceResult -> (the same two)
    capacity:     CapacityRequest -> plan -> CapacityResult
    scorecard:    ScorecardRequest -> wants_cost -> bool; -> cost -> CostResult;
                  stages and DAG folder (from the DAG) -> scorecard -> ScorecardSummary

Kept light (no pandas, no MLflow), so ``steps`` imports it at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipelines.optimize.scaling import ScalePlan

#: A training window as Airflow params and the CLI give it: batch ids, a count, "3", "a,b" or empty.
WindowSpec = list[str] | int | str | None


def _window(value: WindowSpec) -> WindowSpec:
    """An empty param (``None``, ``""``, ``[]``) means the configured window."""
    return None if value in (None, "", []) else value


# --------------------------------------------------------------------------- requests (DAG params)
@dataclass(frozen=True)
class TuningRequest:
    """The tuning DAG's params; a negative ``budget_seconds`` means the configured budget."""

    budget_seconds: float | None = None
    window: WindowSpec = None
    holdout: str | None = None
    propose: bool = True

    @property
    def budget(self) -> float | None:
        return None if self.budget_seconds is None or self.budget_seconds < 0 else float(self.budget_seconds)

    @property
    def training_window(self) -> WindowSpec:
        return _window(self.window)


@dataclass(frozen=True)
class ModelChoiceRequest:
    """The model-choice DAG's params: proposing the pick is opt-in (a person decides families)."""

    window: WindowSpec = None
    holdout: str | None = None
    propose: bool = False

    @property
    def training_window(self) -> WindowSpec:
        return _window(self.window)


@dataclass(frozen=True)
class CapacityRequest:
    """The capacity DAG's params; an empty ``version`` means the champion (or next in line)."""

    source: str | None = "prediction_log"
    version: str | None = None
    load_test: bool = True
    apply: bool = False

    @property
    def series_source(self) -> str:
        return str(self.source or "prediction_log")


@dataclass(frozen=True)
class ScorecardRequest:
    """The scorecard DAG's params; ``versions`` is comma-separated text or a list (empty = all)."""

    measure_cost: bool = True
    versions: str | list[str] | None = None
    remeasure_training: bool = True

    @property
    def version_list(self) -> list[str] | None:
        if not self.versions:
            return None
        if isinstance(self.versions, str):
            return [v.strip() for v in self.versions.split(",") if v.strip()]
        return list(self.versions)


# --------------------------------------------------------------------------- results
class TuningStatus(StrEnum):
    """How a tuning run ended; only ``PROPOSED`` sent a winner through the training gate."""

    SKIPPED = "skipped"
    NO_TRIALS = "no_trials"
    NO_IMPROVEMENT = "no_improvement"
    FOUND = "found"
    PROPOSED = "proposed"


@dataclass(frozen=True)
class ProposedCandidate:
    """The training chain's registration of a proposed winner (all ``None`` when none was proposed)."""

    model_name: str | None = None
    version: str | None = None
    run_id: str | None = None
    alias: str | None = None
    verdict: str | None = None


@dataclass(frozen=True)
class CandidateProposal:
    """The part of a tuning or model-choice result the challenger hand-off reads.

    ``has_new_challenger`` and ``challenger_event_extra`` take this type, so they accept either
    result (the other fields of the XCom are ignored when it is rebuilt).
    """

    registration: ProposedCandidate


@dataclass(frozen=True)
class TuningResult(CandidateProposal):
    status: TuningStatus
    reason: str
    parent_run_id: str | None
    default_score: float | None
    best_score: float | None
    report_path: str | None


@dataclass(frozen=True)
class ModelChoiceResult(CandidateProposal):
    pick: str | None
    pick_reason: str
    pareto_front: tuple[str, ...]
    parent_run_id: str
    report_path: str


@dataclass(frozen=True)
class ChallengerEvent:
    """The ``challenger_model`` asset event's extra; ``source`` is the DAG that proposed it."""

    model_name: str
    version: str
    run_id: str
    source: str


@dataclass(frozen=True)
class CapacityResult:
    forecast: str
    forecast_reason: str
    recommendation: str | None
    replicas: int | None
    arithmetic: str | None
    scaling: ScalePlan | None
    report_path: str


@dataclass(frozen=True)
class CostResult:
    report_path: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class ScorecardSummary:
    html: str
    readiness: str
    promotions: int
    change_failure_rate: float | None
    lead_time_median_h: float | None


# --------------------------------------------------------------------------- scorecard inputs
@dataclass(frozen=True)
class StageDag:
    """One lifecycle stage, the DAG that automates it and the DAG files that define that DAG.

    Built by the drivers (the scorecard DAG, the CLI, the replay), which know the
    DAG ids and where the DAG files are; the scorecard only judges what it is handed.
    """

    stage: str
    dag_id: str
    defined_in: tuple[str, ...]
