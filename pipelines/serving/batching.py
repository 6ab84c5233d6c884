"""Opportunistic micro-batching: concurrent requests to one model share a predict call.

A scikit-learn ``Pipeline`` (a ``ColumnTransformer`` with pandas output, encoders,
then the estimator) costs about the same for 1 row as for 100: the time goes into
per-call overhead, not rows. So each served model has one predictor thread; a
request hands over its validated columns and waits; the thread takes whatever has
queued up while it was busy (up to ``max_rows``), predicts once, and hands each
request its slice. Nothing waits for a batch to fill: a lone request is predicted
at once (no added latency at low load), and batches grow with concurrency exactly
when throughput matters.

If a batched call raises, each request of the batch is retried alone, so one
request that breaks the model cannot fail its neighbours (and a model that raises
on everything still fails each request on its own, which the gateway then answers
with the champion).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class _Item:
    columns: Sequence[str]
    arrays: Sequence[Any]
    n_rows: int
    future: Future[np.ndarray]


class MicroBatcher:
    """One predictor thread per model; :meth:`submit` returns a future of this request's predictions."""

    def __init__(
        self, predict: Callable[[pd.DataFrame], np.ndarray], name: str, max_rows: int = 2048
    ) -> None:
        self._predict = predict
        self._max_rows = max_rows
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
        while True:
            item = carry if carry is not None else self._queue.get()
            carry = None
            if item is None:
                return
            batch, rows, stop = [item], item.n_rows, False
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
            self._serve(batch)
            if stop:
                return

    def _frame(self, batch: list[_Item]) -> pd.DataFrame:
        cols = batch[0].columns
        if len(batch) == 1:
            return pd.DataFrame(dict(zip(cols, batch[0].arrays, strict=True)), copy=False)
        return pd.DataFrame(
            {c: np.concatenate([it.arrays[j] for it in batch]) for j, c in enumerate(cols)}, copy=False
        )

    def _serve(self, batch: list[_Item]) -> None:
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
                self._serve([it])
            return
        start = 0
        for it in batch:
            it.future.set_result(preds[start : start + it.n_rows])
            start += it.n_rows
