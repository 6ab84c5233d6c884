"""Canary analysis: is the canary worse than the champion, on the service and on the model?

(About 500 lines on purpose: the four checks, the rule that combines them and the record they
leave are one specification, read with this docstring; the statistics are in
:mod:`pipelines.canary.stats`, the reading of the prediction log in :mod:`.evidence`.)

Inputs are prediction-log frames (see :mod:`pipelines.core.predlog`); the
verdict is ``success``, ``failed`` or ``inconclusive``:

* **errors** (this step's window): the canary's request error rate. It fails as soon
  as the Wilson 95% lower bound exceeds ``max_error_rate`` (ten failures out of ten
  need no 200-request wait), and is judged on the point estimate once the step has
  ``min_requests``.
* **latency** (this step's window): server-side p99 per canary request against the
  SLO, once ``latency_min_samples`` requests are in; fails early when even the
  median breaks the SLO. A breach is the canary's fault only if a significantly
  larger share of its requests breaks the SLO than of the champion's (one-sided
  two-proportion z-test at ``latency_alpha``) *and* its p99 is more than
  ``latency_max_ratio`` times the champion's; otherwise it is a warning: the host
  is slow, and rolling the canary back would not fix it. (The ratio matters: on a
  busy host the variant with less traffic has a heavier tail for an identical
  model, its predictor thread being cold; in the demo a significantly *better*
  model was once rolled back on a 1.1x p99.) Over-SLO requests that complete
  together count once (:func:`latency_sample`): they were held up by one pause.
* **shift** (the whole release so far): two-sample Kolmogorov-Smirnov test of the
  canary's predictions against the champion's. Only a shift that is significant
  (``p < shift_alpha``) *and* large (``D > shift_max_statistic``) counts. A retrained
  model may legitimately move predictions (a new base rate), so a material shift
  *holds* the step until labelled quality can judge it: once the quality CI rules
  out a loss larger than ``shift_quality_margin`` the shift is a warning; quality
  worse → failed; labels never enough → fail safe at the step timeout.
* **quality** (the whole release so far, labelled rows only): *paired*. Every
  labelled row served during the release (by either variant) is scored by both
  models, the one that did not answer from the logged features, so both are
  judged on the same rows. Classification compares ROC AUC (DeLong's paired
  variance), regression MAE (paired differences). Fails when the canary is
  significantly worse (CI excludes 0) by more than ``quality_max_drop``; passes
  when its point estimate is within the tolerance; in between (worse, not yet
  significant) it holds the step for more labels. Below ``quality_min_labels``
  rows it is ``insufficient``, which does not block a step unless
  ``quality_required``. Comparing each variant on its own callers instead mixes
  two samples (and, early on, two periods) and needs several times more labels.

Any failed check fails the step; any required check that is still ``insufficient``
leaves it inconclusive (the caller holds and re-analyses, then fails safe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.canary.stats import paired_auc_difference, psi, two_proportion_greater, wilson_interval
from pipelines.config import CanaryConfig
from pipelines.core.gates import Criterion, Outcome, combine

#: A check's recorded status: its outcome, or ``warn`` for a failure that does not decide.
Status = Literal["pass", "fail", "insufficient", "warn"]
#: A step's recorded verdict.
StepVerdict = Literal["success", "failed", "inconclusive"]
_STATUS: dict[Outcome, Status] = {
    Outcome.PASS: "pass",
    Outcome.FAIL: "fail",
    Outcome.INCONCLUSIVE: "insufficient",
}
_VERDICT: dict[Outcome, StepVerdict] = {
    Outcome.PASS: "success",
    Outcome.FAIL: "failed",
    Outcome.INCONCLUSIVE: "inconclusive",
}
MIN_SHIFT_ROWS = 50
# Served vs re-scored prediction of the same row: float64 JSON round-trips exactly, so any
# real difference means the logged features are not what the model saw.
REPLAY_TOLERANCE = 1e-6
# Over-SLO requests completing this close together were stuck in the same pause (one event).
STALL_WINDOW_S = 0.05


@dataclass(frozen=True)
class Check:
    """One of the four checks of a step.

    ``required`` is whether the check must be *conclusive* for the step to pass (``quality``
    below ``quality_min_labels`` is not, unless ``canary.quality_required``); a failed check
    fails the step whatever ``required`` says. ``warning`` marks a failure the canary is not
    to blame for (a host-wide latency breach, a shift that labelled quality accepted): it is
    recorded as ``warn`` and never decides.
    """

    name: str
    outcome: Outcome
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    required: bool = True
    warning: bool = False

    @property
    def status(self) -> Status:
        return "warn" if self.warning else _STATUS[self.outcome]

    def criterion(self) -> Criterion:
        """This check as a gate criterion: ``required`` there means "decides the verdict"."""
        if self.outcome is Outcome.FAIL:
            decides = not self.warning
        else:
            decides = self.required
        return Criterion(
            kind="canary",
            name=self.name,
            outcome=self.outcome,
            detail=self.reason,
            figures=self.figures,
            required=decides,
        )

    def to_dict(self) -> dict[str, Any]:
        """The check as events record it."""
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "figures": dict(self.figures),
            "required": self.required,
        }


@dataclass(frozen=True)
class Analysis:
    verdict: StepVerdict
    reason: str
    checks: list[Check]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "checks": [c.to_dict() for c in self.checks]}

    def figures(self) -> dict[str, Any]:
        """Flat figures for tags and events: ``<check>.<figure>``."""
        out: dict[str, Any] = {}
        for c in self.checks:
            out[f"{c.name}.status"] = c.status
            for k, v in c.figures.items():
                out[f"{c.name}.{k}"] = v
        return out


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def per_request(df: pd.DataFrame) -> pd.DataFrame:
    """One row per request: latency, and whether the variant failed on it."""
    if df.empty:
        return pd.DataFrame({"request_id": [], "latency_ms": [], "failed": []})
    g = df.groupby("request_id", sort=False)
    return pd.DataFrame(
        {
            "latency_ms": g["latency_ms"].first(),
            "failed": g["error"].apply(lambda s: s.notna().any()),
        }
    ).reset_index()


def latency_sample(df: pd.DataFrame, slo_ms: float) -> tuple[np.ndarray, int]:
    """Per-request latencies with each *stall* counted once, and how many requests were merged.

    Requests over the SLO that complete within ``STALL_WINDOW_S`` of the first of them
    were held up by the same pause (a GC, a log flush, a busy host, one slow batched
    predict call): one event, not independent evidence. Counting each of them made four
    requests stuck in a single 220 ms pause "significantly" slower than the champion.
    Only the slowest of each burst is kept. Bursts are bounded by that window, never
    chained, so a canary that is slow all the time still yields a burst every window and
    nearly every kept request of it is over the SLO. Without a ``ts`` column nothing is merged.
    """
    req = per_request(df)
    lat = req["latency_ms"].to_numpy(dtype=float)
    if "ts" not in df.columns or lat.size == 0:
        return lat, 0
    done = pd.to_datetime(df.groupby("request_id", sort=False)["ts"].first(), utc=True, format="ISO8601")
    t = (done - done.min()).dt.total_seconds().to_numpy()
    over = np.flatnonzero(lat > slo_ms)
    if over.size < 2:
        return lat, 0
    over = over[np.argsort(t[over], kind="stable")]
    keep = np.ones(lat.size, dtype=bool)
    keep[over] = False
    start = 0
    while start < over.size:
        end = int(np.searchsorted(t[over], t[over[start]] + STALL_WINDOW_S, side="right"))
        members = over[start:end]
        keep[members[np.argmax(lat[members])]] = True
        start = end
    return lat[keep], int(lat.size - keep.sum())


def check_errors(canary_step: pd.DataFrame, cfg: CanaryConfig) -> Check:
    req = per_request(canary_step)
    n = len(req)
    failures = int(req["failed"].sum()) if n else 0
    rate = failures / n if n else 0.0
    lo, hi = wilson_interval(failures, n)
    figs = {
        "requests": n,
        "failures": failures,
        "rate": _r(rate),
        "wilson_low": _r(lo),
        "wilson_high": _r(hi),
    }
    figs["max_error_rate"] = cfg.max_error_rate
    if lo > cfg.max_error_rate:
        return Check(
            "errors",
            Outcome.FAIL,
            f"error rate {rate:.1%} ({failures}/{n}); even its 95% lower "
            f"bound {lo:.1%} exceeds {cfg.max_error_rate:.1%}",
            figs,
        )
    if n < cfg.min_requests:
        return Check(
            "errors", Outcome.INCONCLUSIVE, f"{n}/{cfg.min_requests} canary requests in this step", figs
        )
    if rate > cfg.max_error_rate:
        return Check(
            "errors", Outcome.FAIL, f"error rate {rate:.1%} ({failures}/{n}) > {cfg.max_error_rate:.1%}", figs
        )
    return Check("errors", Outcome.PASS, f"error rate {rate:.2%} ({failures}/{n})", figs)


def check_latency(canary_step: pd.DataFrame, champion: pd.DataFrame, cfg: CanaryConfig) -> Check:
    """p99 vs the SLO; a breach the champion shares (an overloaded host) is only a warning."""
    slo = cfg.latency_p99_slo_ms
    lat, merged = latency_sample(canary_step, slo)
    champ, champ_merged = latency_sample(champion, slo)
    n, m = lat.size, champ.size
    requests = n + merged  # the sample-size gates count requests; the statistics count events
    p50 = float(np.percentile(lat, 50)) if n else None
    p99 = float(np.percentile(lat, 99)) if n else None
    over, champ_over = int((lat > slo).sum()), int((champ > slo).sum())
    pvalue = two_proportion_greater(over, n, champ_over, m) if m >= 20 else 0.0
    figs = {
        "requests": requests,
        "p50_ms": _r(p50, 2),
        "p99_ms": _r(p99, 2),
        "slo_p99_ms": slo,
        "over_slo_share": _r(over / n) if n else None,
        "champion_requests": m,
        "champion_p99_ms": _r(float(np.percentile(champ, 99)), 2) if m else None,
        "champion_over_slo_share": _r(champ_over / m) if m else None,
        "canary_slower_pvalue": _r(pvalue, 6),
        "stall_requests_merged": merged,
        "champion_stall_requests_merged": champ_merged,
        "alpha": cfg.latency_alpha,
    }
    # "Slower than the champion" = a larger share of its requests breaks the SLO, significantly,
    # and by a margin that matters: its p99 beyond latency_max_ratio x the champion's.
    champ_p99 = float(np.percentile(champ, 99)) if m else None
    ratio = p99 / champ_p99 if p99 is not None and champ_p99 else None
    figs["p99_ratio"] = _r(ratio, 3)
    figs["max_ratio"] = cfg.latency_max_ratio
    canary_to_blame = pvalue < cfg.latency_alpha and (ratio is None or ratio > cfg.latency_max_ratio)
    if requests >= 20 and p50 is not None and p50 > slo and canary_to_blame:
        return Check(
            "latency",
            Outcome.FAIL,
            f"median latency {p50:.1f} ms already exceeds the p99 SLO {slo:.0f} ms",
            figs,
        )
    if requests < cfg.latency_min_samples:
        return Check(
            "latency",
            Outcome.INCONCLUSIVE,
            f"{requests}/{cfg.latency_min_samples} canary requests for a p99",
            figs,
        )
    assert p99 is not None
    if p99 > slo and not canary_to_blame:
        return Check(
            "latency",
            Outcome.FAIL,
            f"p99 {p99:.1f} ms > SLO {slo:.0f} ms, but within {cfg.latency_max_ratio}x of the "
            f"champion's p99 or not significantly more often over the SLO (p={pvalue:.2g}): "
            "host-wide, not the canary",
            figs,
            warning=True,
        )
    if p99 > slo:
        return Check(
            "latency",
            Outcome.FAIL,
            f"p99 latency {p99:.1f} ms > SLO {slo:.0f} ms and {ratio or float('nan'):.1f}x the champion's; "
            f"{over}/{n} canary requests over the SLO vs {champ_over}/{m} of the champion's "
            f"(p={pvalue:.2g})",
            figs,
        )
    return Check("latency", Outcome.PASS, f"p99 latency {p99:.1f} ms <= SLO {slo:.0f} ms", figs)


def check_shift(canary_preds: np.ndarray, champion_preds: np.ndarray, cfg: CanaryConfig) -> Check:
    from scipy.stats import ks_2samp

    n_c, n_r = canary_preds.size, champion_preds.size
    figs: dict[str, Any] = {"canary_rows": n_c, "champion_rows": n_r}
    if n_c < MIN_SHIFT_ROWS or n_r < MIN_SHIFT_ROWS:
        return Check(
            "shift",
            Outcome.INCONCLUSIVE,
            f"{n_c} canary / {n_r} champion predictions (< {MIN_SHIFT_ROWS})",
            figs,
        )
    res = ks_2samp(canary_preds, champion_preds)
    d, p = float(res.statistic), float(res.pvalue)
    figs.update(
        ks_statistic=_r(d),
        ks_pvalue=_r(p, 6),
        psi=_r(psi(champion_preds, canary_preds)),
        canary_mean=_r(float(canary_preds.mean())),
        champion_mean=_r(float(champion_preds.mean())),
        max_statistic=cfg.shift_max_statistic,
        alpha=cfg.shift_alpha,
    )
    if p < cfg.shift_alpha and d > cfg.shift_max_statistic:
        return Check(
            "shift",
            Outcome.FAIL,
            f"predictions shifted: KS D={d:.3f} > {cfg.shift_max_statistic} (p={p:.2g})",
            figs,
        )
    return Check("shift", Outcome.PASS, f"no material shift: KS D={d:.3f} (p={p:.2g})", figs)


def check_quality(
    paired: pd.DataFrame,
    cfg: CanaryConfig,
    task: str,
    scoring_errors: dict[str, str] | None = None,
) -> Check:
    """Canary vs champion on the *same* labelled rows (both models score every row).

    ``paired`` holds one row per labelled entity served during the release: ``label``,
    ``canary`` and ``champion`` (each model's score), ``served_by`` and ``served``
    (the variant that answered and what it answered). The model that did not answer
    a row scored it afterwards from the logged features; ``replay_max_abs_diff``
    checks that this replay reproduces what was served, so the comparison judges
    what callers actually got.
    """
    errors = scoring_errors or {}
    n = len(paired)
    served_c = int((paired["served_by"] == "canary").sum()) if n else 0
    figs: dict[str, Any] = {
        "labelled": n,
        "canary_served_labelled": served_c,
        "champion_served_labelled": n - served_c,
        "min_labels": cfg.quality_min_labels,
        "design": "paired (both models score every labelled row)",
    }
    required = cfg.quality_required
    if "canary" in errors:
        figs["scoring_error"] = errors["canary"][:300]
        return Check(
            "quality",
            Outcome.FAIL,
            f"the canary cannot score logged rows the champion answered: {errors['canary'][:300]}",
            figs,
        )
    if "champion" in errors:
        figs["scoring_error"] = errors["champion"][:300]
        return Check(
            "quality",
            Outcome.INCONCLUSIVE,
            f"the champion could not re-score rows: {errors['champion']}",
            figs,
        )
    if n < cfg.quality_min_labels:
        return Check(
            "quality",
            Outcome.INCONCLUSIVE,
            f"{n} labelled rows since the release began (< {cfg.quality_min_labels})",
            figs,
            required,
        )
    y = paired["label"].to_numpy(float)
    sc, sr = paired["canary"].to_numpy(float), paired["champion"].to_numpy(float)
    own = np.where(paired["served_by"] == "canary", sc, sr)
    drift = float(np.max(np.abs(own - paired["served"].to_numpy(float))))
    figs["replay_max_abs_diff"] = _r(drift, 9)
    if not drift <= REPLAY_TOLERANCE:
        return Check(
            "quality",
            Outcome.FAIL,
            f"re-scoring logged features does not reproduce the served predictions (max |diff| {drift:.3g}):"
            " the log no longer describes what was served, so quality cannot be trusted",
            figs,
        )
    from scipy.stats import norm

    if task == "classification":
        metric, higher_better = "roc_auc", True
        base_c, base_r, var = paired_auc_difference(y, sc, sr)
        if math.isnan(base_c):
            return Check(
                "quality", Outcome.INCONCLUSIVE, "the labelled rows hold a single class", figs, required
            )
    else:
        metric, higher_better = "mae", False
        d = np.abs(y - sc) - np.abs(y - sr)
        base_c, base_r = float(np.abs(y - sc).mean()), float(np.abs(y - sr).mean())
        var = float(d.var(ddof=1) / d.size)
    alpha = cfg.quality_alpha
    half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(var)
    diff = base_c - base_r
    lo, hi = diff - half, diff + half
    figs.update(
        metric=metric,
        canary=_r(base_c),
        champion=_r(base_r),
        diff=_r(diff),
        ci_low=_r(lo),
        ci_high=_r(hi),
        confidence=1 - alpha,
        max_drop=cfg.quality_max_drop,
    )
    if task == "classification":
        from sklearn.metrics import brier_score_loss

        figs["canary_brier"] = _r(float(brier_score_loss(y, np.clip(sc, 0, 1))))
        figs["champion_brier"] = _r(float(brier_score_loss(y, np.clip(sr, 0, 1))))
        worse_sig = hi < 0
        worse_big = diff < -cfg.quality_max_drop
        figs["rules_out_shift_margin"] = bool(lo >= -cfg.shift_quality_margin)
    else:
        rel = diff / base_r if base_r > 0 else 0.0
        figs["relative_mae_increase"] = _r(rel)
        worse_sig = lo > 0
        worse_big = rel > cfg.quality_max_drop
        figs["rules_out_shift_margin"] = bool(base_r > 0 and hi / base_r <= cfg.shift_quality_margin)
    verb = "higher is better" if higher_better else "lower is better"
    if worse_big and not worse_sig:
        # Worse beyond tolerance but not significantly yet: suspect, so the step holds for more
        # labels (whatever quality_required says) instead of passing on weak evidence.
        return Check(
            "quality",
            Outcome.INCONCLUSIVE,
            f"canary {metric} {base_c:.3f} vs champion {base_r:.3f} ({verb}): worse than the tolerance "
            f"but not significant yet (CI [{lo:.3f}, {hi:.3f}]); holding for more labels",
            figs,
            True,
        )
    if worse_sig and worse_big:
        return Check(
            "quality",
            Outcome.FAIL,
            f"canary {metric} {base_c:.3f} vs champion {base_r:.3f} on the same {n} labelled rows "
            f"({verb}); {1 - alpha:.0%} CI of the paired difference [{lo:.3f}, {hi:.3f}] excludes 0",
            figs,
            required,
        )
    return Check(
        "quality",
        Outcome.PASS,
        f"canary {metric} {base_c:.3f} vs champion {base_r:.3f} on the same {n} labelled rows; not "
        f"significantly worse (CI [{lo:.3f}, {hi:.3f}])",
        figs,
        required,
    )


def analyse(
    *,
    canary_step: pd.DataFrame,
    champion_step: pd.DataFrame,
    canary_release: pd.DataFrame,
    champion_reference: pd.DataFrame,
    paired: pd.DataFrame,
    cfg: CanaryConfig,
    task: str,
    scoring_errors: dict[str, str] | None = None,
) -> Analysis:
    """Judge one step. ``*_step``: this step's rows; ``*_release``/``reference``: since the release began."""
    ok_c = canary_release[canary_release["error"].isna()]["prediction"].dropna().to_numpy(float)
    ok_r = champion_reference[champion_reference["error"].isna()]["prediction"].dropna().to_numpy(float)
    champion_latency = champion_step if champion_step["request_id"].nunique() >= 20 else champion_reference
    checks = [
        check_errors(canary_step, cfg),
        check_latency(canary_step, champion_latency, cfg),
        check_shift(ok_c, ok_r, cfg),
        check_quality(paired, cfg, task, scoring_errors),
    ]
    quality = checks[3]
    shift = checks[2]
    if shift.status == "fail" and quality.status != "fail":
        # A retrained model may legitimately move predictions (e.g. a new base rate); only labels
        # can tell better from broken, and only with a CI tight enough to rule out a real loss.
        if quality.status == "pass" and quality.figures.get("rules_out_shift_margin"):
            shift = replace(
                shift,
                warning=True,
                reason=shift.reason
                + f"; accepted: labelled quality is within {cfg.shift_quality_margin} of the champion's",
            )
        else:
            shift = replace(
                shift,
                outcome=Outcome.INCONCLUSIVE,
                reason=shift.reason
                + f"; holding until labelled quality rules out a loss over {cfg.shift_quality_margin} "
                "(CI bound)",
            )
        checks[2] = shift
    return judge(checks)


def judge(checks: list[Check]) -> Analysis:
    """The step's verdict from its checks, by the gates' rule (:func:`pipelines.core.gates.combine`).

    Failed → the failed checks say why; inconclusive → the required checks still waiting say
    why; success → every check's reason.
    """
    outcome = combine(c.criterion() for c in checks)
    if outcome is Outcome.FAIL:
        why = [c for c in checks if c.status == "fail"]
    elif outcome is Outcome.INCONCLUSIVE:
        why = [c for c in checks if c.status == "insufficient" and c.required]
    else:
        why = checks
    return Analysis(_VERDICT[outcome], "; ".join(f"{c.name}: {c.reason}" for c in why), checks)
