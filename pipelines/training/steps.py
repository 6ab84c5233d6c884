"""One function per task of the training DAG, and the whole chain for the CLI.

Each step loads settings itself, does one thing and hands the next task a reference
(:mod:`pipelines.training.contracts`): batch ids, run ids, URIs, versions. The DAG calls them
through ``dags/_common.call``, which rebuilds those dataclasses from XCom's JSON by the type
hints below, so the contracts are imported here at module level; the modules that do the work
(MLflow, scikit-learn) are imported inside each step.

Follow a run task by task: :func:`should_train` → :func:`resolve_window` → :func:`train` →
:func:`evaluate` → :func:`gate` → :func:`register` → :func:`has_new_challenger` →
:func:`challenger_event_extra`. :func:`run_training` is the same chain in one process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.config import Settings, load_settings
from pipelines.core.contracts import to_xcom
from pipelines.core.observability import get_logger, log_context
from pipelines.core.registry import CHALLENGER
from pipelines.training.contracts import (
    EvaluationRef,
    GateVerdict,
    Registration,
    TrainedCandidate,
    TrainingRequest,
)

log = get_logger(__name__)


def _reason(params: Mapping[str, Any] | None) -> str:
    return str(dict(params or {}).get("reason") or "")


def should_train(params: Mapping[str, Any] | None, asset_events: Sequence[Mapping[str, Any]]) -> bool:
    """Whether this run trains (see :mod:`pipelines.training.policy`); the task log says why.

    ``asset_events`` are the extras of the asset events that triggered the run (empty for a
    manual or monitoring run).
    """
    from pipelines.training.window import should_train as decide

    decision = decide(load_settings(), _reason(params), asset_triggered=bool(asset_events))
    log.info("training decision", train=decision.train, why=decision.why)
    return decision.train


def resolve_window(
    params: Mapping[str, Any] | None, asset_events: Sequence[Mapping[str, Any]] = ()
) -> TrainingRequest:
    """The published batches to train on and the holdout, from the ``window``/``holdout`` params."""
    from pipelines.training.window import resolve_window as resolve

    p = dict(params or {})
    window = resolve(load_settings(), p.get("window"), p.get("holdout") or None)
    default = "asset: new validated batch" if asset_events else "manual run"
    return TrainingRequest(window, _reason(p) or default)


def train(request: TrainingRequest) -> TrainedCandidate:
    from pipelines.training.train import train_candidate

    return train_candidate(load_settings(), request.window, request.reason)


def evaluate(candidate: TrainedCandidate) -> EvaluationRef:
    from pipelines.training.evaluate import evaluate_candidate

    return evaluate_candidate(load_settings(), candidate)


def gate(evaluation: EvaluationRef) -> GateVerdict:
    """The verdict (logged to the run and recorded); every criterion stays in the run's
    ``evaluation/verdict.json``, so the hand-off stays small."""
    from pipelines.training.evaluate import gate_candidate, load_evaluation

    settings = load_settings()
    document = load_evaluation(evaluation.evaluation_uri, settings.tracking_uri)
    verdict = gate_candidate(settings, evaluation, document)
    _emit_verdict(settings, evaluation, verdict)
    return verdict


def _emit_verdict(settings: Settings, evaluation: EvaluationRef, verdict: GateVerdict) -> None:
    """The gate's verdict as metrics, grouped by the holdout batch (a re-run replaces its own)."""
    from pipelines.core.metrics import emit_gate_verdict

    emit_gate_verdict(
        settings,
        window=evaluation.candidate.window.holdout_batch,
        passed=verdict.passed,
        failed_criteria=verdict.failed_criteria,
        primary_metric=evaluation.primary_metric,
        candidate=evaluation.candidate_primary,
        champion=evaluation.champion_primary,
    )


def _emit_registration(settings: Settings, verdict: GateVerdict, registration: Registration) -> None:
    """A new ``@challenger`` is what a pending retrain request waits for (its alert's evidence)."""
    if registration.alias == CHALLENGER:
        from pipelines.core.metrics import emit_challenger_registered

        emit_challenger_registered(settings, verdict.candidate.window.holdout_batch)


def register(verdict: GateVerdict) -> Registration:
    from pipelines.training.evaluate import load_evaluation
    from pipelines.training.registry import register_candidate

    settings = load_settings()
    document = load_evaluation(verdict.evaluation_uri, settings.tracking_uri)
    registration = register_candidate(settings, verdict, document)
    _emit_registration(settings, verdict, registration)
    return registration


def has_new_challenger(registration: Registration) -> bool:
    """Downstream (the asset event) runs only when this run left @challenger on its version."""
    if registration.alias != CHALLENGER:
        log.warning(
            "no new challenger",
            verdict=registration.verdict,
            version=registration.version,
            champion_version=registration.champion_version,
        )
        return False
    return True


def challenger_event_extra(registration: Registration) -> dict[str, str]:
    """The ``challenger_model`` asset event's extra: which version, of which model, from which run."""
    return {
        "model_name": registration.model_name,
        "version": registration.version,
        "run_id": registration.run_id,
    }


def run_training(
    settings: Settings,
    window: list[str] | int | str | None = None,
    holdout: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """The whole chain in-process (CLI, demo, optimization): window → train → evaluate → gate → register.

    Returns the registration as a dict (the CLI prints it) plus the gate's ``failures`` and the
    ``evaluation_uri``: ``{model_name, version, run_id, passed, verdict, alias, duplicate,
    champion_version, failures, evaluation_uri}``.
    """
    from pipelines.training.evaluate import evaluate_candidate, gate_candidate, load_evaluation
    from pipelines.training.registry import register_candidate
    from pipelines.training.train import train_candidate
    from pipelines.training.window import resolve_window as resolve

    resolved = resolve(settings, window, holdout)
    trained = train_candidate(settings, resolved, reason)
    with log_context(run_id=trained.run_id):
        evaluation = evaluate_candidate(settings, trained)
        document = load_evaluation(evaluation.evaluation_uri, settings.tracking_uri)
        verdict = gate_candidate(settings, evaluation, document)
        _emit_verdict(settings, evaluation, verdict)
        registration = register_candidate(settings, verdict, document)
        _emit_registration(settings, verdict, registration)
    result: dict[str, Any] = to_xcom(registration)
    return {**result, "failures": list(verdict.failures), "evaluation_uri": evaluation.evaluation_uri}
