"""A canary release of a challenger: the plan against the registry, and the whole release in one call.

The order of a release, and what each stage guarantees:

1. :func:`plan_release` resolves the candidate (asset event > ``version`` param >
   ``@challenger``) and the current champion (rules in :mod:`pipelines.canary.plan`). No
   champion yet = *bootstrap*: the candidate is promoted after the pre-rollout check alone.
2. :func:`~pipelines.canary.precheck.pre_rollout_check` starts the candidate in a fresh
   instance of the serving program and queries it; users' traffic is never involved.
3. :func:`~pipelines.canary.stepping.run_traffic_steps` puts the candidate on the live gateway
   as canary and walks the configured weights, each judged by :mod:`pipelines.canary.analysis`.
4. :func:`~pipelines.canary.promotion.promote_candidate` moves ``@champion`` (audit trail in
   version tags), promotes on the gateway, then proves the gateway serves the new version.

A rejected candidate leaves the champion serving, loses ``@challenger``, gets ``canary.*``
tags saying why and a ``rollback`` event; the stage then raises
:class:`~pipelines.canary.errors.CanaryRejectedError`.
:func:`~pipelines.canary.promotion.rollback_release` is the one-command rollback.
The DAG runs these stages as tasks (:mod:`pipelines.canary.steps`); :func:`run_release` runs
them in-process (the CLI).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines.canary import plan as rules
from pipelines.canary.contracts import ReleasePlan
from pipelines.canary.errors import CanaryRejectedError
from pipelines.canary.gateway import now
from pipelines.canary.precheck import pre_rollout_check
from pipelines.canary.promotion import promote_candidate
from pipelines.canary.stepping import run_traffic_steps
from pipelines.config import Settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.observability import get_logger, read_events, write_json_atomic
from pipelines.core.predlog import utc_now_iso
from pipelines.core.registry import CHAMPION, alias_version_number, client_for

log = get_logger(__name__)


def plan_release(
    settings: Settings,
    version: str | None = rules.DEFAULT_REQUEST,
    rollback: bool = False,
    steps: Sequence[Any] | None = None,
    events: Iterable[Mapping[str, Any]] = (),
) -> ReleasePlan:
    """Decide what this run does: ``release``, ``bootstrap``, ``rollback`` or ``noop`` (with why).

    ``events`` are the triggering ``challenger_model`` events' extras, oldest first. A release
    or bootstrap plan is also written to ``serving/releases/<model>-v<version>.json``.
    """
    name = settings.mlflow.registered_model
    checked = rules.check_steps(steps or settings.canary.steps)
    planned_at = now()
    if rollback:
        return rules.rollback_plan(name, checked, planned_at)
    requested = rules.requested_version(events, name, version)
    if requested.startswith("@"):
        resolved = alias_version_number(settings, requested[1:])
        if resolved is None:
            return rules.nothing_requested(name, checked, planned_at, requested)
    else:
        resolved = str(requested)
        try:
            client_for(settings).get_model_version(name, resolved)
        except Exception as exc:
            raise InvalidInputError(
                f"{name} version {resolved} does not exist in {settings.tracking_uri}: {exc}"
            ) from exc
    champion = alias_version_number(settings, CHAMPION)
    plan = rules.decide(
        model_name=name,
        steps=checked,
        planned_at=planned_at,
        requested=requested,
        version=resolved,
        champion=champion,
        started_at=utc_now_iso(),
    )
    if plan.moves_champion:
        write_json_atomic(settings.paths.serving / "releases" / f"{name}-v{resolved}.json", plan.record())
        log.info(
            "release planned",
            action=plan.action.value,
            version=plan.version,
            champion_version=plan.champion_version,
            steps=list(plan.steps),
        )
    return plan


def run_release(
    settings: Settings, version: str = rules.DEFAULT_REQUEST, steps: list[int] | None = None
) -> dict[str, Any]:
    """The whole release in one call (CLI): plan → pre-rollout check → steps → promotion.

    Returns a summary with each stage's verdict; a rejected candidate is reported
    (``outcome="rejected"``), not raised, since the rollback already happened.
    """
    plan = plan_release(settings, version=version, steps=steps)
    summary: dict[str, Any] = {
        "action": plan.action.value,
        "version": plan.version,
        "champion_version": plan.champion_version,
        "reason": plan.reason,
    }
    try:
        checked = pre_rollout_check(settings, plan)
        stepped = run_traffic_steps(settings, checked)
        promotion = promote_candidate(settings, stepped)
    except CanaryRejectedError as exc:
        return {**summary, "outcome": "rejected", "error": str(exc), "steps": _step_verdicts(settings, plan)}
    outcome = "promoted" if plan.moves_champion else plan.action.value
    return {
        **summary,
        "outcome": outcome,
        "precheck": checked.record(),
        "steps": _step_verdicts(settings, plan),
        "promotion": promotion.record(),
    }


def _step_verdicts(settings: Settings, plan: ReleasePlan) -> list[dict[str, Any]]:
    """Per-stage verdicts of this release attempt, from the recorded canary_step events."""
    key = plan.release_key
    if not key:
        return []
    started = plan.started_at or ""
    out = []
    for e in read_events(settings.paths.events, "canary_step"):
        if not str(e.get("key", "")).startswith(f"{key}/") or e.get("recorded_at", "") < started[:19]:
            continue
        out.append({"step": e.get("step"), "verdict": e.get("verdict"), "reason": e.get("reason")})
    return out
