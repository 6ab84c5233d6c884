"""The canary release DAG's entry points: one typed function per task, settings loaded here.

Each takes and returns the contracts of :mod:`pipelines.canary.contracts` (or plain values
from the DAG's params and triggering events), so the DAG file stays wiring and a test can call
any stage as the DAG does. Task ids live in ``dags/`` only: :func:`route` returns a
:class:`~pipelines.canary.contracts.ReleasePath` and the DAG maps it to its branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.canary import plan as rules
from pipelines.canary import precheck, promotion, release, stepping
from pipelines.canary.contracts import (
    PrecheckResult,
    Promotion,
    ReleasePath,
    ReleasePlan,
    Rollback,
    RollbackScope,
    Stepped,
)
from pipelines.canary.errors import CanaryRejectedError
from pipelines.config import load_settings
from pipelines.core import metrics


def plan(
    version: str | None = rules.DEFAULT_REQUEST,
    steps: Sequence[int] | None = None,
    rollback: bool = False,
    events: Sequence[Mapping[str, Any]] = (),
) -> ReleasePlan:
    """The run's plan; ``events`` are the triggering asset events' extras (an event's version wins)."""
    return release.plan_release(
        load_settings(), version=version, rollback=rollback, steps=steps or None, events=events
    )


def route(plan: ReleasePlan) -> ReleasePath:
    return rules.route_for(plan)


def pre_rollout_check(plan: ReleasePlan) -> PrecheckResult:
    settings = load_settings()
    try:
        return precheck.pre_rollout_check(settings, plan)
    except CanaryRejectedError:
        if plan.version is not None:
            metrics.emit_release(settings, f"v{plan.version}", "rejected")
        raise


def traffic_steps(checked: PrecheckResult) -> Stepped:
    """The traffic steps; a rejected step took the canary out of traffic (a canary rollback)."""
    settings = load_settings()
    try:
        return stepping.run_traffic_steps(settings, checked)
    except CanaryRejectedError:
        if checked.plan.version is not None:
            metrics.emit_release(settings, f"v{checked.plan.version}", "rejected")
        metrics.emit_rollback(settings, RollbackScope.CANARY.value)
        raise


def promote(stepped: Stepped) -> Promotion:
    settings = load_settings()
    done = promotion.promote_candidate(settings, stepped)
    if done.skipped is None and stepped.plan.version is not None:
        steps = [(s.step, s.verdict) for s in stepped.steps]
        metrics.emit_release(settings, f"v{stepped.plan.version}", "promoted", steps)
    return done


def rollback(reason: str | None = None, to_version: str | None = None, *, requested_by: str) -> Rollback:
    """Roll back; without a ``reason`` the record says who asked (``requested_by``: the DAG)."""
    settings = load_settings()
    done = promotion.rollback_release(
        settings,
        reason=reason or f"rollback requested ({requested_by} param)",
        to_version=to_version or None,
    )
    metrics.emit_rollback(settings, done.scope.value)
    return done
