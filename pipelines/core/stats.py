"""Statistics shared by the decisions that compare two models on the same rows.

The evaluation gate (training) and the canary analysis both ask "is the candidate worse than
the champion on these rows?"; both use the same paired tests, so they live in the kernel.
Pure functions of numpy arrays: no pandas, no I/O.
"""

from __future__ import annotations

import math

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
