"""Opportunistic micro-batching: concurrent requests to one model share a predict call.

A scikit-learn ``Pipeline`` (a ``ColumnTransformer`` with pandas output, encoders,
then the estimator) costs about the same for 1 row as for 100: the time goes into
per-call overhead, not rows. So each served model has one predictor thread; a
request hands over its validated columns and waits; the thread takes whatever has
queued up while it was busy (up to ``max_rows``), predicts once, and hands each
request its slice. Nothing waits for a batch to fill: a lone request is predicted
at once (no added latency at low load), and batches grow with concurrency exactly
when throughput matters.

Champion and canary take turns (:class:`PredictTurns`). Their predict calls are
Python-bound, so two predictor threads running at once only fight over the GIL
(each call's wall time doubled: measured 7 ms of CPU taking 15-17 ms) while every
batch stays half-size, and the split paid for twice as many calls per request
(+16 ms p50 at concurrency 10). Taking turns, one variant's queue fills while the
other predicts, so each call carries as many requests as the champion alone would
have batched, and the split costs (almost) no extra CPU per request. A turn is
only waited for up to :data:`TURN_WAIT_S`: a variant whose call overruns it (a slow
or stuck canary) is waited for no longer, and runs outside the turns until its
calls are fast again, so it can never stall the other variant's thread.

If a batched call raises, each request of the batch is retried alone, so one
request that breaks the model cannot fail its neighbours (and a model that raises
on everything still fails each request on its own, which the gateway then answers
with the champion). A request whose caller stopped waiting (its future cancelled,
e.g. a canary timeout) is dropped before it costs a predict.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# How long a predictor waits for another variant's call before predicting alongside it. Above
# a normal call (7-10 ms for the sklearn pipeline on a busy core, far less compiled), far below
# what a stalled canary would cost the champion.
TURN_WAIT_S = 0.03


class PredictTurns:
    """A fair (FIFO) turn between predictor threads, with a bounded wait.

    ``threading.Lock`` is not fair: the thread that releases it re-acquires it first
    (it holds the GIL), which would starve the other variant. Here a release hands
    the turn to the oldest waiter. A holder that keeps its turn longer than a
    waiter's ``timeout`` is marked *unruly*: waiters stop waiting for it, and its
    next calls skip the turns until one of them finishes within the bound.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._holder: object | None = None
        self._waiters: deque[object] = deque()
        self._unruly: set[object] = set()

    def acquire(self, who: object, timeout: float) -> bool:
        """Take the turn (True), or give up waiting after ``timeout`` (False: predict anyway)."""
        with self._cond:
            if who in self._unruly:
                return False
            if self._holder is None and not self._waiters:
                self._holder = who
                return True
            self._waiters.append(who)
            deadline = time.monotonic() + timeout
            while True:
                if self._holder is None and self._waiters[0] is who:
                    self._waiters.popleft()
                    self._holder = who
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiters.remove(who)
                    if self._holder is not None:
                        self._unruly.add(self._holder)  # stop making anyone wait for it
                    self._cond.notify_all()
                    return False
                self._cond.wait(left)

    def release(self, who: object, seconds: float, timeout: float) -> None:
        """End ``who``'s call (taken with a turn or not); ``seconds`` is how long it predicted."""
        with self._cond:
            if seconds <= timeout:
                self._unruly.discard(who)
            else:
                self._unruly.add(who)
            if self._holder is who:
                self._holder = None
                self._cond.notify_all()

    def forget(self, who: object) -> None:
        with self._cond:
            self._unruly.discard(who)
            if self._holder is who:
                self._holder = None
            if who in self._waiters:
                self._waiters.remove(who)
            self._cond.notify_all()


# Shared by every model of the process: the gateway serves a champion and at most one canary.
TURNS = PredictTurns()


@dataclass
class _Item:
    columns: Sequence[str]
    arrays: Sequence[Any]
    n_rows: int
    future: Future[np.ndarray]


class MicroBatcher:
    """One predictor thread per model; :meth:`submit` returns a future of this request's predictions."""

    def __init__(
        self,
        predict: Callable[[pd.DataFrame], np.ndarray],
        name: str,
        max_rows: int = 2048,
        turns: PredictTurns | None = TURNS,
        turn_wait_s: float = TURN_WAIT_S,
    ) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._turns = turns
        self._turn_wait_s = turn_wait_s
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"predict-{name}", daemon=True)
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self.calls = 0
        self.rows = 0

    def submit(self, columns: Sequence[str], arrays: Sequence[Any], n_rows: int) -> Future[np.ndarray]:
        """Queue one request's rows; the future resolves to its predictions (or the model's error)."""
        fut: Future[np.ndarray] = Future()
        item = _Item(columns, arrays, n_rows, fut)
        with self._lock:  # enqueue strictly before or after close(): nothing is left unserved
            closed = self._closed
            if not closed:
                if not self._started:
                    self._thread.start()
                    self._started = True
                self._queue.put(item)
        if closed:  # the model was unloaded while this request was routed to it
            self._serve([item])
        return fut

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._started:
                self._queue.put(None)

    def _run(self) -> None:
        import sklearn

        # Inputs were validated by the gateway (types, inf refused, NaN only where imputed), so the
        # per-call finiteness and parameter checks are redundant work on the hot path.
        sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
        carry: _Item | None = None
        try:
            while True:
                item = carry if carry is not None else self._queue.get()
                carry = None
                if item is None:
                    return
                batch, stop = [item], False
                # Wait for the turn before taking the queue: what arrives meanwhile joins this batch.
                if self._turns is not None:  # False = waited long enough: predict alongside
                    self._turns.acquire(self, self._turn_wait_s)
                rows = item.n_rows
                while rows < self._max_rows:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    if list(nxt.columns) != list(item.columns):  # another schema: next batch
                        carry = nxt
                        break
                    batch.append(nxt)
                    rows += nxt.n_rows
                t0 = time.monotonic()
                try:
                    self._serve(batch)
                finally:
                    if self._turns is not None:
                        self._turns.release(self, time.monotonic() - t0, self._turn_wait_s)
                if stop:
                    return
        finally:
            if self._turns is not None:
                self._turns.forget(self)

    def _frame(self, batch: list[_Item]) -> pd.DataFrame:
        cols = batch[0].columns
        if len(batch) == 1:
            return pd.DataFrame(dict(zip(cols, batch[0].arrays, strict=True)), copy=False)
        return pd.DataFrame(
            {c: np.concatenate([it.arrays[j] for it in batch]) for j, c in enumerate(cols)}, copy=False
        )

    def _serve(self, batch: list[_Item]) -> None:
        # A request whose caller gave up (cancelled future) costs nothing; the rest cannot be cancelled.
        batch = [it for it in batch if it.future.set_running_or_notify_cancel()]
        if batch:
            self._predict_batch(batch)

    def _predict_batch(self, batch: list[_Item]) -> None:
        n = sum(it.n_rows for it in batch)
        self.calls += 1
        self.rows += n
        try:
            preds = np.asarray(self._predict(self._frame(batch)))
            if preds.shape[0] != n:
                raise ValueError(f"model returned {preds.shape[0]} predictions for {n} rows")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for it in batch:  # isolate: one request must not fail its neighbours
                self._predict_batch([it])
            return
        start = 0
        for it in batch:
            it.future.set_result(preds[start : start + it.n_rows])
            start += it.n_rows
