"""Every move of ``@champion``, ``@challenger`` and the gateway's split: promote, reject, roll back.

The registry and the live gateway must never disagree about the champion for longer than one
call: each move changes one, changes the other, *proves* what the gateway serves
(:func:`verify_served`: ``/version`` and a real ``/invocations`` answer), and restores the first
if the second or the proof fails. Each move leaves an audit trail in version tags and an event
(``release`` or ``rollback``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipelines.canary.contracts import (
    Promotion,
    ReleaseAction,
    ReleasePlan,
    Rollback,
    RollbackScope,
    Stepped,
)
from pipelines.canary.errors import CanaryRejectedError, ReleaseError
from pipelines.canary.gateway import live_gateway, now, sample_rows
from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context, record_event
from pipelines.core.registry import (
    CHALLENGER,
    CHAMPION,
    alias_version_number,
    client_for,
    drop_alias_if_on,
    set_version_tags,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient

    from pipelines.serving import GatewayClient

log = get_logger(__name__)


# --------------------------------------------------------------------------- proof
def verify_served(settings: Settings, gw: GatewayClient, version: str) -> dict[str, Any]:
    """Prove the gateway serves ``version``: /version, and a real answer naming it."""
    info = gw.version()
    champ = str((info.get("champion") or {}).get("version"))
    if champ != version or info.get("canary") is not None:
        raise ReleaseError(
            f"gateway {gw.base_url} /version says champion v{champ}, canary {info.get('canary')}; "
            f"expected v{version} alone"
        )
    _, rows = sample_rows(settings, 1, settings.canary.seed)
    body, headers = gw.invoke({"dataframe_records": rows})
    answered = headers.get("x-model-version")
    if (
        answered != version
        or body.get("model_version") != version
        or headers.get("x-model-variant") != CHAMPION
    ):
        raise ReleaseError(
            f"gateway {gw.base_url} answered with version {answered} "
            f"({headers.get('x-model-variant')}), expected v{version}"
        )
    return {"version_endpoint": champ, "invocation_version": answered, "prediction": body["predictions"][0]}


# --------------------------------------------------------------------------- rejection
def reject(
    settings: Settings,
    plan: ReleasePlan,
    stage: str,
    reason: str,
    figures: dict[str, Any] | None = None,
    gateway: GatewayClient | None = None,
) -> CanaryRejectedError:
    """Take the candidate out of traffic, record why everywhere, and build the error to raise."""
    from pipelines.serving import GatewayError

    name, version = plan.model_name, plan.candidate
    served: dict[str, Any] = {}
    if gateway is not None:
        try:
            info = gateway.version()
            if info.get("canary") and str(info["canary"]["version"]) == version:
                gateway.rollback(reason=f"canary v{version} failed {stage}: {reason}"[:1000])
            served = gateway.version()
        except GatewayError as exc:
            served = {"error": str(exc)}
    champion_serving = (served.get("champion") or {}).get("version") if served else plan.champion_version
    set_version_tags(
        settings,
        version,
        {
            "canary.verdict": "rejected",
            "canary.stage": stage,
            "canary.reason": reason,
            "canary.rejected_at": now(),
            "canary.figures": figures or {},
        },
    )
    dropped = drop_alias_if_on(settings, CHALLENGER, version)
    path = record_event(
        settings.paths.events,
        "rollback",
        f"{name}/v{version}/{plan.started_at or now()}",
        model_name=name,
        version=version,
        stage=stage,
        reason=reason,
        champion_version=plan.champion_version,
        champion_serving=champion_serving,
        challenger_alias_removed=dropped,
        figures=figures or {},
    )
    log.error("canary rejected", version=version, stage=stage, reason=reason, evidence=str(path))
    keeps = (
        f"champion v{champion_serving} keeps serving" if champion_serving else "no champion is serving yet"
    )
    return CanaryRejectedError(
        f"canary {name} v{version} rejected at {stage}: {reason}; {keeps}; @challenger removed: {dropped}; "
        f"evidence: {path}"
    )


# --------------------------------------------------------------------------- promotion
def _previous_champion(settings: Settings, client: MlflowClient, plan: ReleasePlan) -> str | None:
    """The champion this promotion replaces; refuses if ``@champion`` moved since the plan."""
    version, expected = plan.candidate, plan.champion_version
    previous = alias_version_number(settings, CHAMPION, client)
    if previous == version and expected != version:
        # A retried task: an earlier attempt moved the alias; go on if it started from `expected`.
        recorded = (client.get_model_version(plan.model_name, version).tags or {}).get(
            "release.previous_champion"
        )
        if recorded != (expected or "none"):
            raise ReleaseError(f"@champion already on v{version}, moved from v{recorded}, not v{expected}")
        return expected
    if previous != expected:
        raise ReleaseError(
            f"@champion moved during the release (v{expected} -> v{previous}); not promoting v{version}"
        )
    return previous


def promote_candidate(settings: Settings, stepped: Stepped) -> Promotion:
    """Move @champion to the candidate (audit tags), promote on the gateway, verify what is served."""
    plan = stepped.plan
    if not plan.moves_champion:
        return Promotion(plan, skipped=plan.reason)
    name, version = plan.model_name, plan.candidate
    with log_context(model_version=version, release=plan.key):
        # Reach the gateway first: if it is down, nothing in the registry has changed yet.
        gw = live_gateway(settings)
        client = client_for(settings)
        previous = _previous_champion(settings, client, plan)
        if plan.action is ReleaseAction.BOOTSTRAP:
            reason = (
                "bootstrap: first champion, promoted after the pre-rollout check alone "
                "(no traffic to compare with)"
            )
            figures: dict[str, Any] = {"precheck": stepped.checked.record()}
        else:
            reason = "passed canary steps " + " -> ".join(f"{s.step}%" for s in stepped.steps)
            figures = {"steps": {str(s.step): s.figures for s in stepped.steps}}
        promoted_at = now()
        try:
            client.set_registered_model_alias(name, CHAMPION, version)
            set_version_tags(
                settings,
                version,
                {
                    "release.previous_champion": previous or "none",
                    "release.promoted_at": promoted_at,
                    "release.reason": reason,
                    "release.analysis": figures,
                    "canary.verdict": "promoted",
                },
                client,
            )
            served = gw.version()
            if served.get("canary") and str(served["canary"]["version"]) == version:
                gw.promote(version, reason=reason, figures={"release_key": plan.key})
            else:
                gw.set_champion(version, reason=reason)
            proof = verify_served(settings, gw, version)
        except Exception as exc:  # whatever failed, the registry must not claim an unserved champion
            if previous:
                client.set_registered_model_alias(name, CHAMPION, previous)
            else:
                client.delete_registered_model_alias(name, CHAMPION)
            set_version_tags(
                settings, version, {"canary.verdict": "promotion_failed", "canary.reason": str(exc)}, client
            )
            raise ReleaseError(
                f"promotion of v{version} could not be completed and verified on the gateway "
                f"({type(exc).__name__}: {exc}); @champion restored to {previous or 'none'}"
            ) from exc
        if previous:
            set_version_tags(
                settings,
                previous,
                {"release.superseded_by": version, "release.superseded_at": promoted_at},
                client,
            )
        dropped = drop_alias_if_on(settings, CHALLENGER, version, client)
        path = record_event(
            settings.paths.events,
            "release",
            plan.key,
            model_name=name,
            version=version,
            previous_champion=previous,
            action=plan.action.value,
            reason=reason,
            promoted_at=promoted_at,
            challenger_alias_removed=dropped,
            served=proof,
            figures=figures,
        )
        log.info("promoted", version=version, previous=previous, evidence=str(path))
        return Promotion(plan, promoted_at=promoted_at, previous_champion=previous, served=proof)


# --------------------------------------------------------------------------- rollback
def _abort_canary(
    settings: Settings, gw: GatewayClient, info: dict[str, Any], reason: str, when: str
) -> Rollback:
    """Take the running canary out of traffic; the champion it was compared with keeps serving."""
    aborted = str(info["canary"]["version"])
    gw.rollback(reason=reason)
    champion = str((info.get("champion") or {}).get("version"))
    proof = verify_served(settings, gw, champion)
    set_version_tags(
        settings,
        aborted,
        {"canary.verdict": "rolled_back", "canary.reason": reason, "canary.rejected_at": when},
    )
    dropped = drop_alias_if_on(settings, CHALLENGER, aborted)
    return Rollback(
        RollbackScope.CANARY, proof, aborted=aborted, champion=champion, challenger_alias_removed=dropped
    )


def _rollback_target(
    settings: Settings, gw: GatewayClient, current: str, to_version: str | None
) -> str | None:
    """The champion to return to: the one asked for, the one recorded on the version, or the gateway's."""
    target = to_version
    if target is None:
        mv = client_for(settings).get_model_version(settings.mlflow.registered_model, current)
        prev = (mv.tags or {}).get("release.previous_champion")
        target = prev if prev and prev != "none" else None
    if target is None:
        state = gw.state()
        target = next(
            (
                str(h["previous_champion"])
                for h in reversed(state.get("history", []))
                if h.get("ok", True) and h.get("champion") == current and h.get("previous_champion")
            ),
            None,
        )
    return target


def _restore_champion(
    settings: Settings,
    gw: GatewayClient,
    info: dict[str, Any],
    reason: str,
    to_version: str | None,
    when: str,
) -> Rollback:
    """Return ``@champion`` and the gateway to the last good champion (or ``to_version``)."""
    name = settings.mlflow.registered_model
    current = alias_version_number(settings, CHAMPION)
    served = str((info.get("champion") or {}).get("version"))
    if current is None:
        raise ReleaseError("nothing to roll back: no @champion in the registry")
    target = _rollback_target(settings, gw, current, to_version)
    if target is None or str(target) == current:
        raise ReleaseError(f"nothing to roll back to: champion v{current} has no previous champion recorded")
    target = str(target)
    client = client_for(settings)
    client.set_registered_model_alias(name, CHAMPION, target)
    try:
        gw.rollback(reason=reason, to_version=target)
        proof = verify_served(settings, gw, target)
    except Exception as exc:  # the gateway still serves v{current}: the registry must say so
        client.set_registered_model_alias(name, CHAMPION, current)
        raise ReleaseError(
            f"rollback to v{target} failed on the gateway ({type(exc).__name__}: {exc}); "
            f"@champion left on v{current}, which is still served"
        ) from exc
    set_version_tags(
        settings,
        current,
        {
            "release.rolled_back_at": when,
            "release.rolled_back_reason": reason,
            "release.rolled_back_to": target,
        },
        client,
    )
    set_version_tags(
        settings, target, {"release.restored_at": when, "release.restored_from": current}, client
    )
    return Rollback(
        RollbackScope.CHAMPION, proof, from_version=current, to_version=target, served_before=served
    )


def rollback_release(
    settings: Settings, reason: str = "manual rollback", to_version: str | None = None
) -> Rollback:
    """One-command rollback: abort a running canary, or return to the last good champion."""
    name = settings.mlflow.registered_model
    gw = live_gateway(settings)
    info = gw.version()
    when = now()
    if info.get("canary"):
        done = _abort_canary(settings, gw, info, reason, when)
    else:
        done = _restore_champion(settings, gw, info, reason, to_version, when)
    result = done.record()
    path = record_event(
        settings.paths.events, "rollback", f"{name}/manual/{when}", model_name=name, reason=reason, **result
    )
    log.warning("rolled back", evidence=str(path), **{k: v for k, v in result.items() if k != "served"})
    return replace(done, evidence=str(path))
