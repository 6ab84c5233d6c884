"""One function per ``automate_training`` task, and the whole chain for the CLI.

Each step takes and returns small JSON-able dicts (batch ids, run ids, versions),
loads settings itself, and does one thing; Airflow only wires them together.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import Settings, load_settings
from pipelines.core.observability import get_logger, log_context

log = get_logger(__name__)


def is_final(exc: BaseException) -> bool:
    """Bad windows, single-class data, a missing champion artifact... fail the same way on every
    try; an unreachable tracking server (a retryable TrainingError) is worth Airflow's retries."""
    from pipelines.training.errors import TrainingError

    return isinstance(exc, TrainingError) and not exc.retryable


def should_train_step(params: dict[str, Any] | None, asset_triggered: bool) -> bool:
    from pipelines.training.policy import should_train

    params = dict(params or {})
    decision = should_train(load_settings(), str(params.get("reason") or ""), asset_triggered)
    log.info("training decision", train=decision.train, why=decision.why)
    return decision.train


def resolve_window_step(params: dict[str, Any] | None, asset_triggered: bool = False) -> dict[str, Any]:
    from pipelines.training.window import resolve_window

    params = dict(params or {})
    window = resolve_window(load_settings(), params.get("window"), params.get("holdout") or None)
    default = "asset: new validated batch" if asset_triggered else "manual run"
    return {**window.to_dict(), "reason": str(params.get("reason") or default)}


def train_step(window_ref: dict[str, Any]) -> dict[str, Any]:
    from pipelines.training.train import train_candidate
    from pipelines.training.window import TrainingWindow

    return train_candidate(
        load_settings(), TrainingWindow.from_dict(window_ref), str(window_ref.get("reason", ""))
    )


def evaluate_step(train_ref: dict[str, Any]) -> dict[str, Any]:
    from pipelines.training.evaluate import evaluate_candidate

    return {**evaluate_candidate(load_settings(), train_ref), "train": train_ref}


def gate_step(evaluation_ref: dict[str, Any]) -> dict[str, Any]:
    from pipelines.training.evaluate import load_evaluation
    from pipelines.training.gate import gate_candidate

    settings = load_settings()
    verdict = gate_candidate(
        settings, load_evaluation(evaluation_ref["evaluation_uri"], settings.tracking_uri)
    )
    verdict.pop("criteria")  # the full list is in the run (evaluation/verdict.json); XCom stays small
    return {**verdict, "evaluation_uri": evaluation_ref["evaluation_uri"], "train": evaluation_ref["train"]}


def register_step(gate_ref: dict[str, Any]) -> dict[str, Any]:
    from pipelines.training.evaluate import load_evaluation
    from pipelines.training.registry import register_candidate

    settings = load_settings()
    evaluation = load_evaluation(gate_ref["evaluation_uri"], settings.tracking_uri)
    return register_candidate(settings, gate_ref["train"], evaluation, gate_ref)


def has_new_challenger(registration: dict[str, Any]) -> bool:
    """Downstream (the asset event) runs only when this run left @challenger on its version."""
    if registration.get("alias") != "challenger":
        log.warning(
            "no new challenger",
            verdict=registration.get("verdict"),
            version=registration.get("version"),
            champion_version=registration.get("champion_version"),
        )
        return False
    return True


def challenger_event_extra(registration: dict[str, Any]) -> dict[str, Any]:
    return {k: registration[k] for k in ("model_name", "version", "run_id")}


def run_training(
    settings: Settings,
    window: list[str] | int | str | None = None,
    holdout: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """The whole chain in-process (CLI, demo, optimization): window → train → evaluate → gate → register."""
    from pipelines.training.evaluate import evaluate_candidate, load_evaluation
    from pipelines.training.gate import gate_candidate
    from pipelines.training.registry import register_candidate
    from pipelines.training.train import train_candidate
    from pipelines.training.window import resolve_window

    resolved = resolve_window(settings, window, holdout)
    trained = train_candidate(settings, resolved, reason)
    with log_context(run_id=trained["run_id"]):
        ev_ref = evaluate_candidate(settings, trained)
        evaluation = load_evaluation(ev_ref["evaluation_uri"], settings.tracking_uri)
        verdict = gate_candidate(settings, evaluation)
        registration = register_candidate(settings, trained, evaluation, verdict)
    return {**registration, "failures": verdict["failures"], "evaluation_uri": ev_ref["evaluation_uri"]}
