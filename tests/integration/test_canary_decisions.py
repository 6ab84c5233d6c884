"""Canary decisions on real models and real months: equal retrains promoted, worse ones rolled back.

The challengers are the project's training pipeline fitted on GX-published 2013-01..03 (a
champion, the same window with another seed, and one trained on permuted features that loses
>= 0.02 AUC on 2013-04, checked); each release replays resampled labelled rows of 2013-04
through the stepping loop's own rules (``support.canary_decisions.release``, shared with
``benchmarks/decisions_canary.py``, which measures the rates these tests only sample). Seeded
throughout, so each outcome below is deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.canary_decisions import Scored, release, train_models, with_demo_pacing

pytestmark = pytest.mark.decisions


@pytest.fixture(scope="module")
def models(settings: Any, published_batches: list[dict[str, Any]]) -> tuple[Scored, dict[str, float]]:
    return train_models(settings, max_rows=8000)


def test_the_challengers_are_what_they_claim(models: tuple[Scored, dict[str, float]]) -> None:
    scored, figures = models
    assert figures["canary_worse_auc_loss"] >= 0.02
    assert abs(figures["canary_equal_auc_diff"]) < 0.01
    assert scored.label.size > 20_000 and set(scored.scores) == {"champion", "equal", "worse"}


def test_a_month_sized_batch_promotes_equal_and_rolls_back_worse(
    settings: Any, models: tuple[Scored, dict[str, float]]
) -> None:
    scored, _ = models
    s = with_demo_pacing(settings)
    n = scored.label.size
    for seed in range(3):
        rng = np.random.default_rng(seed)
        equal = release(s, scored, "equal", rng.integers(0, n, n), rng)
        assert equal["promoted"], equal["reason"]
        worse = release(s, scored, "worse", rng.integers(0, n, n), rng)
        assert not worse["promoted"] and worse["step"] == s.canary.steps[0]
        assert "quality" in worse["reason"] and worse["figures"]["quality.loss"] > 0


def test_a_720_row_batch_settles_by_the_configured_policy_with_an_mde(
    settings: Any, models: tuple[Scored, dict[str, float]]
) -> None:
    """720 labelled rows cannot rule out a 0.02 AUC loss: the policy decides, and says so."""
    scored, _ = models
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for policy in ("rollback", "promote_if_no_harm"):
        s = with_demo_pacing(settings, quality_undecided=policy)
        runs = []
        for seed in range(4):
            rng = np.random.default_rng(seed)
            runs.append(release(s, scored, "equal", rng.choice(scored.label.size, 720, replace=False), rng))
        outcomes[policy] = runs
    for by_rollback, by_no_harm in zip(outcomes["rollback"], outcomes["promote_if_no_harm"], strict=True):
        for run in (by_rollback, by_no_harm):
            q = run["figures"]
            assert q["quality.labelled"] <= 720 and q["quality.mde"] > q["quality.margin"], q
        if not by_rollback["policy"]:
            # The test itself decided (the canary looked better by enough to rule out the margin):
            # no policy was needed, so both policies agree.
            assert by_rollback["promoted"] and by_no_harm["promoted"] and not by_no_harm["policy"]
            continue
        assert not by_rollback["promoted"] and "policy rollback" in by_rollback["reason"]
        assert by_rollback["figures"]["quality.labels_for_margin"] > 720
        q = by_no_harm["figures"]
        assert by_no_harm["policy"] and q["quality.decided_by"] == "policy:promote_if_no_harm"
        # The point estimate decided: promoted exactly when the loss is within half the margin.
        assert by_no_harm["promoted"] == (q["quality.loss"] <= q["quality.margin"] / 2), q
    assert any(r["policy"] for r in outcomes["rollback"])
