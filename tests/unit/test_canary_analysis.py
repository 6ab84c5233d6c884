"""The canary analysis' statistics on synthetic prediction-log frames (fast, no services).

Each case builds champion and canary traffic from a seeded generator with one
property changed (errors, latency, predictions, quality) and checks that exactly
that property decides the verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.canary.analysis import Analysis, analyse
from pipelines.canary.stats import (
    auc_components,
    paired_auc_difference,
    two_proportion_greater,
    wilson_interval,
)
from pipelines.config import CanaryConfig


def cfg(**kw: Any) -> CanaryConfig:
    base = {
        "min_requests": 100,
        "quality_min_labels": 200,
        "latency_p99_slo_ms": 50,
        "latency_min_samples": 50,
    }
    return CanaryConfig(**{**base, **kw})


def traffic(
    n: int,
    rng: np.random.Generator,
    *,
    latency: float = 5.0,
    error_rate: float = 0.0,
    signal: float = 2.0,
    shift: float = 0.0,
) -> pd.DataFrame:
    """Log rows of one variant: score = sigmoid(signal*z + shift), z ~ N(0, 1)."""
    z = rng.normal(size=n)
    score = 1 / (1 + np.exp(-(signal * z + shift - 1.2)))
    failed = rng.random(n) < error_rate
    return pd.DataFrame(
        {
            "request_id": [f"r{i}-{rng.integers(1e9)}" for i in range(n)],
            "entity_id": [f"e{i}" for i in range(n)],
            "prediction": np.where(failed, np.nan, score),
            "latency_ms": rng.gamma(4.0, latency / 4.0, size=n),
            "error": np.where(failed, "RuntimeError: boom", None),
            # Completion times 20 ms apart (50 requests/s per variant).
            "ts": pd.date_range("2026-01-01", periods=n, freq="20ms", tz="UTC").strftime(
                "%Y-%m-%dT%H:%M:%S.%f+00:00"
            ),
        }
    )


def paired(
    n: int, rng: np.random.Generator, *, signal: float = 2.0, shift: float = 0.0, canary_share: float = 0.3
) -> pd.DataFrame:
    """Labelled rows scored by both models: label ~ Bernoulli(sigmoid(z - 1.2)); the champion
    scores with signal 2, the canary with ``signal``/``shift``, plus independent noise each."""
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(z - 1.2)))).astype(float)
    champ = 1 / (1 + np.exp(-(2.0 * z + rng.normal(0, 0.5, n) - 1.2)))
    can = 1 / (1 + np.exp(-(signal * z + rng.normal(0, 0.5, n) + shift - 1.2)))
    by = np.where(rng.random(n) < canary_share, "canary", "champion")
    return pd.DataFrame(
        {
            "entity_id": [f"e{i}" for i in range(n)],
            "label": y,
            "served_by": by,
            "served": np.where(by == "canary", can, champ),
            "canary": can,
            "champion": champ,
        }
    )


def run(
    canary: pd.DataFrame,
    champion: pd.DataFrame,
    c: CanaryConfig,
    labelled: pd.DataFrame | None = None,
    **kw: Any,
) -> Analysis:
    return analyse(
        canary_step=canary,
        champion_step=champion,
        canary_release=canary,
        champion_reference=champion,
        paired=paired(3000, np.random.default_rng(99)) if labelled is None else labelled,
        cfg=c,
        task="classification",
        **kw,
    )


def status(analysis: Any, name: str) -> str:
    return next(ch.status for ch in analysis.checks if ch.name == name)


def test_an_equal_canary_succeeds() -> None:
    rng = np.random.default_rng(0)
    a = run(traffic(3000, rng), traffic(3000, rng), cfg(), paired(3000, rng, signal=2.0))
    assert a.verdict == "success", a.reason
    assert {c.name: c.status for c in a.checks} == {
        "errors": "pass",
        "latency": "pass",
        "shift": "pass",
        "quality": "pass",
    }


def test_errors_fail_fast_without_waiting_for_the_minimum() -> None:
    rng = np.random.default_rng(1)
    a = run(traffic(12, rng, error_rate=1.0), traffic(2000, rng), cfg())
    assert a.verdict == "failed" and status(a, "errors") == "fail"
    lo, _ = wilson_interval(12, 12)
    assert lo > 0.7


def test_few_requests_leave_the_step_inconclusive() -> None:
    rng = np.random.default_rng(2)
    a = run(traffic(30, rng), traffic(2000, rng), cfg())
    assert a.verdict == "inconclusive" and status(a, "errors") == "insufficient"


def test_a_slow_canary_fails_but_a_slow_host_does_not() -> None:
    rng = np.random.default_rng(3)
    slow = run(traffic(300, rng, latency=120), traffic(2000, rng, latency=5), cfg())
    assert slow.verdict == "failed" and status(slow, "latency") == "fail"
    host = run(traffic(300, rng, latency=40), traffic(2000, rng, latency=40), cfg())
    assert status(host, "latency") == "warn", host.reason
    assert host.verdict == "success"
    # A heavier tail on a busy host: significantly more requests over the SLO, but a p99 within
    # latency_max_ratio of the champion's is not the canary's fault.
    tail = run(traffic(2000, rng, latency=48), traffic(4000, rng, latency=40), cfg())
    lat = next(c for c in tail.checks if c.name == "latency").figures
    assert lat["canary_slower_pvalue"] < 0.01 and lat["p99_ratio"] < 1.5
    assert status(tail, "latency") == "warn", tail.reason


def test_one_stall_counts_once_but_repeated_slow_requests_fail() -> None:
    """Four requests held up by one 220 ms pause finish together: one event, not four."""
    rng = np.random.default_rng(11)
    champion = traffic(2000, rng)
    canary = traffic(250, rng)
    canary.loc[100:103, "latency_ms"] = [214.0, 227.0, 220.0, 220.0]
    base = pd.Timestamp(canary.loc[100, "ts"])
    canary.loc[100:103, "ts"] = [(base + pd.Timedelta(milliseconds=k * 4)).isoformat() for k in range(4)]
    stalled = run(canary, champion, cfg())
    lat = next(c for c in stalled.checks if c.name == "latency").figures
    assert lat["stall_requests_merged"] == 3 and lat["requests"] == 250
    assert status(stalled, "latency") != "fail", stalled.reason
    # The same four slow requests a second apart are four events: the canary is to blame.
    canary.loc[100:103, "ts"] = [(base + pd.Timedelta(seconds=k)).isoformat() for k in range(4)]
    spread = run(canary, champion, cfg())
    assert status(spread, "latency") == "fail", spread.reason


def test_a_shift_holds_until_labels_judge_it() -> None:
    rng = np.random.default_rng(4)
    few = cfg(quality_min_labels=5000)
    held = run(traffic(600, rng, shift=1.5), traffic(2000, rng), few, paired(3000, rng, shift=1.5))
    assert held.verdict == "inconclusive" and status(held, "shift") == "insufficient"
    # A base-rate shift with intact ranking: labelled quality vindicates it.
    ok = run(traffic(600, rng, shift=1.5), traffic(2000, rng), cfg(), paired(3000, rng, shift=1.5))
    assert status(ok, "shift") == "warn" and ok.verdict == "success", ok.reason


def test_a_useless_model_fails_on_quality() -> None:
    rng = np.random.default_rng(5)
    a = run(traffic(800, rng), traffic(2000, rng), cfg(), paired(2000, rng, signal=0.0))
    assert a.verdict == "failed" and status(a, "quality") == "fail"
    q = next(c for c in a.checks if c.name == "quality").figures
    assert q["ci_high"] < 0 and q["canary"] < q["champion"]


def test_weak_evidence_of_harm_holds_instead_of_passing() -> None:
    rng = np.random.default_rng(6)
    few = cfg(quality_min_labels=40, min_requests=50)
    a = run(traffic(60, rng), traffic(60, rng), few, paired(60, rng, signal=1.4))
    q = next(c for c in a.checks if c.name == "quality")
    if q.figures["diff"] < -0.02 and q.figures["ci_high"] >= 0:
        assert q.status == "insufficient" and q.required and a.verdict == "inconclusive"
    else:  # the draw was decisive either way; the rule above did not apply
        assert q.status in ("fail", "pass")


def test_pairing_detects_a_loss_that_independent_samples_miss() -> None:
    """A ~0.07 AUC loss on 1,200 labelled rows, half served by each variant: scoring every row with
    both models excludes 0 from the 99% CI; judging each variant on its own callers does not."""
    rng = np.random.default_rng(7)
    rows = paired(1200, rng, signal=0.6, canary_share=0.5)
    y, sc, sr = (rows[k].to_numpy(float) for k in ("label", "canary", "champion"))
    a_c, a_r, var_paired = paired_auc_difference(y, sc, sr)
    z = 2.576
    assert a_c - a_r + z * var_paired**0.5 < 0
    mine = (rows["served_by"] == "canary").to_numpy()
    own_c, v10c, v01c = auc_components(y[mine], sc[mine])
    own_r, v10r, v01r = auc_components(y[~mine], sr[~mine])
    var_independent = sum(v.var(ddof=1) / v.size for v in (v10c, v01c, v10r, v01r))
    assert own_c - own_r + z * var_independent**0.5 > 0  # the old design would still be holding
    a = run(traffic(800, rng), traffic(2000, rng), cfg(), rows)
    assert status(a, "quality") == "fail", a.reason


def test_paired_auc_variance_matches_the_bootstrap() -> None:
    rng = np.random.default_rng(8)
    rows = paired(1500, rng, signal=1.6)
    y, sc, sr = (rows[k].to_numpy(float) for k in ("label", "canary", "champion"))
    _, _, var = paired_auc_difference(y, sc, sr)
    from sklearn.metrics import roc_auc_score

    diffs = []
    for _ in range(400):
        i = rng.integers(0, y.size, y.size)
        diffs.append(roc_auc_score(y[i], sc[i]) - roc_auc_score(y[i], sr[i]))
    assert np.var(diffs) == pytest.approx(var, rel=0.25)


def test_a_canary_that_cannot_score_logged_rows_fails() -> None:
    rng = np.random.default_rng(9)
    a = run(traffic(800, rng), traffic(2000, rng), cfg(), scoring_errors={"canary": "v7: ValueError: boom"})
    assert a.verdict == "failed" and "cannot score" in a.reason


def test_replayed_scores_must_reproduce_what_was_served() -> None:
    rng = np.random.default_rng(10)
    rows = paired(2000, rng)
    rows.loc[rows.index[:5], "served"] += 0.01  # the log no longer matches the model
    a = run(traffic(800, rng), traffic(2000, rng), cfg(), rows)
    assert status(a, "quality") == "fail" and "reproduce" in a.reason


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "significant"), [(50, 100, 5, 100, True), (6, 100, 5, 100, False)]
)
def test_two_proportion_test(x1: int, n1: int, x2: int, n2: int, significant: bool) -> None:
    assert (two_proportion_greater(x1, n1, x2, n2) < 0.01) is significant
