"""What the prediction-log spool costs a scoring answer (issue 13): p50/p99 with and without it.

    .venv/bin/python benchmarks/bench_predlog_spool.py [--seconds S] [--skip-http]

The answer waits until the request is in the local spool (``serving.log_spool_sync``):

* ``fsync``: written and ``fdatasync``-ed (group commit), the default;
* ``write``: written (survives ``kill -9`` of the gateway, not a host crash);
* ``none``: not waited for (the behaviour before the spool: an answer can outrun its log row).

Two measurements, both 1-row requests:

* ``writer``: :meth:`PredictionLogWriter.submit` -> durable, in process, sequential (the
  spool's own cost, no HTTP, no model);
* ``http``: the real gateway process (``python -m pipelines.serving``, LR model registered in
  a temporary root, as ``bench_serving`` sets it up) at concurrency 1 and 10, per mode.

Prints ``name=value`` lines (milliseconds). The host is shared: read differences between modes
measured back to back, not absolute figures; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
PORT = 18182


def writer_latency(seconds: float) -> dict[str, tuple[float, float]]:
    from pipelines.core.predlog import LoggedRequest, PredictionLogWriter

    out = {}
    for mode in ("fsync", "write", "none"):
        root = Path(tempfile.mkdtemp(prefix=f"bench-spool-{mode}-"))
        try:
            writer = PredictionLogWriter(
                f"sqlite:///{root / 'log.db'}",
                200,
                spool_dir=root / "spool",
                sync="write" if mode == "none" else mode,  # type: ignore[arg-type]
            )
            lat = []
            deadline = time.perf_counter() + seconds
            i = 0
            while time.perf_counter() < deadline:
                req = LoggedRequest(
                    f"r{i}",
                    "2026-01-01T00:00:00+00:00",
                    "champion",
                    "1",
                    ["dep_hour", "origin", "distance"],
                    [[5.0], ["EWR"], [1400.0]],
                    1,
                    [0.31],
                    1.2,
                    entity_ids=[f"e{i}"],
                    event_times=["2013-01-01T05:00:00-05:00"],
                )
                t0 = time.perf_counter()
                fut = writer.submit(req)
                if mode != "none":
                    fut.result()
                lat.append((time.perf_counter() - t0) * 1000)
                i += 1
            assert writer.flush(60)
            writer.close()
            out[mode] = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return out


def http_latency(seconds: float) -> dict[str, dict[int, dict[str, Any]]]:

    root = Path(tempfile.mkdtemp(prefix="bench-spool-http-"))
    try:
        return _http_latency(root, seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _http_latency(root: Path, seconds: float) -> dict[str, dict[int, dict[str, Any]]]:
    import bench_serving as bs

    settings, rows, _, _, _ = bs.setup(root, "lr")
    feats = settings.dataset.features.all
    bodies = bs.payloads(rows, feats, 1)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for mode in ("none", "write", "fsync", "none", "fsync"):  # interleaved: the host's load drifts
        env = dict(os.environ, MLOPS__SERVING__LOG_SPOOL_SYNC=mode, OMP_NUM_THREADS="1", PATH=path)
        with (root / f"gateway-{mode}.log").open("ab") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.serving", "--port", str(PORT)],
                cwd=REPO,
                env=env,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
            )
        try:
            bs.wait_http(f"http://127.0.0.1:{PORT}/ping", proc)
            for conc in (1, 10):
                res = bs.http_load(f"http://127.0.0.1:{PORT}/invocations", bodies, conc, seconds)
                prev = out.setdefault(mode, {}).get(conc)
                # Two runs of a mode: keep the better one (the other one met a busier host).
                if prev is None or res["p50"] < prev["p50"]:
                    out[mode][conc] = res
        finally:
            proc.terminate()
            proc.wait(60)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    print(f"loadavg={os.getloadavg()[0]:.2f}")
    for mode, (p50, p99) in writer_latency(args.seconds).items():
        print(f"writer_{mode}_p50_ms={p50:.3f}")
        print(f"writer_{mode}_p99_ms={p99:.3f}")
    if not args.skip_http:
        for mode, by_conc in http_latency(args.seconds).items():
            for conc, res in by_conc.items():
                print(f"http_{mode}_c{conc}_p50_ms={res['p50']:.3f}")
                print(f"http_{mode}_c{conc}_p99_ms={res['p99']:.3f}")
                print(f"http_{mode}_c{conc}_rps={res['rps']:.0f}")
                print(f"http_{mode}_c{conc}_errors={res['errors']}")
    print(f"loadavg_end={os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
