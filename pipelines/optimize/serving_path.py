"""Single-row latency and model size, measured the way the gateway serves a request.

Every request goes through the gateway's own request path: a JSON body in MLflow's scoring
format → ``parse_body`` → ``validate`` against the model's signature → ``ServedModel.predict``
(what ``Gateway.score`` runs for every request, minus the asynchronous prediction-log hand-off),
so a model that is fast in a notebook but slow behind the gateway is measured as slow. Used by
model choice (latency per family) and unit costs (CPU per 1,000 predictions).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings

SERVING_PATH = "JSON body -> serving.inputs.parse_body -> serving.inputs.validate -> ServedModel.predict"


def request_bodies(x: pd.DataFrame, n: int) -> list[bytes]:
    """``n`` single-row scoring requests built from real rows, as a client would send them."""
    rows = x.head(n) if len(x) >= n else x.sample(n, replace=True, random_state=0)
    out = []
    cols = list(x.columns)
    for rec in rows.itertuples(index=False):
        values = [None if isinstance(v, float) and np.isnan(v) else v for v in rec]
        out.append(json.dumps({"dataframe_split": {"columns": cols, "data": [values]}}).encode())
    return out


def served_model(settings: Settings, name: str, model: Any, x: pd.DataFrame) -> Any:
    """Wrap an in-memory fitted pipeline as the gateway's ``ServedModel`` (signature included)."""
    from mlflow.models import infer_signature

    from pipelines.serving import ServedModel, columns_from_signature

    task = settings.dataset.target.task
    fn = model.predict_proba if task == "classification" else model.predict
    signature = infer_signature(x, fn(x.head(5)))
    columns = columns_from_signature(signature, set(settings.serving.non_null_features))
    return ServedModel(name=name, version=name, task=task, columns=columns, model=model)


def serving_path_latencies(
    settings: Settings, served: list[Any], bodies: list[bytes], warmup: int
) -> list[tuple[np.ndarray, float] | str]:
    """Milliseconds per request through parse → validate → predict, per model.

    Models take turns request by request (rotating who goes first), so a burst of
    load from elsewhere on the host hits every model alike instead of whichever
    happened to be measured at the time. Returns (wall ms per request, mean CPU ms per
    request) per model, or the error text for a model that failed. CPU time is the
    steadier figure on a shared host: wall time includes waiting for a core.
    """
    from pipelines.serving import parse_body, validate

    passthrough = {settings.dataset.id.column, settings.dataset.event_time}
    max_rows, allow_extra = settings.serving.max_rows, settings.serving.allow_extra_columns

    def one(model: Any, body: bytes) -> None:
        table = parse_body(body, max_rows, model.column_names)
        checked = validate(table, model.columns, passthrough=passthrough, allow_extra=allow_extra)
        model.predict(checked.frame)

    n = len(served)
    times = np.full((n, len(bodies) - warmup), np.nan)
    cpu = np.zeros(n)
    failed: dict[int, str] = {}
    for i, body in enumerate(bodies):
        for k in range(n):
            j = (i + k) % n
            if j in failed:
                continue
            c0, t0 = time.thread_time(), time.perf_counter()
            try:
                one(served[j], body)
            except Exception as exc:
                failed[j] = f"{type(exc).__name__}: {exc}"
                continue
            if i >= warmup:
                times[j, i - warmup] = (time.perf_counter() - t0) * 1000.0
                cpu[j] += (time.thread_time() - c0) * 1000.0
    timed = max(times.shape[1], 1)
    return [failed[j] if j in failed else (times[j], cpu[j] / timed) for j in range(n)]


def model_size_bytes(settings: Settings, model: Any) -> int:
    if settings.mlflow.serialization == "skops":
        import skops.io

        return len(skops.io.dumps(model))
    import cloudpickle

    return len(cloudpickle.dumps(model))
