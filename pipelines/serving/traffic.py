"""Traffic generator: replays a validated batch's real rows against the gateway, then feeds labels back.

Rows are replayed in business-time order (the dataset's event-time column), one
request per row by default, each carrying the entity id and event time so the
gateway keys the sticky split and the prediction log on them. A cursor per batch
(``paths.serving/traffic_cursor.json``) makes successive calls walk on through the
month instead of replaying its first rows again.

Labels come back through ``POST /labels`` once ``label_delay_s`` (wall clock) has
passed after the prediction, with ``available_at`` = event time +
``monitoring.label_delay_days`` (the business-time delay the replay simulates).
The call returns once every label due has been sent.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, write_json_atomic
from pipelines.data.validated import list_published, load_batches, published
from pipelines.serving.client import labels_headers

log = get_logger(__name__)


# (root, dataset, batch id, content sha) -> (request records, label records); a batch is immutable.
_ROWS_CACHE: dict[tuple[str, str, str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}


def _clean(v: Any) -> Any:
    """JSON-ready scalar: numpy -> Python, NaN -> null."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _build_rows(settings: Settings, batch_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    c = settings.dataset
    df = load_batches(settings, [batch_id])
    df = df.sort_values([c.event_time, c.id.column], kind="stable").reset_index(drop=True)
    times = pd.to_datetime(df[c.event_time], utc=True)
    iso: list[str] = times.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").tolist()
    available: list[str] = (
        (times + timedelta(days=settings.monitoring.label_delay_days)).dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    ).tolist()
    cols = [c.id.column, *c.features.all]
    records: list[dict[str, Any]] = []
    for rec, t in zip(df[cols].to_dict("records"), iso, strict=True):
        clean = {str(k): _clean(v) for k, v in rec.items()}
        clean[c.event_time] = t
        records.append(clean)
    labels: list[dict[str, Any]] = []
    ids = df[c.id.column].astype(str).tolist()
    for eid, y, t, avail in zip(ids, df[c.target.name].tolist(), iso, available, strict=True):
        if y is None or (isinstance(y, float) and math.isnan(y)):
            labels.append({})
        else:
            labels.append({"entity_id": eid, "label": float(y), "event_time": t, "available_at": avail})
    return records, labels


def batch_requests(settings: Settings, batch_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ref = published(settings, batch_id)
    if ref is None:
        raise FileNotFoundError(
            f"batch {batch_id} is not published in the validated store "
            f"({settings.paths.validated / settings.dataset.name}); replay needs a validated batch"
        )
    key = (str(settings.paths.root), settings.dataset.name, batch_id, ref.source_sha256)
    if key not in _ROWS_CACHE:
        if len(_ROWS_CACHE) >= 4:
            _ROWS_CACHE.clear()
        _ROWS_CACHE[key] = _build_rows(settings, batch_id)
    return _ROWS_CACHE[key]


def newest_batch(settings: Settings) -> str:
    batches = list_published(settings)
    if not batches:
        raise FileNotFoundError(
            f"no published batch in {settings.paths.validated / settings.dataset.name}: "
            "run the quality gate (standardize_data_quality) first"
        )
    return batches[-1]


def _cursor(settings: Settings, batch_id: str, n: int, total: int) -> int:
    path = settings.paths.serving / "traffic_cursor.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    start = int(state.get(batch_id, 0)) % max(total, 1)
    state[batch_id] = (start + n) % max(total, 1)
    write_json_atomic(path, state)
    return start


def rows_remaining(settings: Settings, batch_id: str) -> int:
    """Rows of the batch not yet replayed (the cursor wraps: a full pass ends at zero)."""
    total = len(batch_requests(settings, batch_id)[0])
    path = settings.paths.serving / "traffic_cursor.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    return total - int(state.get(batch_id, 0)) % max(total, 1)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def _replay(
    url: str,
    bodies: list[bytes],
    keys: list[str | None],
    labels: list[list[dict[str, Any]]],
    rate: float,
    concurrency: int,
    label_delay_s: float,
    feed_labels: bool,
    timeout_s: float,
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    latencies: list[float] = []
    due: list[tuple[float, dict[str, Any]]] = []
    sent_labels = 0
    label_errors = 0
    next_index = 0
    t_start = time.perf_counter()
    deadline = t_start + timeout_s
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    label_auth = labels_headers()
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:

        async def worker() -> None:
            nonlocal next_index
            while True:
                i = next_index
                if i >= len(bodies) or time.perf_counter() > deadline:
                    return
                next_index += 1
                wait = t_start + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                headers = {"content-type": "application/json"}
                if keys[i] is not None:
                    headers["X-Request-Key"] = str(keys[i])
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/invocations", content=bodies[i], headers=headers)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[str(resp.status_code)] += 1
                if resp.status_code == 200:
                    variants[resp.headers.get("x-model-variant", "?")] += 1
                    versions[resp.headers.get("x-model-version", "?")] += 1
                    if feed_labels:
                        ready = time.perf_counter() + label_delay_s
                        due.extend((ready, lab) for lab in labels[i] if lab)

        async def label_sender(final: bool) -> None:
            nonlocal sent_labels, label_errors
            now = time.perf_counter()
            ready = [lab for t, lab in due if final or t <= now]
            if not ready:
                return
            due[:] = [(t, lab) for t, lab in due if not (final or t <= now)]
            for k in range(0, len(ready), 1000):
                chunk = ready[k : k + 1000]
                try:
                    resp = await client.post("/labels", json={"labels": chunk}, headers=label_auth)
                    resp.raise_for_status()
                    sent_labels += len(chunk)
                except httpx.HTTPError as exc:
                    label_errors += len(chunk)
                    log.error("label feedback failed", error=str(exc), labels=len(chunk))

        async def label_loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                await label_sender(final=False)
                with_timeout = asyncio.create_task(stop.wait())
                await asyncio.wait({with_timeout}, timeout=0.5)
                with_timeout.cancel()

        stop = asyncio.Event()
        labeller = asyncio.create_task(label_loop(stop))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
        if due:
            last_due = max(t for t, _ in due)
            await asyncio.sleep(max(0.0, last_due - time.perf_counter()))
        stop.set()
        await labeller
        await label_sender(final=True)
    done = sum(statuses.values())
    return {
        "requests": done,
        "statuses": dict(statuses),
        "variants": dict(variants),
        "versions": dict(versions),
        "seconds": round(elapsed, 3),
        "rate_achieved": round(done / elapsed, 1) if elapsed > 0 else None,
        "client_p50_ms": _pct(latencies, 50),
        "client_p99_ms": _pct(latencies, 99),
        "labels_sent": sent_labels,
        "label_errors": label_errors,
    }


def send_traffic(
    settings: Settings,
    batch_id: str | None = None,
    n_requests: int = 500,
    rate: float | None = None,
    concurrency: int | None = None,
    *,
    base_url: str | None = None,
    rows_per_request: int = 1,
    label_delay_s: float | None = None,
    feed_labels: bool = True,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Replay ``n_requests`` requests of a validated batch (default: the newest) against the gateway.

    Returns counts per HTTP status, per answering variant and version, achieved
    rate, client-side latency percentiles and the number of labels fed back.
    """
    from pipelines.serving.launcher import ensure_gateway

    batch_id = batch_id or newest_batch(settings)
    rate = rate or settings.canary.replay_rate
    concurrency = concurrency or settings.canary.replay_concurrency
    label_delay_s = settings.canary.replay_label_delay_s if label_delay_s is None else label_delay_s
    # The batch first: an id that is not one, or one not published, must not start a gateway.
    records, label_recs = batch_requests(settings, batch_id)
    url = base_url or ensure_gateway(settings)
    total = len(records)
    if total == 0:
        raise ValueError(f"batch {batch_id} has no rows to replay")
    n_rows = n_requests * rows_per_request
    start = _cursor(settings, batch_id, n_rows, total)
    idx = [(start + k) % total for k in range(n_rows)]
    bodies: list[bytes] = []
    keys: list[str | None] = []
    labels: list[list[dict[str, Any]]] = []
    id_col = settings.dataset.id.column
    for r in range(n_requests):
        rows = idx[r * rows_per_request : (r + 1) * rows_per_request]
        bodies.append(json.dumps({"dataframe_records": [records[i] for i in rows]}).encode())
        keys.append(str(records[rows[0]][id_col]))
        labels.append([label_recs[i] for i in rows])
    summary = asyncio.run(
        _replay(url, bodies, keys, labels, rate, concurrency, label_delay_s, feed_labels, timeout_s)
    )
    summary.update(
        batch_id=batch_id,
        rows_per_request=rows_per_request,
        rows_from=start,
        rows_total=total,
        target_rate=rate,
        concurrency=concurrency,
        label_delay_s=label_delay_s,
        label_delay_days=settings.monitoring.label_delay_days,
    )
    ok = summary["statuses"].get("200", 0)
    log.info(
        "traffic replayed",
        batch_id=batch_id,
        requests=summary["requests"],
        ok=ok,
        variants=summary["variants"],
        rate=summary["rate_achieved"],
        labels=summary["labels_sent"],
    )
    if math.isclose(ok, 0) and n_requests > 0:
        log.error("no replayed request succeeded", statuses=summary["statuses"], url=url)
    return summary
