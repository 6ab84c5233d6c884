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
    Stepped,
)
from pipelines.config import load_settings


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
    return precheck.pre_rollout_check(load_settings(), plan)


def traffic_steps(checked: PrecheckResult) -> Stepped:
    return stepping.run_traffic_steps(load_settings(), checked)


def promote(stepped: Stepped) -> Promotion:
    return promotion.promote_candidate(load_settings(), stepped)


def rollback(reason: str | None = None, to_version: str | None = None, *, requested_by: str) -> Rollback:
    """Roll back; without a ``reason`` the record says who asked (``requested_by``: the DAG)."""
    return promotion.rollback_release(
        load_settings(),
        reason=reason or f"rollback requested ({requested_by} param)",
        to_version=to_version or None,
    )
