"""Apply the retrain policy to a monitored window: record the decision, take the lock, alert.

The rules are :func:`pipelines.monitoring.policy.decide` (pure); this module feeds it the
window's result and the recorded history, and turns a ``retrain`` into a training request.
Which batches a retrain trains on is training's policy (``pipelines.training.retrain_window``):
when it cannot form a window (fewer than two published batches up to the monitored one), the
recorded decision is ``no_decision`` with that reason, never a retrain nobody can run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context
from pipelines.monitoring.contracts import RetrainAction, RetrainDecision, RetrainRequest
from pipelines.monitoring.policy import Decision, decide
from pipelines.monitoring.records import load_result, policy_history, record_decision, take_lock

log = get_logger(__name__)


def training_request(settings: Settings, window_id: str, reasons: list[str]) -> RetrainRequest | None:
    """The training a retrain after this window asks for, or None when no window can be formed."""
    from pipelines.training import retrain_window

    span = retrain_window(settings, window_id)
    if span is None:
        return None
    return RetrainRequest(
        reason=f"drift monitor, window {window_id}: " + " | ".join(reasons)[:900],
        window=span.train_batches,
        holdout=span.holdout_batch,
    )


def decide_retrain(
    settings: Settings, window_id: str, *, trigger_dag_id: str | None = None
) -> RetrainDecision:
    """Apply the policy to the window's result, record the decision, take the lock, alert.

    Args:
        trigger_dag_id: what the orchestrator starts on a retrain, written into the record for
            the audit trail (the DAG passes it; nothing in ``pipelines/`` names a DAG).
    """
    cfg = settings.monitoring
    with log_context(window=window_id):
        result = load_result(settings, window_id)
        history = policy_history(settings, exclude=window_id)
        decision = decide(history, result, cfg)
        request: RetrainRequest | None = None
        if decision.action is RetrainAction.RETRAIN:
            request = training_request(settings, window_id, decision.reasons)
            if request is None:
                decision = replace(
                    decision,
                    action=RetrainAction.NO_DECISION,
                    reasons=[
                        *decision.reasons,
                        f"cannot form a training window: fewer than 2 published batches up to {window_id}",
                    ],
                )
            else:
                take_lock(settings, window_id)
        trigger_conf = request.to_conf() if request is not None else None
        doc = {
            **decision.to_dict(),
            "trigger_conf": trigger_conf,
            "trigger_dag_id": trigger_dag_id if trigger_conf else None,
            "model_version": result.model_version,
            "report": result.artifacts.get("drift_html"),
        }
        record_decision(settings, window_id, doc)
        _alert_on_decision(settings, decision, doc)
        log.info("retrain decision", action=decision.action.value, reasons=decision.reasons)
        return RetrainDecision(
            window=decision.window,
            action=decision.action,
            reasons=tuple(decision.reasons),
            blocked_by=tuple(decision.blocked_by),
            request=request,
            report=doc["report"],
        )


def _alert_on_decision(settings: Settings, decision: Decision, doc: dict[str, Any]) -> None:
    from pipelines.core.alerts import Severity, send_alert

    severity: Severity = "info" if decision.action is RetrainAction.NO_RETRAIN else "warning"
    if decision.action is RetrainAction.NO_RETRAIN and decision.violated:
        severity = "warning"  # violations held back by hysteresis or a guard are worth a look
    send_alert(
        settings,
        "retrain_decision",
        f"window {decision.window}: {decision.action.value} — " + " | ".join(decision.reasons),
        key=decision.window,
        severity=severity,
        window=decision.window,
        action=decision.action.value,
        blocked_by=decision.blocked_by,
        report=doc.get("report"),
        trigger_conf=doc.get("trigger_conf"),
    )
