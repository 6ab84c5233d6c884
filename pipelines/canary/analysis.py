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
* **shift** (the whole release so far): two-sample Kolmogorov-Smirnov test and PSI of the
  canary's predictions against the champion's. A material shift (KS significant *and*
  ``D > shift_max_statistic``, or ``PSI > shift_max_psi``) is a **warning**, never a rollback on
  its own: a retrained model is expected to predict *differently* (a new base rate); whether it
  predicts *worse* is the quality check's question. The warning raises the bar: undecided
  quality can then not be promoted on "no harm" (see ``quality_undecided``).
* **quality** (the whole release so far, labelled rows only): *paired non-inferiority*. Every
  labelled row served during the release (by either variant) is scored by both
  models, the one that did not answer from the logged features, so both are
  judged on the same rows. Classification compares ROC AUC (DeLong's paired
  variance), regression MAE (paired absolute errors, relative to the champion's MAE). With the
  margin ``quality_max_drop``: passes when the CI rules out a loss of the margin; fails when the
  canary is significantly worse and the margin is not ruled out; otherwise it is undecided and
  the step holds for labels. A step that can get no more (``final``: it timed out, or its labels
  stopped growing) settles undecided quality by ``quality_undecided`` (hold → roll back at the
  timeout, rollback, promote_if_no_harm, or pool: keep the split and pool later batches' labels
  at a Bonferroni alpha-spending boundary, :func:`look_alpha`). Every analysis records the minimum detectable
  effect of the labels at hand (``quality.mde``, at ``quality_alpha / 2`` and
  ``quality_power``) and the labels the margin needs (``quality.labels_for_margin``). Comparing
  each variant on its own callers instead mixes two samples (and, early on, two periods) and
  needs several times more labels.

Any failed check (but a warning) fails the step; any required check that is still
``insufficient`` leaves it inconclusive (the caller holds and re-analyses, then fails safe).
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

    ``required`` is whether the check must be *conclusive* for the step to pass (``shift`` is
    not: it only informs); a failed check fails the step whatever ``required`` says, unless it
    is a ``warning``: a finding the canary is not to be rolled back for (a host-wide latency
    breach, a material prediction shift), recorded as ``warn``, never deciding.
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
    # Vectorised (no per-group Python call): a step of a few thousand requests is re-analysed often.
    return pd.DataFrame(
        {
            "latency_ms": df.groupby("request_id", sort=False)["latency_ms"].first(),
            "failed": df["error"].notna().groupby(df["request_id"], sort=False).any(),
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
    """Did the canary's predictions move? A *warning*, never a verdict on its own.

    A retrained model is expected to predict differently (a new base rate, a recalibrated tail):
    "different" is not "worse". A material shift (KS significant and beyond
    ``shift_max_statistic``, or PSI beyond ``shift_max_psi``) is recorded as ``warn`` and raises
    the bar for quality in :func:`analyse`: the step then needs conclusive non-inferiority.
    """
    from scipy.stats import ks_2samp

    n_c, n_r = canary_preds.size, champion_preds.size
    figs: dict[str, Any] = {"canary_rows": n_c, "champion_rows": n_r, "material": False}
    if n_c < MIN_SHIFT_ROWS or n_r < MIN_SHIFT_ROWS:
        return Check(
            "shift",
            Outcome.INCONCLUSIVE,
            f"{n_c} canary / {n_r} champion predictions (< {MIN_SHIFT_ROWS})",
            figs,
            required=False,
        )
    res = ks_2samp(canary_preds, champion_preds)
    d, p = float(res.statistic), float(res.pvalue)
    index = psi(champion_preds, canary_preds)
    figs.update(
        ks_statistic=_r(d),
        ks_pvalue=_r(p, 6),
        psi=_r(index),
        canary_mean=_r(float(canary_preds.mean())),
        champion_mean=_r(float(champion_preds.mean())),
        max_statistic=cfg.shift_max_statistic,
        max_psi=cfg.shift_max_psi,
        alpha=cfg.shift_alpha,
    )
    material = (p < cfg.shift_alpha and d > cfg.shift_max_statistic) or index > cfg.shift_max_psi
    if material:
        figs["material"] = True
        return Check(
            "shift",
            Outcome.FAIL,
            f"predictions shifted: KS D={d:.3f} (p={p:.2g}, max {cfg.shift_max_statistic}), "
            f"PSI {index:.3f} (max {cfg.shift_max_psi}); a warning: quality must be shown non-inferior",
            figs,
            required=False,
            warning=True,
        )
    return Check(
        "shift", Outcome.PASS, f"no material shift: KS D={d:.3f} (p={p:.2g}), PSI {index:.3f}", figs, False
    )


@dataclass(frozen=True)
class PairedTest:
    """The paired quality comparison, in *loss* units (positive = the canary is worse).

    ``loss`` is AUC points lost (classification) or the relative MAE increase (regression),
    the units of ``quality_max_drop``; ``se`` its standard error (DeLong's paired variance; for
    MAE the ratio estimator's delta-method variance). ``diff``/``diff_se`` are the raw metric
    difference canary - champion (AUC or MAE), reported for people.
    """

    metric: str
    canary: float
    champion: float
    diff: float
    diff_se: float
    loss: float
    se: float


def paired_test(y: np.ndarray, sc: np.ndarray, sr: np.ndarray, task: str) -> PairedTest | None:
    """Canary vs champion on the same rows; ``None`` when it cannot be computed (one class)."""
    if task == "classification":
        a_c, a_r, var = paired_auc_difference(y, sc, sr)
        if math.isnan(a_c):
            return None
        se = math.sqrt(var)
        return PairedTest("roc_auc", a_c, a_r, a_c - a_r, se, a_r - a_c, se)
    e_c, e_r = np.abs(y - sc), np.abs(y - sr)
    mae_c, mae_r = float(e_c.mean()), float(e_r.mean())
    n = y.size
    diff_se = float(np.std(e_c - e_r, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    if mae_r <= 0:
        return None
    loss = mae_c / mae_r - 1.0
    # Ratio estimator R = mean(e_c) / mean(e_r): Var(R) ~ Var(e_c - R e_r) / (n mean(e_r)^2).
    se = float(np.std(e_c - (1.0 + loss) * e_r, ddof=1) / math.sqrt(n) / mae_r) if n > 1 else float("nan")
    return PairedTest("mae", mae_c, mae_r, mae_c - mae_r, diff_se, loss, se)


def look_alpha(cfg: CanaryConfig) -> float:
    """The two-sided level each look's quality CI is built at.

    ``quality_alpha`` for a release judged on one batch; with ``quality_undecided: pool`` the
    release may look at up to ``quality_pool_max_batches`` (K) pooled batches, so each batch look
    spends ``quality_alpha / K`` (``/ 2`` per side): Bonferroni alpha spending. Why not an
    O'Brien-Fleming or Pocock boundary: those need the looks' information fractions fixed in
    advance (or a recursive integral at each observed fraction), while here a batch's labels are
    whatever matured; the union bound holds for any looks and is the conservative price
    (z 3.14 instead of 2.58 at K = 6 and quality_alpha 0.01).
    """
    if cfg.quality_undecided == "pool":
        return cfg.quality_alpha / cfg.quality_pool_max_batches
    return cfg.quality_alpha


def minimum_detectable_effect(se: float, alpha: float, power: float) -> float:
    """The smallest true loss that the one-sided test at ``alpha / 2`` detects with ``power``."""
    from scipy.stats import norm

    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def check_quality(
    paired: pd.DataFrame,
    cfg: CanaryConfig,
    task: str,
    scoring_errors: dict[str, str] | None = None,
) -> Check:
    """Canary vs champion on the *same* labelled rows (both models score every row): non-inferiority.

    ``paired`` holds one row per labelled entity served during the release: ``label``,
    ``canary`` and ``champion`` (each model's score), ``served_by`` and ``served``
    (the variant that answered and what it answered). The model that did not answer
    a row scored it afterwards from the logged features; ``replay_max_abs_diff``
    checks that this replay reproduces what was served, so the comparison judges
    what callers actually got.

    With ``loss`` the canary's quality loss (positive = worse), ``δ = quality_max_drop`` and the
    ``1 - quality_alpha`` CI ``[loss_low, loss_high]``: **pass** when ``loss_high < δ`` (a loss of
    the margin is ruled out: non-inferior); **fail** when ``loss_low > 0`` and not non-inferior
    (significantly worse, and possibly by the margin); otherwise **undecided** (inconclusive,
    required: the step holds for labels; :func:`resolve_undecided` applies
    ``quality_undecided`` once no more can come). An equal model is rolled back, and a model
    worse by δ passed, each with probability <= ``quality_alpha / 2`` per analysis; both are
    decided with probability ``quality_power`` once the MDE written in the evidence is <= δ.
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
        "margin": cfg.quality_max_drop,
        "confidence": 1 - cfg.quality_alpha,
        "power": cfg.quality_power,
        "undecided_policy": cfg.quality_undecided,
        "decision": "undecided",
    }
    if "canary" in errors:
        figs["scoring_error"] = errors["canary"][:300]
        figs["decision"] = "worse"
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
    sc, sr = paired["canary"].to_numpy(float), paired["champion"].to_numpy(float)
    if n:
        own = np.where(paired["served_by"] == "canary", sc, sr)
        drift = float(np.max(np.abs(own - paired["served"].to_numpy(float))))
        figs["replay_max_abs_diff"] = _r(drift, 9)
        if not drift <= REPLAY_TOLERANCE:
            figs["decision"] = "worse"
            return Check(
                "quality",
                Outcome.FAIL,
                "re-scoring logged features does not reproduce the served predictions (max |diff| "
                f"{drift:.3g}): the log no longer describes what was served, so quality cannot be trusted",
                figs,
            )
    test = paired_test(paired["label"].to_numpy(float), sc, sr, task) if n >= 2 else None
    if test is None:
        why = "no labelled rows" if n < 2 else "the labelled rows hold a single class (or a zero MAE)"
        return Check("quality", Outcome.INCONCLUSIVE, f"{why} since the release began", figs)
    from scipy.stats import norm

    alpha = look_alpha(cfg)
    z = float(norm.ppf(1 - alpha / 2))
    margin = cfg.quality_max_drop
    lo, hi = test.loss - z * test.se, test.loss + z * test.se
    mde = minimum_detectable_effect(test.se, alpha, cfg.quality_power)
    figs.update(
        look_alpha=_r(alpha, 6),
        boundary_z=_r(z),
        metric=test.metric,
        canary=_r(test.canary),
        champion=_r(test.champion),
        diff=_r(test.diff),
        ci_low=_r(test.diff - z * test.diff_se),
        ci_high=_r(test.diff + z * test.diff_se),
        loss=_r(test.loss),
        loss_low=_r(lo),
        loss_high=_r(hi),
        se=_r(test.se, 6),
        mde=_r(mde),
        # Labels that would bring the MDE down to the margin (SE shrinks as 1/sqrt(n)).
        labels_for_margin=math.ceil(n * (mde / margin) ** 2) if margin > 0 and math.isfinite(mde) else None,
        max_drop=margin,
    )
    if task == "classification":
        from sklearn.metrics import brier_score_loss

        y = paired["label"].to_numpy(float)
        figs["canary_brier"] = _r(float(brier_score_loss(y, np.clip(sc, 0, 1))))
        figs["champion_brier"] = _r(float(brier_score_loss(y, np.clip(sr, 0, 1))))
    else:
        figs["relative_mae_increase"] = _r(test.loss)
    verb = "higher is better" if test.metric == "roc_auc" else "lower is better"
    said = f"canary {test.metric} {test.canary:.3f} vs champion {test.champion:.3f} ({verb}), same {n} rows"
    units = "AUC points" if test.metric == "roc_auc" else "relative MAE"
    if n < cfg.quality_min_labels:
        return Check(
            "quality",
            Outcome.INCONCLUSIVE,
            f"{n} labelled rows since the release began (< {cfg.quality_min_labels}); MDE {mde:.3f} {units}",
            figs,
        )
    if not math.isfinite(test.se):
        return Check("quality", Outcome.INCONCLUSIVE, f"{said}: no variance estimate", figs)
    if hi < margin:
        figs["decision"] = "non_inferior"
        return Check(
            "quality",
            Outcome.PASS,
            f"{said}: non-inferior, loss {test.loss:+.3f} {units} with CI [{lo:.3f}, {hi:.3f}] "
            f"below the margin {margin}",
            figs,
        )
    if lo > 0:
        figs["decision"] = "worse"
        return Check(
            "quality",
            Outcome.FAIL,
            f"{said}: significantly worse, loss {test.loss:+.3f} {units} with {1 - alpha:.3g} "
            f"CI [{lo:.3f}, {hi:.3f}] above 0 and not below the margin {margin}",
            figs,
        )
    return Check(
        "quality",
        Outcome.INCONCLUSIVE,
        f"{said}: undecided, loss {test.loss:+.3f} {units} with CI [{lo:.3f}, {hi:.3f}] spans the "
        f"margin {margin}; MDE {mde:.3f} with these labels, ~{figs['labels_for_margin']} labels for "
        "the margin; holding for more labels",
        figs,
    )


def resolve_undecided(quality: Check, shift: Check, cfg: CanaryConfig) -> Check:
    """Quality that stayed undecided once no more labels can come: ``quality_undecided`` decides.

    Called only for a final analysis (see :func:`analyse`); the choice is recorded in the
    check's figures (``decided_by``) so the step's evidence says a policy, not a test, decided.
    """
    policy = cfg.quality_undecided
    figs = {**quality.figures, "decided_by": f"policy:{policy}"}
    # 'pool' ends here once its batches are spent (or the step timed out): the no-harm rule decides.
    rule = "promote_if_no_harm" if policy == "pool" else policy
    said = "promote_if_no_harm" if policy != "pool" else "pool, then promote_if_no_harm's rule"
    n, mde = int(figs.get("labelled") or 0), figs.get("mde")
    at_hand = f"{n} labelled rows, MDE {mde} vs margin {cfg.quality_max_drop}"
    if rule in ("hold", "rollback"):
        why = "step timed out waiting for labels" if rule == "hold" else "no more labels can come"
        return replace(
            quality,
            outcome=Outcome.FAIL,
            figures=figs,
            reason=f"{quality.reason}; undecided and {why} ({at_hand}): rolled back (policy {policy})",
        )
    if shift.figures.get("material"):
        return replace(
            quality,
            outcome=Outcome.FAIL,
            figures=figs,
            reason=f"{quality.reason}; undecided ({at_hand}) and the predictions shifted: a model that "
            f"predicts differently must show non-inferiority, not just no harm (policy {said})",
        )
    loss = figs.get("loss")
    if n < cfg.quality_min_labels or loss is None:
        figs["decision"] = "no_evidence_of_harm"
        return replace(
            quality,
            outcome=Outcome.PASS,
            figures=figs,
            reason=f"{quality.reason}; too few labels to read ({at_hand}), no shift: the other checks "
            f"decide (policy {said})",
        )
    if loss <= cfg.quality_max_drop / 2:
        figs["decision"] = "no_harm"
        return replace(
            quality,
            outcome=Outcome.PASS,
            figures=figs,
            reason=f"{quality.reason}; undecided ({at_hand}) but the loss estimate {loss:+.4f} is within "
            f"half the margin ({cfg.quality_max_drop / 2:.4f}), nothing shifted (policy {said})",
        )
    figs["decision"] = "harm"
    return replace(
        quality,
        outcome=Outcome.FAIL,
        figures=figs,
        reason=f"{quality.reason}; undecided ({at_hand}) and the loss estimate {loss:+.4f} exceeds half "
        f"the margin ({cfg.quality_max_drop / 2:.4f}): rolled back (policy {said})",
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
    final: bool = False,
) -> Analysis:
    """Judge one step. ``*_step``: this step's rows; ``*_release``/``reference``: since the release began.

    ``final``: no more labels can come for this step (the caller's call: the step timed out,
    or its labelled rows stopped growing); undecided quality is then settled by
    ``quality_undecided`` (:func:`resolve_undecided`) instead of holding.
    """
    ok_c = canary_release[canary_release["error"].isna()]["prediction"].dropna().to_numpy(float)
    ok_r = champion_reference[champion_reference["error"].isna()]["prediction"].dropna().to_numpy(float)
    champion_latency = champion_step if champion_step["request_id"].nunique() >= 20 else champion_reference
    shift = check_shift(ok_c, ok_r, cfg)
    quality = check_quality(paired, cfg, task, scoring_errors)
    if final and quality.outcome is Outcome.INCONCLUSIVE and "champion" not in (scoring_errors or {}):
        quality = resolve_undecided(quality, shift, cfg)
    checks = [
        check_errors(canary_step, cfg),
        check_latency(canary_step, champion_latency, cfg),
        shift,
        quality,
    ]
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
