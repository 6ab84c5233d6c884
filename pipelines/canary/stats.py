"""The statistics behind the canary analysis: pure functions of arrays, no pandas, no I/O.

Chosen for a verdict that is re-computed every few seconds and must not jitter: closed forms
(Wilson interval, pooled z-test, DeLong's paired AUC variance), no resampling.
"""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(failures: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = failures / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_greater(x1: int, n1: int, x2: int, n2: int) -> float:
    """One-sided p-value that proportion 1 exceeds proportion 2 (pooled z-test)."""
    from scipy.stats import norm

    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(norm.sf(z))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index on the reference's deciles (reported with the KS test)."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if edges.size < 3:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / expected.size
    a = np.histogram(actual, edges)[0] / actual.size
    e, a = np.clip(e, 1e-6, None), np.clip(a, 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))


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
