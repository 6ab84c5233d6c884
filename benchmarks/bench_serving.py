"""Serving benchmark: the gateway vs ``mlflow models serve`` vs in-process predict, on the same model.

    .venv/bin/python benchmarks/bench_serving.py [--model lr|hgb|both] [--requests N] [--quick]

Prints one table: requests/s, rows/s, p50 and p99 latency (client side) for 1-row and
100-row payloads at concurrency 1 and 10, for

* ``inproc``: the raw scikit-learn ``predict_proba`` on a ready DataFrame (the floor),
  and ``inproc+parse``: the gateway's own parse + validate + predict, without HTTP;
* ``gateway``: ``python -m pipelines.serving`` (one process), split off (champion only)
  and split on (a canary at 50% serving another registered copy of the model);
* ``mlflow``: ``mlflow models serve --env-manager local -w 1`` on the same version.

Goals (issue 4): gateway >= 5x mlflow's throughput, p99 < 20 ms at concurrency 10
(1-row), the split adding <= 1 ms at p50. Everything runs in a temporary runtime root
(its own SQLite registry) on ports 18180-18181; the host's load average is printed,
because on a shared machine it moves every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GATEWAY_PORT, MLFLOW_PORT = 18180, 18181
TOKEN = "bench-token"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def setup(root: Path, model_kind: str) -> tuple[Any, list[dict[str, Any]], Any, str, str]:
    """Land a month, train the model, register it twice (champion + canary copy)."""
    os.environ.update(
        MLOPS__PATHS__ROOT=str(root),
        MLOPS__MLFLOW__EXPERIMENT="bench-serving",
        MLOPS_GATEWAY_ADMIN_TOKEN=TOKEN,
        MLFLOW_DISABLE_TELEMETRY="true",
        OMP_NUM_THREADS="1",
    )
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    from pipelines.config import load_settings
    from pipelines.core.registry import CHAMPION, client_for
    from pipelines.data.landing import land_batch
    from pipelines.training.features import build_pipeline, coerce_features
    from pipelines.training.tracking import configure_tracking
    from pipelines.training.train import pip_requirements

    s = load_settings()
    c = s.dataset
    landed = land_batch(s, "2013-01")
    df = pd.read_csv(landed.path)
    df = df[df[c.target.name].notna()].reset_index(drop=True)
    x = coerce_features(c, df)
    y = df[c.target.name].astype("int64")
    if model_kind == "lr":
        cfg = s.training.model_copy(
            update={
                "estimator": "sklearn.linear_model.LogisticRegression",
                "estimator_params": {"max_iter": 300},
                "categorical_encoding": "onehot",
            }
        )
    else:
        cfg = s.training  # the configured production estimator (HistGradientBoosting)
    model = build_pipeline(c, cfg).fit(x, y)
    configure_tracking(s)
    kwargs: dict[str, Any] = {"serialization_format": s.mlflow.serialization}
    if s.mlflow.serialization == "skops":
        import skops.io

        kwargs["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    with mlflow.start_run(run_name=f"bench-{model_kind}"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x.head(5))),
            input_example=x.head(5),
            pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba",
            **kwargs,
        )
    name = s.mlflow.registered_model
    champion = mlflow.register_model(info.model_uri, name).version
    canary = mlflow.register_model(info.model_uri, name).version
    client_for(s).set_registered_model_alias(name, CHAMPION, champion)
    cols = [c.id.column, c.event_time, *c.features.all]
    rows = json.loads(df[cols].head(2000).to_json(orient="records"))
    return s, rows, (model, x), str(champion), str(canary)


# --------------------------------------------------------------------------- load client
async def _load(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, warmup: int
) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"content-type": "application/json"}
        for i in range(warmup):
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                await r.read()
        deadline = time.perf_counter() + seconds
        counter = 0

        async def worker() -> None:
            nonlocal counter, errors
            while time.perf_counter() < deadline:
                body = bodies[counter % len(bodies)]
                counter += 1
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                lat.append((time.perf_counter() - t0) * 1000)

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    return {
        "requests": len(lat),
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "errors": errors,
    }


def http_load(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    return asyncio.run(_load(url, bodies, concurrency, seconds, warmup=20))


def payloads(rows: list[dict[str, Any]], feats: list[str], size: int, n: int = 200) -> list[bytes]:
    """dataframe_split bodies of ``size`` rows (features only: what mlflow serve accepts too)."""
    out = []
    for i in range(n):
        chunk = [rows[(i * size + k) % len(rows)] for k in range(size)]
        out.append(
            json.dumps(
                {
                    "dataframe_split": {
                        "columns": feats,
                        "data": [[r[f] for f in feats] for r in chunk],
                    }
                }
            ).encode()
        )
    return out


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def inproc(
    settings: Any, model_and_x: Any, rows: list[dict[str, Any]], seconds: float
) -> list[dict[str, Any]]:
    """The floor: predict_proba on a ready frame; and the gateway's parse+validate+predict without HTTP."""
    from pipelines.serving import load_served_model, parse_body, validate

    model, x = model_and_x
    served = load_served_model(settings, settings_champion(settings))
    feats = settings.dataset.features.all
    out = []
    for size in (1, 100):
        frame = x.head(size)
        body = payloads(rows, feats, size, n=1)[0]
        for label, fn in (
            ("inproc", lambda frame=frame: model.predict_proba(frame)),
            (
                "inproc+parse",
                lambda body=body: served.predict(
                    validate(
                        parse_body(body, 10000, served.column_names),
                        served.columns,
                        passthrough=set(),
                        allow_extra=False,
                    ).frame
                ),
            ),
        ):
            for _ in range(20):
                fn()
            lat = []
            deadline = time.perf_counter() + seconds / 2
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                fn()
                lat.append((time.perf_counter() - t0) * 1000)
            out.append(
                {
                    "server": label,
                    "rows": size,
                    "conc": 1,
                    "requests": len(lat),
                    "rps": 1000 / statistics.mean(lat),
                    "p50": float(np.percentile(lat, 50)),
                    "p99": float(np.percentile(lat, 99)),
                    "errors": 0,
                }
            )
    return out


def settings_champion(settings: Any) -> str:
    from pipelines.core.registry import CHAMPION, alias_version_number

    v = alias_version_number(settings, CHAMPION)
    assert v is not None
    return v


def run(model_kind: str, seconds: float) -> list[dict[str, Any]]:
    import httpx

    root = Path(tempfile.mkdtemp(prefix=f"bench-serving-{model_kind}-"))
    log(f"[{model_kind}] setting up in {root}")
    settings, rows, model_and_x, champion, canary = setup(root, model_kind)
    feats = settings.dataset.features.all
    bodies = {size: payloads(rows, feats, size) for size in (1, 100)}
    results = [dict(r, model=model_kind) for r in inproc(settings, model_and_x, rows, seconds)]
    # mlflow serve execs `uvicorn` from PATH: the venv's bin must be on it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.tracking_uri, OMP_NUM_THREADS="1", PATH=path)

    log(f"[{model_kind}] gateway")
    gw_log = (root / "gateway.log").open("wb")
    gw = subprocess.Popen(
        [sys.executable, "-m", "pipelines.serving", "--port", str(GATEWAY_PORT)],
        cwd=REPO,
        env=env,
        stdout=gw_log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{GATEWAY_PORT}"
        wait_http(f"{base}/ping", gw)
        url = f"{base}/invocations"
        for size in (1, 100):
            for conc in (1, 10):
                r = http_load(url, bodies[size], conc, seconds)
                results.append(dict(r, model=model_kind, server="gateway", rows=size, conc=conc))
        # Split on vs off, interleaved over rounds (a shared host drifts): "on" = a canary at 50%
        # (another registered copy of the model), "off" = the champion alone. Medians are reported.
        admin = {"authorization": f"Bearer {TOKEN}"}
        rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for _ in range(3):
            for mode in ("off", "on"):
                if mode == "on":
                    body = {"version": canary, "weight": 50}
                    httpx.post(
                        f"{base}/admin/canary", json=body, headers=admin, timeout=120
                    ).raise_for_status()
                for conc in (1, 10):
                    rounds.setdefault((mode, conc), []).append(http_load(url, bodies[1], conc, seconds / 2))
                if mode == "on":
                    httpx.post(
                        f"{base}/admin/rollback", json={}, headers=admin, timeout=120
                    ).raise_for_status()
        for (mode, conc), runs in rounds.items():
            med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
            server = "split-on" if mode == "on" else "split-off"
            results.append(
                dict(med, requests=sum(r["requests"] for r in runs), errors=sum(r["errors"] for r in runs))
                | {"model": model_kind, "server": server, "rows": 1, "conc": conc}
            )
    finally:
        gw.terminate()
        gw.wait(30)

    log(f"[{model_kind}] mlflow models serve")
    ml_log = (root / "mlflow-serve.log").open("wb")
    ml = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{settings.mlflow.registered_model}/{champion}",
            "--env-manager",
            "local",
            "-w",
            "1",
            "-p",
            str(MLFLOW_PORT),
            "--host",
            "127.0.0.1",
        ],
        cwd=root,
        env=env,
        stdout=ml_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{MLFLOW_PORT}"
        wait_http(f"{base}/ping", ml)
        for size in (1, 100):
            for conc in (1, 10):
                r = http_load(f"{base}/invocations", bodies[size], conc, seconds)
                results.append(dict(r, model=model_kind, server="mlflow", rows=size, conc=conc))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ml.pid, 15)
        ml.wait(30)
    return results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def routing_cost_us(n: int = 200_000) -> float:
    """The split decision alone (hash the key, compare with the weight), in microseconds."""
    from pipelines.serving.routing import goes_to_canary

    keys = [f"2013_1_1_UA_{i}_EWR_515" for i in range(1000)]
    t0 = time.perf_counter()
    for i in range(n):
        goes_to_canary(50.0, keys[i % 1000], "7")
    return (time.perf_counter() - t0) / n * 1e6


def report(results: list[dict[str, Any]]) -> None:
    print(f"\nsplit decision alone: {routing_cost_us():.2f} us per request (blake2b of the key)")
    load = os.getloadavg()
    print(f"\nhost: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(
        f"{'model':<5} {'server':<14} {'rows':>4} {'conc':>4} {'req/s':>9} {'rows/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    )
    for r in results:
        print(
            f"{r['model']:<5} {r['server']:<14} {r['rows']:>4} {r['conc']:>4} {r['rps']:>9.1f} "
            f"{r['rps'] * r['rows']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['errors']:>6}"
        )
    print()
    for model in sorted({r["model"] for r in results}):
        pick = {(r["server"], r["rows"], r["conc"]): r for r in results if r["model"] == model}
        for rows in (1, 100):
            for conc in (1, 10):
                g, m = pick.get(("gateway", rows, conc)), pick.get(("mlflow", rows, conc))
                if g and m:
                    ratio = g["rps"] / m["rps"]
                    print(
                        f"{model}: {rows}-row c={conc}: gateway {ratio:.1f}x mlflow serve "
                        f"({verdict(ratio >= 5)} >= 5x)"
                    )
        g10 = pick.get(("gateway", 1, 10))
        if g10:
            print(f"{model}: 1-row c=10 gateway p99 {g10['p99']:.1f} ms ({verdict(g10['p99'] < 20)} < 20 ms)")
        for conc in (1, 10):
            off, on = pick.get(("split-off", 1, conc)), pick.get(("split-on", 1, conc))
            if off and on:
                delta = on["p50"] - off["p50"]
                print(
                    f"{model}: split cost at c={conc}: p50 {off['p50']:.2f} -> {on['p50']:.2f} ms "
                    f"(+{delta:.2f}; {verdict(delta <= 1)} <= 1 ms)"
                    + (
                        "  [at c>1 each variant batches its own requests: half-size batches]"
                        if conc > 1
                        else ""
                    )
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["lr", "hgb", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=6.0, help="measurement time per configuration")
    args = parser.parse_args()
    kinds = ["lr", "hgb"] if args.model == "both" else [args.model]
    results: list[dict[str, Any]] = []
    for kind in kinds:
        results.extend(run(kind, args.seconds))
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
