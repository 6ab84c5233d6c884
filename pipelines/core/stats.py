"""Statistics shared by the decisions that compare two models on the same rows.

The evaluation gate (training) and the canary analysis both ask "is the candidate worse than
the champion on these rows?"; both use the same paired tests, so they live in the kernel.
Pure functions of numpy arrays: no pandas, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def auc_components(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """ROC AUC and DeLong's structural components (NaN and empty when a class is missing).

    From mid-ranks: O(n log n), exact for ties, and no resampling (a step is
    re-analysed often; the verdict must not jitter).
    """
    from scipy.stats import rankdata

    pos = y == 1
    x_pos, x_neg = s[pos], s[~pos]
    m, n = x_pos.size, x_neg.size
    if m == 0 or n == 0:
        return float("nan"), np.empty(0), np.empty(0)
    all_ranks = rankdata(np.concatenate([x_pos, x_neg]))
    v10 = (all_ranks[:m] - rankdata(x_pos)) / n  # P(score_pos_i > a negative)
    v01 = 1.0 - (all_ranks[m:] - rankdata(x_neg)) / m  # P(a positive > score_neg_j)
    return float(v10.mean()), v10, v01


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.cov(a, b, ddof=1)[0, 1]) if a.size > 1 else 0.0


def paired_auc_difference(y: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[float, float, float]:
    """AUC of two scorers on the same rows and the variance of their difference (DeLong 1988).

    Scoring the same rows makes the two AUCs strongly correlated; the covariance
    term removes the row-sampling noise both share, which an unpaired comparison
    of two traffic subsets cannot (it needs several times more labels for the same power).
    """
    a1, v10a, v01a = auc_components(y, s1)
    a2, v10b, v01b = auc_components(y, s2)
    if math.isnan(a1) or math.isnan(a2):
        return float("nan"), float("nan"), float("nan")
    m, n = v10a.size, v01a.size
    var = (_cov(v10a, v10a) - 2 * _cov(v10a, v10b) + _cov(v10b, v10b)) / m
    var += (_cov(v01a, v01a) - 2 * _cov(v01a, v01b) + _cov(v01b, v01b)) / n
    return a1, a2, max(var, 0.0)


def auc_se(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """ROC AUC of one scorer and its DeLong standard error (NaN, NaN when a class is missing)."""
    auc, v10, v01 = auc_components(y, s)
    if math.isnan(auc):
        return float("nan"), float("nan")
    var = _cov(v10, v10) / v10.size + _cov(v01, v01) / v01.size
    return auc, math.sqrt(max(var, 0.0))


def _bootstrap_sd(n: int, statistic_at: Callable[[np.ndarray], float], n_boot: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        with np.errstate(all="ignore"):
            try:
                v = statistic_at(idx)
            except ValueError:  # undefined on this resample (one class, constant target)
                continue
        if math.isfinite(v):
            values.append(v)
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def bootstrap_se(
    y: np.ndarray, s: np.ndarray, statistic: Callable[[np.ndarray, np.ndarray], float], n_boot: int, seed: int
) -> float:
    """Standard error of ``statistic(y, s)`` by a seeded bootstrap over rows (NaN below 2 rows)."""
    if y.size < 2:
        return float("nan")
    return _bootstrap_sd(y.size, lambda idx: statistic(y[idx], s[idx]), n_boot, seed)


def paired_bootstrap_se(
    y: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int,
    seed: int,
) -> float:
    """Standard error of ``statistic(y, s1) - statistic(y, s2)`` by a paired, seeded bootstrap.

    Both scorers are re-measured on the *same* resampled rows, so the row-sampling noise they
    share cancels (as in DeLong's covariance term); this serves every metric without a closed
    form (R², RMSE, MAE, log loss...). Seeded: the same evaluation gives the same verdict.
    Resamples on which the statistic is undefined (e.g. a single class) are skipped; NaN when
    fewer than two remain.
    """
    if y.size < 2:
        return float("nan")
    return _bootstrap_sd(
        y.size, lambda idx: statistic(y[idx], s1[idx]) - statistic(y[idx], s2[idx]), n_boot, seed
    )


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean of per-row effects and its standard error (std / sqrt(n); NaN below two rows)."""
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(x.size))


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


@dataclass(frozen=True)
class HarmTest:
    """Whether an effect is *significantly* on the harmful side of a margin.

    ``estimate`` is signed so that larger is better (an improvement, a shift in the expected
    direction, or tolerance headroom); harm means the true effect is below ``-margin``. The
    one-sided p-value tests H0 "true effect >= -margin" (no harm beyond the margin): a small p is
    evidence of harm. ``interval`` is the two-sided (1 - 2*alpha) normal interval, whose upper
    end lies below ``-margin`` exactly when p < alpha.
    """

    estimate: float
    se: float
    margin: float
    p_value: float
    interval: tuple[float, float]


def harm_test(estimate: float, se: float, margin: float, alpha: float) -> HarmTest:
    """One-sided test of harm beyond ``margin`` (normal approximation; see :class:`HarmTest`).

    A zero standard error (e.g. a constant effect on every row) gives p = 0 or 1: the effect is
    then known exactly. A NaN estimate or standard error gives p = NaN (the caller fails closed).
    """
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return HarmTest(estimate, se, margin, float("nan"), (float("nan"), float("nan")))
    if se == 0.0:
        p = 0.0 if estimate < -margin else 1.0
    else:
        p = normal_cdf((estimate + margin) / se)
    z = normal_quantile(1.0 - alpha)
    return HarmTest(estimate, se, margin, p, (estimate - z * se, estimate + z * se))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN; it is treated as p = 1 for the others).

    Rejecting where the adjusted p < alpha keeps the probability of *any* false rejection in the
    family at most alpha, whatever the dependence between the tests.
    """
    m = len(p_values)
    clean = [1.0 if math.isnan(p) else p for p in p_values]
    order = sorted(range(m), key=lambda i: clean[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * clean[i]))
        out[i] = running
    return [float("nan") if math.isnan(p) else a for p, a in zip(p_values, out, strict=True)]
