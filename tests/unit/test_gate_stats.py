"""Calibration of the evaluation gate's statistics on synthetic data (issue 12).

A test that rejects equal models more often than alpha, or misses a truly worse one, would make
the gate's verdicts noise; these measure both over seeded repetitions, plus the exact arithmetic
(Holm, the harm test's boundaries).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.stats import (
    auc_se,
    bootstrap_se,
    harm_test,
    holm,
    mean_se,
    paired_auc_difference,
    paired_bootstrap_se,
)

pytestmark = pytest.mark.decisions

ALPHA = 0.05


def _two_scorers(rng: np.random.Generator, n: int, weaker: float = 0.0) -> tuple[np.ndarray, ...]:
    """Labels and two scorers of the same signal with independent noise (``weaker`` dilutes s2)."""
    signal = rng.normal(size=n)
    y = (signal + rng.normal(size=n) > 0.5).astype(int)
    s1 = signal + rng.normal(scale=1.0, size=n)
    s2 = (1 - weaker) * signal + rng.normal(scale=1.0 + 2 * weaker, size=n)
    return y, s1, s2


def test_holm_matches_the_textbook_step_down() -> None:
    # p sorted: 0.01, 0.02, 0.03, 0.5 -> x4, x3, x2, x1 with running max
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.04, 0.03]) == pytest.approx([0.06, 0.06])  # monotone: never below an earlier step
    assert holm([0.4, 0.4, 0.4]) == pytest.approx([1.0, 1.0, 1.0])  # capped at 1
    out = holm([float("nan"), 0.01])
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.02)  # NaN counts as a test, stays NaN


def test_harm_test_boundaries() -> None:
    at_margin = harm_test(-0.01, 0.004, 0.01, ALPHA)
    assert at_margin.p_value == pytest.approx(0.5)
    worse = harm_test(-0.03, 0.004, 0.01, ALPHA)
    assert worse.p_value < 1e-6 and worse.interval[1] < -0.01
    better = harm_test(0.0, 0.004, 0.01, ALPHA)
    assert better.p_value > 0.99
    # the (1 - 2 alpha) interval's upper end crosses -margin exactly where p crosses alpha
    edge = harm_test(-0.01 - 1.6449 * 0.004, 0.004, 0.01, ALPHA)
    assert edge.p_value == pytest.approx(ALPHA, abs=1e-3)
    assert edge.interval[1] == pytest.approx(-0.01, abs=1e-5)
    # known exactly (no noise): decided by the sign alone; NaN never decides
    assert harm_test(-0.02, 0.0, 0.01, ALPHA).p_value == 0.0
    assert harm_test(-0.005, 0.0, 0.01, ALPHA).p_value == 1.0
    assert np.isnan(harm_test(float("nan"), 0.01, 0.01, ALPHA).p_value)


def test_delong_paired_equal_models_reject_at_about_alpha() -> None:
    """Two equally good scorers, margin 0: the harm test's p-values are ~uniform, so the rejection
    rate is ~alpha (the worst case the gate allows: a true effect exactly at the margin)."""
    rng = np.random.default_rng(2024)
    p_values = []
    for _ in range(400):
        y, s1, s2 = _two_scorers(rng, 600)
        a1, a2, var = paired_auc_difference(y, s1, s2)
        p_values.append(harm_test(a1 - a2, float(np.sqrt(var)), 0.0, ALPHA).p_value)
    p = np.array(p_values)
    assert 0.02 <= np.mean(p < ALPHA) <= 0.09
    # roughly uniform: each quarter of [0, 1] holds about a quarter of the p-values
    quarters = np.histogram(p, bins=4, range=(0, 1))[0] / p.size
    assert np.all(np.abs(quarters - 0.25) < 0.07), quarters


def test_delong_paired_equal_models_almost_never_fail_with_a_margin() -> None:
    """With the gate's margin (0.01 AUC), equal models fail far less often than alpha."""
    rng = np.random.default_rng(7)
    fails = 0
    for _ in range(200):
        y, s1, s2 = _two_scorers(rng, 3000)
        a1, a2, var = paired_auc_difference(y, s1, s2)
        fails += harm_test(a1 - a2, float(np.sqrt(var)), 0.01, ALPHA).p_value < ALPHA
    assert fails / 200 <= 0.01


def test_delong_paired_truly_worse_model_is_rejected() -> None:
    rng = np.random.default_rng(11)
    fails, gaps = 0, []
    for _ in range(100):
        y, good, bad = _two_scorers(rng, 3000, weaker=0.4)
        a_bad, a_good, var = paired_auc_difference(y, bad, good)
        gaps.append(a_bad - a_good)
        fails += harm_test(a_bad - a_good, float(np.sqrt(var)), 0.01, ALPHA).p_value < ALPHA
    assert np.mean(gaps) < -0.05  # the scenario is what it claims: worse by well over the margin
    assert fails / 100 >= 0.95


def test_delong_se_matches_the_spread_over_resampled_populations() -> None:
    """The paired SE is honest: it matches the actual spread of the AUC difference across samples."""
    rng = np.random.default_rng(5)
    diffs, ses = [], []
    for _ in range(300):
        y, s1, s2 = _two_scorers(rng, 800)
        a1, a2, var = paired_auc_difference(y, s1, s2)
        diffs.append(a1 - a2)
        ses.append(np.sqrt(var))
    assert np.mean(ses) == pytest.approx(np.std(diffs), rel=0.15)
    auc, se = auc_se(y, s1)
    assert 0.5 < auc < 1 and 0 < se < 0.05


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y - p)))


def test_paired_bootstrap_regression_equal_models_reject_at_about_alpha() -> None:
    rng = np.random.default_rng(3)
    rejected = 0
    reps = 150
    for i in range(reps):
        x = rng.normal(size=300)
        y = 3 * x + rng.normal(size=300)
        p1 = 3 * x + rng.normal(scale=0.8, size=300)
        p2 = 3 * x + rng.normal(scale=0.8, size=300)
        se = paired_bootstrap_se(y, p1, p2, _mae, 200, seed=i)
        improvement = -(_mae(y, p1) - _mae(y, p2))  # lower MAE is better
        rejected += harm_test(improvement, se, 0.0, ALPHA).p_value < ALPHA
    assert 0.01 <= rejected / reps <= 0.10


def test_paired_bootstrap_regression_worse_model_is_rejected() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=700)
    y = 3 * x + rng.normal(size=700)
    good = 3 * x + rng.normal(scale=0.5, size=700)
    bad = 3 * x + rng.normal(scale=2.0, size=700)
    se = paired_bootstrap_se(y, bad, good, _mae, 500, seed=0)
    improvement = -(_mae(y, bad) - _mae(y, good))
    # worse by ~1 MAE unit; a 5 % margin of the good MAE (~0.05) is far away
    assert harm_test(improvement, se, 0.05 * _mae(y, good), ALPHA).p_value < 1e-6
    # seeded: the same inputs give the same standard error
    assert paired_bootstrap_se(y, bad, good, _mae, 500, seed=0) == se
    assert bootstrap_se(y, good, _mae, 200, seed=1) > 0


def test_behavioural_shift_is_judged_against_its_own_standard_error() -> None:
    rng = np.random.default_rng(9)
    # a noisy per-row effect around -0.01 with tolerance 0.005: not significant on 50 rows ...
    few = rng.normal(-0.01, 0.05, size=50)
    shift, se = mean_se(few)
    assert harm_test(shift, se, 0.005, ALPHA).p_value > ALPHA
    # ... but a consistent effect of -0.05 on 2000 rows is
    many = rng.normal(-0.05, 0.05, size=2000)
    shift, se = mean_se(many)
    assert harm_test(shift, se, 0.005, ALPHA).p_value < 1e-6
    assert np.isnan(mean_se(np.array([]))[0]) and np.isnan(mean_se(np.array([1.0]))[1])
