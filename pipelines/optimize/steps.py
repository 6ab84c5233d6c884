"""One function per ``optimize_*`` DAG task: load settings, make one call, return a contract.

Reports (JSON, PNG, HTML) stay on disk and in MLflow; XCom carries only their paths, run ids,
versions and the headline figures (:mod:`pipelines.optimize.contracts`). DAG ids live in
``dags/`` only: the DAG that proposes a challenger passes its own id as the event's ``source``,
and the scorecard DAG passes the stage → DAG map and its folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import load_settings
from pipelines.core.observability import get_logger
from pipelines.optimize.contracts import (
    CandidateProposal,
    CapacityRequest,
    CapacityResult,
    ChallengerEvent,
    CostResult,
    ModelChoiceRequest,
    ModelChoiceResult,
    ProposedCandidate,
    ScorecardRequest,
    ScorecardSummary,
    TuningRequest,
    TuningResult,
    TuningStatus,
)

if TYPE_CHECKING:
    from pipelines.training import Registration

log = get_logger(__name__)
REGISTRATION_KEYS = ("model_name", "version", "run_id", "alias", "verdict")


def _proposed(report: dict[str, Any]) -> ProposedCandidate:
    """The training chain's registration of the report's candidate (all ``None`` without one)."""
    candidate = report.get("candidate") or {}
    return ProposedCandidate(**{k: candidate.get(k) for k in REGISTRATION_KEYS})


def tune(request: TuningRequest) -> TuningResult:
    """Tuning within the budget (``budget_seconds`` overrides the config when >= 0)."""
    from pipelines.optimize.tuning import tune as run_tuning

    report = run_tuning(
        load_settings(),
        request.training_window,
        request.holdout or None,
        budget_seconds=request.budget,
        propose=request.propose,
    )
    return TuningResult(
        # The training chain's registration, so its challenger hand-off logic applies unchanged.
        registration=_proposed(report),
        status=TuningStatus(report["status"]),
        reason=report["reason"],
        parent_run_id=report.get("parent_run_id"),
        default_score=report.get("default_score"),
        best_score=report.get("best_score"),
        report_path=report.get("report_path"),
    )


def compare(request: ModelChoiceRequest) -> ModelChoiceResult:
    """Compare the model families; with ``propose``, train the pick through the training gate."""
    from pipelines.optimize.model_choice import choose_model

    report = choose_model(
        load_settings(), request.training_window, request.holdout or None, propose=request.propose
    )
    return ModelChoiceResult(
        registration=_proposed(report),
        pick=report["pick"],
        pick_reason=report["pick_reason"],
        pareto_front=tuple(report["pareto_front"]),
        parent_run_id=report["parent_run_id"],
        report_path=report["report_path"],
    )


def has_new_challenger(result: CandidateProposal) -> bool:
    """Whether the proposed winner (tuning or model choice) passed the gate and holds @challenger."""
    from pipelines.training import has_new_challenger as training_has_new_challenger

    reg = result.registration
    return bool(reg.version) and training_has_new_challenger(_training_registration(reg))


def challenger_event_extra(result: CandidateProposal, source: str) -> ChallengerEvent:
    """The ``challenger_model`` event of a proposed winner; ``source`` is the proposing DAG."""
    from pipelines.training import challenger_event_extra as extra

    e = extra(_training_registration(result.registration))
    return ChallengerEvent(
        model_name=e["model_name"], version=e["version"], run_id=e["run_id"], source=source
    )


def _training_registration(reg: ProposedCandidate) -> Registration:
    """Training's ``Registration`` for its hand-off rules; what XCom did not carry stays unknown."""
    from pipelines.training import Registration

    return Registration(
        model_name=str(reg.model_name),
        version=str(reg.version),
        run_id=str(reg.run_id),
        passed=reg.verdict == "passed",
        verdict=str(reg.verdict),
        alias=reg.alias,
        duplicate=False,
        champion_version=None,
    )


def plan(request: CapacityRequest) -> CapacityResult:
    """Forecast, load test and replica recommendation (scaling only with ``apply``)."""
    from pipelines.optimize.capacity import plan_capacity
    from pipelines.optimize.scaling import ScalePlan

    report = plan_capacity(
        load_settings(),
        source=request.series_source,
        version=request.version or None,
        load_test=request.load_test,
        apply=request.apply,
    )
    rec = report["recommendation"] or {}
    scaling = report.get("scaling")
    return CapacityResult(
        forecast=report["forecast"]["status"],
        forecast_reason=report["forecast"]["reason"],
        recommendation=rec.get("status"),
        replicas=rec.get("replicas"),
        arithmetic=rec.get("arithmetic") or rec.get("reason"),
        scaling=None if scaling is None else ScalePlan(**scaling),
        report_path=report["report_path"],
    )


def wants_cost(request: ScorecardRequest) -> bool:
    """Whether this scorecard run measures unit costs first (param ``measure_cost``)."""
    return request.measure_cost


def cost(request: ScorecardRequest) -> CostResult:
    """Unit costs per model version (all versions unless ``versions`` names some)."""
    from pipelines.optimize.unit_cost import version_costs

    out = version_costs(load_settings(), request.version_list, remeasure_training=request.remeasure_training)
    return CostResult(report_path=out["report_path"], versions=tuple(v["version"] for v in out["versions"]))


def scorecard(stages: dict[str, str], dags_folder: str) -> ScorecardSummary:
    """Build and write the scorecard; ``stages`` maps each lifecycle stage to its DAG id."""
    from pipelines.optimize.scorecard import build_scorecard, stage_dags, write_scorecard_html

    settings = load_settings()
    card = build_scorecard(settings, stage_dags(Path(dags_folder), stages))
    path = write_scorecard_html(settings, card)
    r = card["readiness"]
    d = card["delivery"]
    return ScorecardSummary(
        html=str(path),
        readiness=f"{r['passed']}/{r['total']}",
        promotions=d["deployment_frequency"]["promotions"],
        change_failure_rate=d["change_failure_rate"]["rate"],
        lead_time_median_h=d["lead_time"]["hours"]["median"],
    )
