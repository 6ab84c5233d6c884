"""Task-sized entry points of ``automate_canary_release``: settings loaded here, plan dicts in and out.

Each function is what one DAG task calls; the DAG file stays wiring only.
"""

from __future__ import annotations

from typing import Any

from pipelines.canary import release
from pipelines.config import load_settings


def is_final(exc: BaseException) -> bool:
    """A verdict or an unsafe release state: trying again cannot change it (no retries)."""
    return isinstance(exc, release.CanaryRejectedError | release.ReleaseError | ValueError)


def plan_step(params: dict[str, Any] | None, triggering_asset_events: Any = None) -> dict[str, Any]:
    params = dict(params or {})
    steps = params.get("steps") or None
    return release.plan_release(
        load_settings(),
        version=params.get("version") or "@challenger",
        rollback=bool(params.get("rollback")),
        steps=[int(s) for s in steps] if steps else None,
        triggering_events=triggering_asset_events,
    )


def route_step(plan: dict[str, Any]) -> str:
    return release.route_for(plan)


def precheck_step(plan: dict[str, Any]) -> dict[str, Any]:
    return release.pre_rollout_check(load_settings(), plan)


def traffic_steps_step(plan: dict[str, Any]) -> dict[str, Any]:
    return release.run_traffic_steps(load_settings(), plan)


def promote_step(plan: dict[str, Any]) -> dict[str, Any]:
    return release.promote_candidate(load_settings(), plan)


def rollback_step(params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    reason = params.get("reason") or "rollback requested (automate_canary_release param)"
    return release.rollback_release(
        load_settings(), reason=reason, to_version=params.get("version_to") or None
    )
