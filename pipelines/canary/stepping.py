"""The traffic steps: the candidate as canary on the live gateway, one weight after another.

Each step sets the weight, then (re-)analyses until it can decide: held for
``canary.step_window_s`` and judged ``success`` → next step; ``failed`` → the canary goes to
weight 0 at once (:func:`~pipelines.canary.promotion.reject`); ``inconclusive`` → hold and
re-analyse. Quality still undecided when no more labels can come (:func:`is_final`) is settled
by ``canary.quality_undecided``; anything else still inconclusive fails safe at
``canary.step_timeout_s``. With ``canary.replay_traffic`` the step
drives itself with replayed validated rows (the demo, the tests); otherwise it waits for
callers. Every analysis is recorded as a ``canary_step`` event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.canary.analysis import MIN_SHIFT_ROWS, Analysis
from pipelines.canary.contracts import PrecheckResult, ReleaseAction, ReleasePlan, Stepped, StepResult
from pipelines.canary.errors import ReleaseError
from pipelines.canary.evidence import analyse_step
from pipelines.canary.gateway import live_gateway
from pipelines.canary.promotion import reject
from pipelines.config import CanaryConfig, Settings
from pipelines.core.observability import get_logger, log_context, record_event
from pipelines.core.predlog import utc_now_iso

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pipelines.serving import GatewayClient

log = get_logger(__name__)


def requests_needed(settings: Settings, weight: float, have: int, last: Analysis | None) -> int:
    """Replay requests likely to bring the canary what the step still lacks (requests, labels)."""
    cfg = settings.canary
    need = max(cfg.min_requests - have, 0)
    labels_needed = 0
    if last is not None:
        figs = last.figures()
        labelled = int(figs.get("quality.labelled") or 0)
        if figs.get("quality.status") == "insufficient":
            # Too few labels, or undecided: aim at the labels that bring the MDE down to the margin
            # (``quality.labels_for_margin``), growing by at least half (a 20% narrower CI) per look.
            # Both variants' rows count (paired).
            target = int(figs.get("quality.labels_for_margin") or cfg.quality_min_labels)
            labels_needed = max(target - labelled, cfg.quality_min_labels - labelled, labelled // 2)
        if figs.get("shift.status") == "insufficient":
            need = max(need, MIN_SHIFT_ROWS - int(figs.get("shift.canary_rows") or 0))
    need = max(need, 10)
    canary_share = weight / 100.0
    return min(20000, max(50, math.ceil(need / canary_share * 1.15) + 20, math.ceil(labels_needed * 1.15)))


def is_final(policy: str, timed_out: bool, labels_stalled: bool) -> bool:
    """Whether an undecided step can get no more labels, so ``canary.quality_undecided`` settles it.

    ``hold`` waits for labels until the step timeout; the other policies also act as soon as
    the step's labelled rows stop growing after its window (a replayed batch is exhausted, or
    live labels are not arriving: e.g. they mature days later).
    """
    return timed_out or (policy != "hold" and labels_stalled)


@dataclass(frozen=True)
class Look:
    """One analysis of a step and what the loop does with it (``done``: the step has its verdict)."""

    analysis: Analysis
    verdict: str
    reason: str
    done: bool
    held: float
    labelled: int
    #: Undecided, no more labels from this batch, and ``quality_undecided: pool`` has batches left:
    #: the caller keeps the split and brings the next batch's labels (the release's evidence pools).
    pooling: bool = False


def judge_look(
    cfg: CanaryConfig,
    analyse_at: Callable[[bool], Analysis],
    *,
    held: float,
    timed_out: bool,
    labelled_before: int | None,
    batches: int | None = None,
) -> Look:
    """The loop's rules for one look, apart from its I/O (the decision benchmark runs them too).

    ``analyse_at(final)`` judges the step on the log as it is now. Undecided quality is settled by
    the ``quality_undecided`` policy once the step is final (:func:`is_final`: timed out, or its
    labels stopped growing after the window); anything still inconclusive at the timeout fails
    safe; a success ends the step once it has been held for ``step_window_s``.

    ``batches``: label batches pooled so far, for ``quality_undecided: pool`` (``None``: the
    caller cannot bring another batch, as the live loop within one run). While fewer than
    ``quality_pool_max_batches`` are pooled, a stalled undecided look is not settled: it returns
    ``pooling`` and the caller keeps the split and adds the next batch's labels; at the timeout,
    or once the batches are spent, the policy settles it.
    """
    analysis = analyse_at(False)
    figs = analysis.figures()
    labelled = int(figs.get("quality.labelled") or 0)
    stalled = labelled_before is not None and labelled <= labelled_before and held >= cfg.step_window_s
    if analysis.verdict == "inconclusive" and is_final(cfg.quality_undecided, timed_out, stalled):
        undecided_quality = figs.get("quality.status") == "insufficient"
        if (
            cfg.quality_undecided == "pool"
            and batches is not None
            and batches < cfg.quality_pool_max_batches
            and undecided_quality
            and not timed_out
        ):
            reason = (
                f"{analysis.reason}; pooling: keeping the split for the next batch's labels "
                f"({batches} of at most {cfg.quality_pool_max_batches} batches pooled)"
            )
            return Look(analysis, "inconclusive", reason, False, held, labelled, pooling=True)
        analysis = analyse_at(True)
    verdict, reason = analysis.verdict, analysis.reason
    if verdict == "inconclusive" and timed_out:
        verdict, reason = (
            "failed",
            f"still inconclusive after {cfg.step_timeout_s:.0f}s (fail safe): {reason}",
        )
    done = verdict == "failed" or (verdict == "success" and held >= cfg.step_window_s)
    return Look(analysis, verdict, reason, done, held, labelled)


def _run_step(
    settings: Settings, plan: ReleasePlan, gw: GatewayClient, weight: int, batch_id: str | None
) -> StepResult:
    """Hold one weight until the analysis decides (or the step times out); record each analysis."""
    cfg = settings.canary
    version = plan.candidate
    gw.set_weight(weight, reason=f"canary step {weight}%")
    step_start = utc_now_iso()
    t0 = time.monotonic()
    deadline = t0 + cfg.step_timeout_s
    traffic: list[dict[str, Any]] = []
    iteration = 0
    last: Analysis | None = None
    labelled_before: int | None = None
    while True:
        iteration += 1
        if cfg.replay_traffic:
            from pipelines.serving import send_traffic

            have = int(last.figures().get("errors.requests") or 0) if last is not None else 0
            n = requests_needed(settings, weight, have, last)
            summary = send_traffic(settings, batch_id, n, base_url=gw.base_url)
            traffic.append(
                {k: summary[k] for k in ("requests", "statuses", "variants", "rate_achieved", "labels_sent")}
            )
        else:
            time.sleep(cfg.analysis_interval_s)
        gw.flush()
        served = gw.version()
        if not served.get("canary") or str(served["canary"]["version"]) != version:
            raise ReleaseError(
                f"canary v{version} is no longer on the gateway (rolled back or replaced externally); "
                f"gateway serves {served.get('champion', {}).get('version')} / canary {served.get('canary')}"
            )
        look = judge_look(
            cfg,
            lambda final: analyse_step(settings, plan, step_start, final=final),
            held=time.monotonic() - t0,
            timed_out=time.monotonic() > deadline,
            labelled_before=labelled_before,
        )
        analysis = last = look.analysis
        held, verdict, reason, done = look.held, look.verdict, look.reason, look.done
        labelled_before = look.labelled
        figures = analysis.figures()
        result = {
            "step": weight,
            "verdict": verdict if done else "holding",
            "analysis_verdict": analysis.verdict,
            "reason": reason,
            "iteration": iteration,
            "held_seconds": round(held, 1),
            "step_start": step_start,
            "figures": figures,
            "checks": analysis.to_dict()["checks"],
            "traffic": traffic,
        }
        record_event(
            settings.paths.events,
            "canary_step",
            f"{plan.key}/step-{weight}",
            model_name=plan.model_name,
            version=version,
            champion_version=plan.champion_version,
            **result,
        )
        log.info("canary step analysed", step=weight, verdict=result["verdict"], reason=reason[:300])
        if done:
            return StepResult(step=weight, verdict=verdict, reason=reason, figures=figures)
        if verdict == "success" and not cfg.replay_traffic:
            continue
        if verdict == "success":  # judged already; only the window remains
            time.sleep(max(0.0, min(cfg.step_window_s - held, cfg.analysis_interval_s)))


def run_traffic_steps(settings: Settings, checked: PrecheckResult) -> Stepped:
    """Walk the canary weights on the live gateway; raises CanaryRejectedError on a failed step."""
    from pipelines.serving import GatewayError

    plan = checked.plan
    if plan.action is not ReleaseAction.RELEASE:
        return Stepped(checked, note=f"no traffic steps: {plan.reason}")
    version, champion = plan.candidate, str(plan.champion_version)
    with log_context(model_version=version, release=plan.key):
        gw = live_gateway(settings)
        served = gw.version()
        serving = (served.get("champion") or {}).get("version")
        if str(serving) != champion:
            raise ReleaseError(
                f"gateway {gw.base_url} serves champion v{serving} but the registry's @champion is "
                f"v{champion}; refusing to start a canary on an inconsistent base "
                "(check `mlops serving status`)"
            )
        if served.get("canary") and str(served["canary"]["version"]) != version:
            raise ReleaseError(f"another canary (v{served['canary']['version']}) is already on the gateway")
        batch_id = None
        if settings.canary.replay_traffic:
            from pipelines.serving import newest_batch

            batch_id = newest_batch(settings)
        try:
            gw.set_canary(version, 0, reason=f"canary release of v{version}")
        except GatewayError as exc:
            raise reject(settings, plan, "set canary", str(exc), None, gw) from exc
        results = []
        for weight in plan.steps:
            res = _run_step(settings, plan, gw, weight, batch_id)
            results.append(res)
            if res.verdict != "success":
                raise reject(settings, plan, f"step {weight}%", res.reason, res.figures, gw)
        return Stepped(checked, steps=tuple(results))
