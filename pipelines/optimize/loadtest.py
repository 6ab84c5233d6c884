"""A short, bounded load test of the real gateway: what one replica sustains.

One fresh instance of the serving program (``serving.start_instance``:
the same ``python -m pipelines.serving`` or serving image the stack runs, with no
routing state and no prediction log, so the test never touches what users are
served or the log monitoring reads) is started for one registered model version
and driven for ``capacity.load_test_seconds`` by ``capacity.load_test_concurrency``
closed-loop clients sending real rows of a validated batch. The server process's
CPU-seconds are read from the OS before and after, which gives the service's own
CPU cost per 1,000 predictions next to its throughput.

The client runs on the same host and takes CPU from the server, so on a small
machine the measured throughput is a lower bound; the report says so.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.core.observability import get_logger
from pipelines.optimize.errors import LoadTestError

log = get_logger(__name__)


def _bodies(settings: Settings, batch_id: str, n: int, rows_per_request: int) -> list[bytes]:
    from pipelines.serving import batch_requests

    records, _labels = batch_requests(settings, batch_id)
    if not records:
        raise LoadTestError(f"batch {batch_id} has no rows to send")
    out = []
    for i in range(n):
        rows = [records[(i * rows_per_request + k) % len(records)] for k in range(rows_per_request)]
        out.append(json.dumps({"dataframe_records": rows}).encode())
    return out


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except Exception:
        return None


class _ThreadInstance:
    """The gateway app for one version on a uvicorn thread (same stop()/url as an Instance)."""

    kind = "thread"

    def __init__(self, settings: Settings, version: str) -> None:
        from pipelines.serving import ThreadedServer, create_app, free_port

        lo, hi = settings.serving.instance_ports
        app = create_app(settings, ephemeral_version=version, use_env_token=False)
        self.server = ThreadedServer(app, "127.0.0.1", free_port(lo, hi)).start()
        self.url = self.server.url
        self.details: dict[str, Any] = {"pid": None, "thread": True}
        health = httpx_get(self.url + "/health")
        if health.get("status") != "ok":
            self.stop()
            raise LoadTestError(f"in-process gateway for version {version} is not healthy: {health}")

    def stop(self) -> str:
        self.server.stop()
        return ""


def httpx_get(url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(url, timeout=10.0).json())


def run_load_test(
    settings: Settings,
    version: str,
    *,
    batch_id: str | None = None,
    seconds: float | None = None,
    concurrency: int | None = None,
    rows_per_request: int = 1,
    in_process: bool = False,
) -> dict[str, Any]:
    """Start an instance for ``version``, drive it, stop it; return the measured figures.

    ``in_process=True`` serves the same app with the same uvicorn stack on a thread of
    this process (seconds to start instead of a fresh interpreter); the clients then
    share the server's interpreter, so the figure is a stricter lower bound and the
    server's own CPU cannot be separated from the clients' (reported as ``None``).

    Raises:
        LoadTestError: the instance did not start, or no request succeeded (then there
            is no throughput to report, and none is invented).
    """
    import httpx

    from pipelines.serving import newest_batch, start_instance

    cap = settings.optimize.capacity
    seconds = cap.load_test_seconds if seconds is None else seconds
    concurrency = cap.load_test_concurrency if concurrency is None else concurrency
    batch_id = batch_id or newest_batch(settings)
    bodies = _bodies(settings, batch_id, 2000, rows_per_request)
    # The instance takes a port of this step's own range (optimize.capacity.load_test_port).
    port = cap.load_test_port
    local = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"instance_ports": (port, port + 9)})}
    )
    try:
        inst = _ThreadInstance(local, str(version)) if in_process else start_instance(local, str(version))
    except Exception as exc:
        raise LoadTestError(f"gateway instance for version {version} did not start: {exc}") from exc
    pid = inst.details.get("pid")
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[dict[str, int]] = [{} for _ in range(concurrency)]
    counter = iter(range(10**9))
    lock = threading.Lock()
    headers = {"content-type": "application/json"}
    try:
        with httpx.Client(base_url=inst.url, timeout=10.0, headers=headers) as warm:
            for body in bodies[:20]:  # lazy imports and caches, not part of the figure
                warm.post("/invocations", content=body)
        cpu0 = _cpu_seconds(pid)
        deadline = time.perf_counter() + seconds

        def client(k: int) -> None:
            with httpx.Client(base_url=inst.url, timeout=10.0, headers=headers) as http:
                while time.perf_counter() < deadline:
                    with lock:
                        i = next(counter)
                    t0 = time.perf_counter()
                    try:
                        r = http.post("/invocations", content=bodies[i % len(bodies)])
                        code = str(r.status_code)
                    except httpx.HTTPError as exc:
                        code = type(exc).__name__
                    if code == "200":
                        lat[k].append((time.perf_counter() - t0) * 1000.0)
                    else:
                        errors[k][code] = errors[k].get(code, 0) + 1

        t_start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 30)
        elapsed = time.perf_counter() - t_start
        cpu1 = _cpu_seconds(pid)
    finally:
        inst.stop()
    ok = [x for xs in lat for x in xs]
    errs: dict[str, int] = {}
    for e in errors:
        for code, n in e.items():
            errs[code] = errs.get(code, 0) + n
    if not ok:
        raise LoadTestError(
            f"no request to version {version} succeeded in {elapsed:.1f} s (errors: {errs}); "
            f"instance log: {inst.details.get('log')}"
        )
    rps = len(ok) / elapsed
    server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    predictions = len(ok) * rows_per_request
    result = {
        "model_version": str(version),
        "instance": inst.kind,
        "url": inst.url,
        "batch_id": batch_id,
        "seconds": elapsed,
        "concurrency": concurrency,
        "rows_per_request": rows_per_request,
        "requests_ok": len(ok),
        "errors": errs,
        "requests_per_s": rps,
        "predictions_per_s": rps * rows_per_request,
        "p50_ms": float(np.percentile(ok, 50)),
        "p99_ms": float(np.percentile(ok, 99)),
        "server_cpu_seconds": server_cpu,
        "server_cpu_seconds_per_1k_predictions": None
        if server_cpu is None
        else server_cpu * 1000.0 / predictions,
        "note": "client and server share this host: throughput is a lower bound for one replica",
    }
    log.info(
        "load test done",
        version=version,
        rps=round(rps, 1),
        p99_ms=round(float(np.percentile(ok, 99)), 1),
        errors=errs,
        server_cpu_s=server_cpu,
    )
    return result
