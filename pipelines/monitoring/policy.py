"""The retrain policy: a pure function from (history, this window's evidence, config) to a decision.

Why each rule exists:

* **Important features, not the drifted share.** Weather columns drift every month on
  seasonal data; a policy on "share of drifted columns" would retrain monthly for
  nothing. Only features the model leans on (config list or the champion's
  permutation importance) can trigger, plus the prediction itself and measured quality.
* **Performance only on matured labels** and only with a minimum sample: labels arrive
  late, and an AUC on 40 rows is noise.
* **N-of-M hysteresis** (the latest window included) so one odd month does not retrain;
  a *severe* jump (score far past its threshold, or a large quality drop) skips it.
  Evidence resets when the champion or reference changes, and a retrain "spends" the
  evidence before it.
* **Guards** stop retrain storms: one retrain in flight at a time, a cooldown in windows,
  a cap per period.
* **No silent pass:** a window whose evidence is missing or damaged, or whose checks
  could not all be evaluated while none fired, is ``no_decision`` with the reason, never
  ``no_retrain``.

Everything here is plain data in, plain data out, so the policy is table-testable and a
recorded decision can be re-derived from its record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pipelines.config import MonitoringConfig
from pipelines.monitoring.contracts import RetrainAction
from pipelines.monitoring.evidence import WindowResult

CheckStatus = Literal["violated", "ok", "not_evaluated"]


@dataclass(frozen=True)
class PastWindow:
    """What the policy remembers of an earlier window's decision."""

    window: str
    ordinal: int
    reference_key: str
    violated: bool | None  # None: the window could not be judged at all
    action: str  # a RetrainAction value, as recorded


@dataclass(frozen=True)
class RetrainLock:
    """A retrain triggered and not finished yet (resolved by the caller: events, TTL)."""

    window: str
    triggered_at: str


@dataclass(frozen=True)
class PolicyHistory:
    windows: tuple[PastWindow, ...] = ()
    in_flight: RetrainLock | None = None


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str
    severe: bool = False
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    window: str
    ordinal: int
    action: RetrainAction
    reasons: list[str]
    violated: bool | None
    severe: bool = False
    checks: list[Check] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    hysteresis: dict[str, Any] = field(default_factory=dict)
    reference_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action.value}

    def as_past(self) -> PastWindow:
        return PastWindow(self.window, self.ordinal, self.reference_key, self.violated, self.action.value)


# --------------------------------------------------------------------------- checks
def check_important_drift(result: WindowResult, cfg: MonitoringConfig) -> Check:
    important = result.important_features
    if not important:
        return Check("important_drift", "not_evaluated", "no important features resolved")
    drifts = [result.feature_drift.get(c) for c in important]
    missing = [c for c, d in zip(important, drifts, strict=True) if d is None or d.score is None]
    computed = [d for d in drifts if d is not None and d.score is not None]
    drifted = [d for d in computed if d.detected]
    figures = {d.column: {"method": d.method, "score": d.score, "threshold": d.threshold} for d in computed}
    severe = any((d.severity or 0) >= cfg.severe_drift_factor for d in drifted)
    if len(drifted) >= cfg.min_important_drifted:
        detail = "important-feature drift: " + "; ".join(d.describe() for d in drifted)
        if severe:
            detail += f" [severe: >= {cfg.severe_drift_factor:g}x threshold]"
        return Check("important_drift", "violated", detail, severe, figures)
    if missing:
        notes = "; ".join(
            (result.feature_drift[c].describe() if c in result.feature_drift else f"{c}: absent")
            for c in missing
        )
        return Check(
            "important_drift", "not_evaluated", f"important features not evaluated: {notes}", False, figures
        )
    top = max(computed, key=lambda d: d.severity or 0.0)
    return Check(
        "important_drift",
        "ok",
        f"{len(drifted)} of {len(computed)} important features drifted "
        f"(need {cfg.min_important_drifted}); largest: {top.describe()}",
        False,
        figures,
    )


def check_prediction_drift(result: WindowResult, cfg: MonitoringConfig) -> Check:
    d = result.prediction_drift
    if d is None or d.score is None:
        note = d.note if d is not None else "no reference predictions"
        return Check("prediction_drift", "not_evaluated", f"prediction drift not computed: {note}")
    figures = {"method": d.method, "score": d.score, "threshold": d.threshold}
    if d.detected and cfg.prediction_drift_violates:
        severe = (d.severity or 0) >= cfg.severe_drift_factor
        return Check("prediction_drift", "violated", f"prediction drift: {d.describe()}", severe, figures)
    suffix = " (informational: monitoring.prediction_drift_violates is off)" if d.detected else ""
    return Check("prediction_drift", "ok", f"prediction: {d.describe()}{suffix}", False, figures)


def check_performance(result: WindowResult, cfg: MonitoringConfig) -> Check:
    p = result.performance
    if p is None:
        return Check("performance", "not_evaluated", "performance not computed")
    figures = {
        "metric": p.metric,
        "value": p.value,
        "baseline": p.baseline,
        "drop": p.drop,
        "n_labels": p.n_labels,
        "n_immature": p.n_immature,
    }
    if p.n_labels < cfg.min_mature_labels:
        return Check(
            "performance",
            "not_evaluated",
            f"only {p.n_labels} matured labels by {result.as_of} (min {cfg.min_mature_labels}; "
            f"{p.n_immature} more not yet available){'; ' + p.note if p.note else ''}",
            False,
            figures,
        )
    if p.value is None or p.baseline is None or p.drop is None:
        what = "the window's metric" if p.value is None else "the champion's holdout figure"
        return Check(
            "performance",
            "not_evaluated",
            f"{p.metric}: {what} is unknown ({p.note or 'n/a'})",
            False,
            figures,
        )
    text = (
        f"{p.metric}={p.value:.4f} vs champion holdout {p.baseline:.4f} "
        f"(drop {p.drop:+.4f}, tolerated {cfg.max_performance_drop:g}; {p.n_labels} labels)"
    )
    if p.drop > cfg.max_performance_drop:
        severe = p.drop >= cfg.severe_performance_drop
        return Check("performance", "violated", f"performance drop: {text}", severe, figures)
    return Check("performance", "ok", f"performance: {text}", False, figures)


# --------------------------------------------------------------------------- decision
def decide(history: PolicyHistory, result: WindowResult, cfg: MonitoringConfig) -> Decision:
    """Decide whether this window's evidence (with the earlier windows') warrants a retrain.

    ``history`` holds the decisions of *earlier* windows only (a re-run of this window
    must not count itself) and the retrain in flight, if any.
    """
    base: dict[str, Any] = {
        "window": result.window,
        "ordinal": result.ordinal,
        "reference_key": result.reference_key,
    }
    if result.status != "ok":
        return Decision(
            **base,
            action=RetrainAction.NO_DECISION,
            reasons=[f"{result.status}: {result.reason}"],
            violated=None,
        )

    checks = [
        check_important_drift(result, cfg),
        check_prediction_drift(result, cfg),
        check_performance(result, cfg),
    ]
    violations = [c for c in checks if c.status == "violated"]
    unevaluated = [c for c in checks if c.status == "not_evaluated"]

    if not violations:
        if unevaluated:
            return Decision(
                **base,
                action=RetrainAction.NO_DECISION,
                reasons=[f"{c.name} not evaluated: {c.detail}" for c in unevaluated]
                + ["no evaluated check fired, but the window cannot be called healthy"],
                violated=False,
                checks=checks,
            )
        return Decision(
            **base,
            action=RetrainAction.NO_RETRAIN,
            reasons=["every check within limits"],
            violated=False,
            checks=checks,
        )

    reasons = [c.detail for c in violations]
    severe = any(c.severe for c in violations)
    earlier = sorted((w for w in history.windows if w.ordinal < result.ordinal), key=lambda w: w.ordinal)
    last_retrain = max((w.ordinal for w in earlier if w.action == RetrainAction.RETRAIN), default=None)
    # Evidence: earlier judged windows against the same champion/reference, newer than the
    # last retrain (which spent the evidence before it), at most M-1 of them.
    relevant = [
        w
        for w in earlier
        if w.violated is not None
        and w.reference_key == result.reference_key
        and (last_retrain is None or w.ordinal > last_retrain)
    ]
    evidence = relevant[max(0, len(relevant) - (cfg.hysteresis_m - 1)) :]
    count = 1 + sum(1 for w in evidence if w.violated)
    hysteresis = {
        "violating": count,
        "of_last": len(evidence) + 1,
        "m": cfg.hysteresis_m,
        "required": cfg.hysteresis_n,
        "windows": [w.window for w in evidence] + [result.window],
        "severe_override": severe and count < cfg.hysteresis_n,
    }
    if count < cfg.hysteresis_n and not severe:
        return Decision(
            **base,
            action=RetrainAction.NO_RETRAIN,
            reasons=[
                *reasons,
                f"hysteresis: {count} of the last {len(evidence) + 1} evaluated windows violate "
                f"(need {cfg.hysteresis_n} of {cfg.hysteresis_m})",
            ],
            violated=True,
            severe=severe,
            checks=checks,
            hysteresis=hysteresis,
        )
    if severe and count < cfg.hysteresis_n:
        reasons.append("severe violation: hysteresis skipped")

    blocked: list[str] = []
    lock = history.in_flight
    if lock is not None and lock.window != result.window:
        blocked.append(
            f"in_flight: a retrain triggered by window {lock.window} at {lock.triggered_at} is running"
        )
    if last_retrain is not None and result.ordinal - last_retrain <= cfg.cooldown_windows:
        last = next(w.window for w in earlier if w.ordinal == last_retrain)
        blocked.append(
            f"cooldown: last retrain at window {last}, {result.ordinal - last_retrain} window(s) ago "
            f"(cooldown {cfg.cooldown_windows})"
        )
    recent = [
        w.window
        for w in earlier
        if w.action == RetrainAction.RETRAIN and w.ordinal > result.ordinal - cfg.period_windows
    ]
    if len(recent) >= cfg.max_retrains_per_period:
        blocked.append(
            f"max_per_period: {len(recent)} retrains in the last {cfg.period_windows} windows {recent} "
            f"(max {cfg.max_retrains_per_period})"
        )
    if blocked:
        return Decision(
            **base,
            action=RetrainAction.NO_RETRAIN,
            reasons=[*reasons, *(f"blocked by {b}" for b in blocked)],
            violated=True,
            severe=severe,
            checks=checks,
            blocked_by=[b.split(":", 1)[0] for b in blocked],
            hysteresis=hysteresis,
        )
    return Decision(
        **base,
        action=RetrainAction.RETRAIN,
        reasons=reasons,
        violated=True,
        severe=severe,
        checks=checks,
        hysteresis=hysteresis,
    )
