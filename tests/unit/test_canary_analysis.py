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

from pipelines.canary.analysis import Analysis, analyse, minimum_detectable_effect
from pipelines.canary.stats import (
    auc_components,
    paired_auc_difference,
    two_proportion_greater,
    wilson_interval,
)
from pipelines.canary.stepping import is_final, requests_needed
from pipelines.config import CanaryConfig, load_settings

decisions = pytest.mark.decisions


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


def test_a_shift_holds_only_while_quality_is_undecided() -> None:
    """A shift is a warning: with too few labels the step holds for quality, not for the shift."""
    rng = np.random.default_rng(4)
    few = cfg(quality_min_labels=5000)
    held = run(traffic(600, rng, shift=1.5), traffic(2000, rng), few, paired(3000, rng, shift=1.5))
    assert held.verdict == "inconclusive" and status(held, "shift") == "warn"
    assert status(held, "quality") == "insufficient"
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


# ------------------------------------------------------------------ "different" is not "worse" (issue 12)
def quality(analysis: Analysis) -> dict[str, Any]:
    return next(c for c in analysis.checks if c.name == "quality").figures


def regression_pairs(n: int, rng: np.random.Generator, *, worse: float = 0.0) -> pd.DataFrame:
    """Targets y = f + noise; each model predicts f with its own error, the canary's scaled by
    ``1 + worse``."""
    f = rng.normal(150, 60, n)
    y = f + rng.normal(0, 40, n)
    champ = f + rng.normal(0, 20, n)
    can = f + rng.normal(0, 20, n) * (1 + worse)
    by = np.where(rng.random(n) < 0.3, "canary", "champion")
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


def regression_traffic(rows: pd.DataFrame, variant: str, rng: np.random.Generator) -> pd.DataFrame:
    t = traffic(len(rows), rng)
    return t.assign(prediction=rows[variant].to_numpy())


@decisions
def test_equal_quality_with_a_large_shift_is_promoted_with_a_warning() -> None:
    """A recalibrated retrain (every score moved, same ranking) on plenty of labels: success, shift 'warn'."""
    rng = np.random.default_rng(21)
    rows = paired(20000, rng, shift=1.5)
    a = run(traffic(600, rng, shift=1.5), traffic(2000, rng), cfg(), rows)
    assert a.verdict == "success", a.reason
    shift = next(c for c in a.checks if c.name == "shift")
    assert shift.status == "warn" and shift.figures["material"] and shift.figures["ks_statistic"] > 0.2
    q = quality(a)
    assert q["decision"] == "non_inferior" and q["loss_high"] < q["margin"]
    assert abs(q["loss"]) < 0.01


@decisions
def test_a_model_worse_by_the_margin_is_rolled_back() -> None:
    rng = np.random.default_rng(22)
    rows = paired(20000, rng, signal=0.7)  # ranks with a third of the signal
    a = run(traffic(800, rng), traffic(2000, rng), cfg(), rows)
    q = quality(a)
    assert q["loss"] > q["margin"] and q["loss_low"] > 0, q
    assert a.verdict == "failed" and status(a, "quality") == "fail" and q["decision"] == "worse"
    assert "significantly worse" in a.reason and q["ci_high"] < 0


@decisions
def test_too_few_labels_hold_then_the_configured_policy_decides_with_an_mde() -> None:
    """150 labels cannot separate a 0.02 AUC loss: the step holds; once final, the policy acts."""
    rng = np.random.default_rng(26)
    rows = paired(150, rng)
    canary, champion = traffic(600, rng), traffic(2000, rng)
    for n_min in (100, 1000):  # undecided with a test, and below the minimum: both report an MDE
        held = run(canary, champion, cfg(quality_min_labels=n_min), rows)
        q = quality(held)
        assert held.verdict == "inconclusive" and status(held, "quality") == "insufficient", held.reason
        assert q["mde"] > q["margin"] and q["labels_for_margin"] > 150 and q["se"] > 0
        assert q["undecided_policy"] == "promote_if_no_harm" and q["decision"] == "undecided"
    base = cfg(quality_min_labels=100)
    verdicts = {}
    for policy in ("hold", "rollback", "promote_if_no_harm"):
        final = run(canary, champion, base.model_copy(update={"quality_undecided": policy}), rows, final=True)
        q = quality(final)
        assert q["decided_by"] == f"policy:{policy}" and q["mde"] > q["margin"], q
        assert f"policy {policy}" in next(c.reason for c in final.checks if c.name == "quality")
        verdicts[policy] = final.verdict
    assert verdicts["hold"] == verdicts["rollback"] == "failed"
    # No shift and the loss estimate within half the margin (this draw): no harm, promoted.
    assert quality(run(canary, champion, base, rows, final=True))["loss"] <= 0.01
    assert verdicts["promote_if_no_harm"] == "success"


@decisions
def test_a_shift_raises_the_bar_for_undecided_quality() -> None:
    """Undecided quality is promoted on 'no harm' only when the predictions did not shift."""
    rng = np.random.default_rng(24)
    rows = paired(150, rng, shift=1.5)
    a = run(traffic(600, rng, shift=1.5), traffic(2000, rng), cfg(quality_min_labels=100), rows, final=True)
    assert status(a, "shift") == "warn" and a.verdict == "failed", a.reason
    assert "must show non-inferiority" in a.reason and quality(a)["decided_by"] == "policy:promote_if_no_harm"


@decisions
def test_undecided_harm_is_not_promoted() -> None:
    """Undecided, no shift, but the point estimate loses more than half the margin: rolled back."""
    rng = np.random.default_rng(28)  # an equally good canary whose 150 labels happen to look worse
    rows = paired(150, rng)
    a = run(traffic(600, rng), traffic(2000, rng), cfg(quality_min_labels=100), rows, final=True)
    q = quality(a)
    assert q["decided_by"] == "policy:promote_if_no_harm" and q["loss"] > 0.01 and q["mde"] > 0.02
    assert a.verdict == "failed" and q["decision"] == "harm", a.reason


@decisions
@pytest.mark.parametrize(("worse", "verdict"), [(0.0, "success"), (0.6, "failed")])
def test_regression_quality_is_paired_relative_mae(worse: float, verdict: str) -> None:
    """Regression: relative MAE increase from paired absolute errors (a canary 60% noisier
    loses ~15% MAE); an equal one is shown non-inferior at a 5% margin."""
    rng = np.random.default_rng(25)
    rows = regression_pairs(20000, rng, worse=worse)
    canary, champion = regression_traffic(rows, "canary", rng), regression_traffic(rows, "champion", rng)
    a = analyse(
        canary_step=canary,
        champion_step=champion,
        canary_release=canary,
        champion_reference=champion,
        paired=rows,
        cfg=cfg(quality_max_drop=0.05),
        task="regression",
    )
    q = quality(a)
    assert q["metric"] == "mae" and a.verdict == verdict, a.reason
    rel = float(
        np.abs(rows["label"] - rows["canary"]).mean() / np.abs(rows["label"] - rows["champion"]).mean() - 1
    )
    assert q["relative_mae_increase"] == pytest.approx(rel, abs=1e-4)
    assert q["ci_low"] <= q["diff"] <= q["ci_high"]
    assert q["decision"] == ("non_inferior" if verdict == "success" else "worse")


@decisions
def test_mde_shrinks_with_the_square_root_of_the_labels() -> None:
    rng = np.random.default_rng(26)
    small = quality(run(traffic(600, rng), traffic(2000, rng), cfg(), paired(2000, rng)))
    large = quality(run(traffic(600, rng), traffic(2000, rng), cfg(), paired(8000, rng)))
    assert small["mde"] == pytest.approx(minimum_detectable_effect(small["se"], 0.01, 0.8), abs=1e-4)
    assert large["mde"] / small["mde"] == pytest.approx(0.5, rel=0.2)
    assert small["labels_for_margin"] == pytest.approx(2000 * (small["mde"] / 0.02) ** 2, rel=0.01)


@decisions
def test_step_finality_and_label_requests_follow_the_policy() -> None:
    assert not is_final("hold", timed_out=False, labels_stalled=True)
    assert is_final("hold", timed_out=True, labels_stalled=False)
    assert is_final("rollback", timed_out=False, labels_stalled=True)
    assert is_final("promote_if_no_harm", timed_out=False, labels_stalled=True)
    assert not is_final("promote_if_no_harm", timed_out=False, labels_stalled=False)
    settings = load_settings()
    rng = np.random.default_rng(27)
    undecided = run(traffic(600, rng), traffic(2000, rng), cfg(quality_min_labels=100), paired(150, rng))
    want = quality(undecided)["labels_for_margin"]
    # At 100% weight the replay asks for the labels the margin needs (x1.15 for unlabelled rows).
    assert requests_needed(settings, 100, 600, undecided) == min(20000, int(np.ceil((want - 150) * 1.15)))
