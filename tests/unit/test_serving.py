"""Serving, the pure parts: request bucketing for the canary split."""

from __future__ import annotations

import math

import numpy as np


def test_bucketing_is_uniform_and_sticky() -> None:
    from pipelines.serving.routing import bucket, goes_to_canary

    keys = [f"entity-{i}" for i in range(20000)]
    share = np.mean([goes_to_canary(25, k, salt="7") for k in keys])
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(keys))
    assert all(goes_to_canary(25, k, "7") == goes_to_canary(25, k, "7") for k in keys[:500])
    # Raising the weight only moves callers to the canary, never back.
    assert all(goes_to_canary(50, k, "7") for k in keys[:2000] if goes_to_canary(10, k, "7"))
    assert bucket("a", "1") != bucket("a", "2")
