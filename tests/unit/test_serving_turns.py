"""Champion and canary predictor threads take fair, bounded turns (issue 16: the split under load).

Real :class:`MicroBatcher` threads over plain predict functions: the turns must keep two
variants' Python-bound calls from overlapping (overlap only fights over the GIL and halves
each batch), hand the turn over fairly, and never let a slow variant hold the other up for
more than the bounded wait.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, wait

import numpy as np
import pandas as pd
import pytest
import sklearn  # noqa: F401  (imported by every predictor thread: not inside a timed call)

from pipelines.serving.batching import MicroBatcher, PredictTurns

pytestmark = pytest.mark.performance

COLS = ["x"]


class Recorder:
    """A predict function that records how many calls overlap and how big each batch was."""

    def __init__(self, seconds: float = 0.0, shared: dict[str, int] | None = None) -> None:
        self.seconds = seconds
        self.shared = shared if shared is not None else {"now": 0, "max": 0}
        self.lock = threading.Lock()
        self.batches: list[int] = []

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        with self.lock:
            self.shared["now"] += 1
            self.shared["max"] = max(self.shared["max"], self.shared["now"])
        self.batches.append(len(frame))
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:  # busy, like a Python-bound sklearn call
            pass
        with self.lock:
            self.shared["now"] -= 1
        return frame["x"].to_numpy(dtype=float) * 2


def submit(b: MicroBatcher, value: float) -> Future[np.ndarray]:
    return b.submit(COLS, [np.array([value])], 1)


def test_two_variants_take_turns_and_batch_while_the_other_predicts() -> None:
    turns = PredictTurns()
    shared = {"now": 0, "max": 0}
    champ, canary = Recorder(0.004, shared), Recorder(0.004, shared)
    a = MicroBatcher(champ, "champ", turns=turns, turn_wait_s=1.0)
    b = MicroBatcher(canary, "canary", turns=turns, turn_wait_s=1.0)
    try:
        futs = []
        for i in range(200):
            futs += [submit(a, i), submit(b, -i)]
            if i % 10 == 0:
                time.sleep(0.002)
        _, pending = wait(futs, timeout=30)
        assert not pending
        assert [f.result()[0] for f in futs[:6]] == [0.0, -0.0, 2.0, -2.0, 4.0, -4.0]
    finally:
        a.close()
        b.close()
    assert shared["max"] == 1, "the two variants' predict calls overlapped"
    # Both were served (fair turns, no starvation), each in batches, not one call per request.
    assert sum(champ.batches) == sum(canary.batches) == 200
    assert len(champ.batches) < 150 and len(canary.batches) < 150


def test_a_slow_variant_holds_the_other_up_for_at_most_the_bounded_wait() -> None:
    turns = PredictTurns()
    slow, fast = Recorder(), Recorder()
    slow_b = MicroBatcher(lambda f: (time.sleep(1.5), slow(f))[1], "slow", turns=turns, turn_wait_s=0.05)
    fast_b = MicroBatcher(fast, "fast", turns=turns, turn_wait_s=0.05)
    try:
        stuck = submit(slow_b, 1.0)
        time.sleep(0.1)  # the slow call holds the turn now
        lat = []
        for i in range(20):
            t0 = time.perf_counter()
            assert submit(fast_b, i).result(timeout=5)[0] == 2 * i
            lat.append(time.perf_counter() - t0)
        assert not stuck.done(), "the slow call should still be running"
        # Once waited out, the slow variant is no longer waited for at all.
        assert lat[0] < 0.5 and max(lat[1:]) < 0.1, lat
        assert stuck.result(timeout=5)[0] == 2.0
    finally:
        slow_b.close()
        fast_b.close()


def test_a_cancelled_request_costs_no_predict() -> None:
    gate = threading.Event()
    rec = Recorder()
    b = MicroBatcher(lambda f: (gate.wait(5), rec(f))[1], "m", turns=None)
    try:
        first = submit(b, 1.0)  # occupies the thread until the gate opens
        time.sleep(0.05)
        abandoned, kept = submit(b, 2.0), submit(b, 3.0)
        assert abandoned.cancel()
        gate.set()
        assert first.result(timeout=5)[0] == 2.0 and kept.result(timeout=5)[0] == 6.0
    finally:
        b.close()
    assert sum(rec.batches) == 2, "the cancelled request was predicted"
