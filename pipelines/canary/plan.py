"""The release plan and the route, as pure functions of what the registry and the trigger said.

Kept apart from the registry reads (:mod:`pipelines.canary.release`) so the rules can be read
and tested alone: which version a run releases (asset event > ``version`` param >
``@challenger``), when a run is a bootstrap (no champion yet) or a no-op, and which branch
of the DAG it takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines.canary.contracts import ReleaseAction, ReleasePath, ReleasePlan
from pipelines.core.errors import InvalidInputError

DEFAULT_REQUEST = "@challenger"


def check_steps(steps: Sequence[Any]) -> tuple[int, ...]:
    """The canary weights as ints; they must be strictly increasing percentages in (0, 100]."""
    out = [int(s) for s in steps]
    if not out or any(not 0 < s <= 100 for s in out) or out != sorted(set(out)):
        raise InvalidInputError(f"canary steps must be increasing percentages in (0, 100], got {out}")
    return tuple(out)


def event_version(extras: Iterable[Mapping[str, Any]], model_name: str) -> str | None:
    """The newest triggering event's version for this model (``challenger_model`` extras, oldest first)."""
    found = None
    for extra in extras:
        if extra.get("version") and extra.get("model_name", model_name) == model_name:
            found = str(extra["version"])
    return found


def requested_version(extras: Iterable[Mapping[str, Any]], model_name: str, version: str | None) -> str:
    """What this run was asked to release: an asset event's version wins over the param."""
    return event_version(extras, model_name) or (version or DEFAULT_REQUEST)


def rollback_plan(model_name: str, steps: tuple[int, ...], planned_at: str) -> ReleasePlan:
    return ReleasePlan(
        model_name=model_name,
        steps=steps,
        planned_at=planned_at,
        action=ReleaseAction.ROLLBACK,
        reason="rollback requested (DAG param)",
    )


def nothing_requested(
    model_name: str, steps: tuple[int, ...], planned_at: str, requested: str
) -> ReleasePlan:
    """An alias that points nowhere: nothing to release."""
    return ReleasePlan(
        model_name=model_name,
        steps=steps,
        planned_at=planned_at,
        action=ReleaseAction.NOOP,
        reason=f"no {requested} version to release",
    )


def decide(
    *,
    model_name: str,
    steps: tuple[int, ...],
    planned_at: str,
    requested: str,
    version: str,
    champion: str | None,
    started_at: str,
) -> ReleasePlan:
    """Release against the champion, bootstrap the first champion, or nothing if it already serves."""
    common: dict[str, Any] = {
        "model_name": model_name,
        "steps": steps,
        "planned_at": planned_at,
        "version": version,
        "requested": requested,
        "champion_version": champion,
    }
    if champion == version:
        return ReleasePlan(
            **common, action=ReleaseAction.NOOP, reason=f"version {version} is already the champion"
        )
    if champion is None:
        action, reason = ReleaseAction.BOOTSTRAP, "bootstrap: no champion yet"
    else:
        action, reason = ReleaseAction.RELEASE, f"canary v{version} vs champion v{champion}"
    return ReleasePlan(
        **common,
        action=action,
        reason=reason,
        started_at=started_at,
        release_key=f"{model_name}/v{version}",
    )


def route_for(plan: ReleasePlan) -> ReleasePath:
    """The branch after planning: the rollback alone, or the release path."""
    return ReleasePath.ROLLBACK if plan.action is ReleaseAction.ROLLBACK else ReleasePath.RELEASE
