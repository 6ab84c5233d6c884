"""``canary.quality_undecided: pool``: an undecided canary keeps its split and pools later batches.

720 labels cannot separate a 0.02 AUC margin (the MDE is ~0.03-0.04), so a small-batch release
either settles on a point estimate or waits for more labels. These cases pin the waiting rule:
the boundary each look is tested at (Bonferroni alpha spending over the planned batches), when
a look asks for another batch (``Look.pooling``), when the policy settles it instead, and that
pooled evidence reaches a decision by the test on seeded synthetic releases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from pipelines.canary.analysis import Analysis, analyse, look_alpha, minimum_detectable_effect
from pipelines.canary.stepping import Look, judge_look
from pipelines.config import CanaryConfig

pytestmark = pytest.mark.decisions

BATCH = 720


def cfg(**kw: Any) -> CanaryConfig:
    base = {"min_requests": 100, "quality_min_labels": 200, "latency_min_samples": 50, "step_window_s": 0}
    return CanaryConfig(**{**base, **kw})


def batch_rows(n: int, rng: np.random.Generator, signal: float, start: int) -> pd.DataFrame:
    """Labelled rows scored by both models (champion signal 2, canary ``signal``; own noise each)."""
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(z - 1.2)))).astype(float)
    champ = 1 / (1 + np.exp(-(2.0 * z + rng.normal(0, 0.5, n) - 1.2)))
    can = 1 / (1 + np.exp(-(signal * z + rng.normal(0, 0.5, n) - 1.2)))
    by = np.where(rng.random(n) < 0.5, "canary", "champion")
    return pd.DataFrame(
        {
            "entity_id": [f"e{start + i}" for i in range(n)],
            "label": y,
            "served_by": by,
            "served": np.where(by == "canary", can, champ),
            "canary": can,
            "champion": champ,
        }
    )


def log(preds: np.ndarray) -> pd.DataFrame:
    """A healthy variant's log rows (fast, no errors) serving ``preds``."""
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(preds.size)],
            "prediction": preds,
            "latency_ms": np.full(preds.size, 2.0),
            "error": pd.Series([None] * preds.size, dtype=object),
        }
    )


def analyser(rows: pd.DataFrame, c: CanaryConfig) -> Callable[[bool], Analysis]:
    canary = log(rows.loc[rows["served_by"] == "canary", "served"].to_numpy(float))
    champion = log(rows.loc[rows["served_by"] == "champion", "served"].to_numpy(float))

    def at(final: bool) -> Analysis:
        return analyse(
            canary_step=canary,
            champion_step=champion,
            canary_release=canary,
            champion_reference=champion,
            paired=rows,
            cfg=c,
            task="classification",
            final=final,
        )

    return at


def stalled_look(rows: pd.DataFrame, c: CanaryConfig, batches: int | None, **kw: Any) -> Look:
    """A look whose labels stopped growing (the batch is exhausted)."""
    return judge_look(c, analyser(rows, c), held=10.0, labelled_before=len(rows), batches=batches, **kw)


def pooled_release(signal: float, seed: int, c: CanaryConfig) -> tuple[Look, int]:
    """One release judged on 720-row batches, pooling a new batch whenever a look asks for it."""
    rng = np.random.default_rng(seed)
    rows = batch_rows(BATCH, rng, signal, 0)
    batches = 1
    while True:
        look = stalled_look(rows, c, batches, timed_out=False)
        if not look.pooling:
            return look, batches
        rows = pd.concat([rows, batch_rows(BATCH, rng, signal, len(rows))], ignore_index=True)
        batches += 1


def quality(look: Look) -> dict[str, Any]:
    return next(ch.figures for ch in look.analysis.checks if ch.name == "quality")


def test_pooling_spends_alpha_over_the_planned_batches() -> None:
    """Each batch look is tested at quality_alpha / K; the MDE and labels-for-margin follow it."""
    rng = np.random.default_rng(3)
    rows = batch_rows(BATCH, rng, 2.0, 0)
    single, pooled = cfg(), cfg(quality_undecided="pool", quality_pool_max_batches=6)
    assert look_alpha(single) == 0.01 and look_alpha(pooled) == pytest.approx(0.01 / 6)
    q1, q6 = (quality(stalled_look(rows, c, None, timed_out=False)) for c in (single, pooled))
    assert q6["boundary_z"] == pytest.approx(float(norm.ppf(1 - 0.01 / 12)), abs=1e-4)
    assert q1["boundary_z"] == pytest.approx(float(norm.ppf(1 - 0.005)), abs=1e-4)
    assert q6["mde"] == pytest.approx(minimum_detectable_effect(q6["se"], 0.01 / 6, 0.8), abs=1e-4)
    assert q6["labels_for_margin"] > q1["labels_for_margin"] > BATCH
    # The stricter boundary only widens the interval: the same estimate, a wider CI.
    assert q6["loss"] == q1["loss"] and q6["loss_high"] > q1["loss_high"]


def test_an_undecided_stalled_look_asks_for_the_next_batch_until_the_batches_are_spent() -> None:
    rng = np.random.default_rng(4)
    rows = batch_rows(BATCH, rng, 2.0, 0)
    c = cfg(quality_undecided="pool", quality_pool_max_batches=4)
    waiting = stalled_look(rows, c, 1, timed_out=False)
    assert waiting.pooling and not waiting.done and waiting.verdict == "inconclusive"
    assert "pooling" in waiting.reason and "1 of at most 4 batches" in waiting.reason
    assert quality(waiting)["decision"] == "undecided" and "decided_by" not in quality(waiting)
    # Batches spent, the step timed out, or a caller that cannot bring a batch: the policy settles.
    for batches, timed_out in ((4, False), (2, True), (None, False)):
        settled = stalled_look(rows, c, batches, timed_out=timed_out)
        q = quality(settled)
        assert not settled.pooling and settled.done, (batches, timed_out)
        assert q["decided_by"] == "policy:pool" and q["decision"] in ("no_harm", "harm")
        assert "pool, then promote_if_no_harm's rule" in settled.reason or settled.verdict == "success"
    # Labels still growing: the step simply holds, nothing pools yet.
    growing = judge_look(c, analyser(rows, c), held=10.0, timed_out=False, labelled_before=100, batches=1)
    assert not growing.pooling and not growing.done


def test_other_policies_never_pool() -> None:
    rng = np.random.default_rng(4)
    rows = batch_rows(300, rng, 2.0, 0)  # undecidable at the single-batch boundary too
    for policy in ("rollback", "promote_if_no_harm"):
        look = stalled_look(rows, cfg(quality_undecided=policy), 1, timed_out=False)
        assert not look.pooling and look.done and quality(look)["decided_by"] == f"policy:{policy}"


@pytest.mark.parametrize("seed", [11, 12, 15])
def test_pooled_batches_let_the_test_promote_an_equal_canary(seed: int) -> None:
    """An equal canary, undecidable on one 720-row batch, is shown non-inferior after a few."""
    c = cfg(quality_undecided="pool", quality_pool_max_batches=8)
    look, batches = pooled_release(2.0, seed, c)
    q = quality(look)
    assert look.verdict == "success" and q["decision"] == "non_inferior", look.reason
    assert "decided_by" not in q and 1 < batches <= 8 and q["labelled"] == batches * BATCH
    assert q["loss_high"] < c.quality_max_drop


@pytest.mark.parametrize("seed", [21, 23, 24])
def test_pooled_batches_let_the_test_roll_back_a_worse_canary(seed: int) -> None:
    """A canary worse by more than the margin is shown significantly worse on pooled batches."""
    c = cfg(quality_undecided="pool", quality_pool_max_batches=8)
    look, batches = pooled_release(0.8, seed, c)
    q = quality(look)
    assert look.verdict == "failed" and q["decision"] == "worse", look.reason
    assert "decided_by" not in q and 1 < batches <= 8 and q["labelled"] == batches * BATCH
    assert q["loss_low"] > 0 and q["loss"] > c.quality_max_drop
