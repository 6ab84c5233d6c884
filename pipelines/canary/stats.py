"""The statistics behind the canary analysis: pure functions of arrays, no pandas, no I/O.

Chosen for a verdict that is re-computed every few seconds and must not jitter: closed forms
(Wilson interval, pooled z-test, DeLong's paired AUC variance from :mod:`pipelines.core.stats`),
no resampling.
"""

from __future__ import annotations

import math

import numpy as np

# DeLong's paired AUC lives in the kernel (the evaluation gate uses it too); re-exported here.
from pipelines.core.stats import auc_components, paired_auc_difference

__all__ = [
    "auc_components",
    "paired_auc_difference",
    "psi",
    "two_proportion_greater",
    "wilson_interval",
]


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
