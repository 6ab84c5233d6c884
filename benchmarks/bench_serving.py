"""Serving benchmark: the gateway vs ``mlflow models serve`` vs in-process predict, on the same model.

    .venv/bin/python benchmarks/bench_serving.py [--model lr|hgb|both] [--seconds S] [--quick]

Prints one table: requests/s, rows/s, p50 and p99 latency (client side) for 1-row and
100-row payloads at concurrency 1 and 10, then every serving figure of issue 16's goals
table as ``name=value`` lines (``gateway_vs_mlflow_c10_1row=...``; the ``hgb`` model, the
production estimator, unprefixed, ``lr_...`` for the linear one), all from the same run, for

* ``inproc``: the raw scikit-learn ``predict_proba`` on a ready DataFrame (the floor),
  and ``inproc+parse``: the gateway's own parse + validate + predict, without HTTP;
* ``gateway``: ``python -m pipelines.serving`` (one process), split off (champion only)
  and split on (a canary at 50% serving another registered copy of the model);
* ``mlflow``: ``mlflow models serve --env-manager local -w 1`` on the same version.

The model is logged the way training logs it, compiled predictor included when the
training step can build one (issue 16); ``gateway_predictor=`` says which path served
(read from ``/version``), so the figures can be read either way. ``gateway_p50_c1_vs_inprocess``
divides the gateway's p50 (1 row, c=1, over HTTP) by the in-process ``predict_proba`` of the
same uncompiled pipeline.

Goals (issue 16): gateway vs mlflow serve >= 5x (1 row, c=1), >= 15x (1 row, c=10), >= 10x
rows/s (100 rows, c=10); gateway p50 at c=1 <= 0.5x in-process predict; the split adding <= 1 ms
at p50 (c=10). ``--quick`` (hgb only, shorter windows) runs in a few minutes. Everything runs
in a temporary runtime root (its own SQLite registry) on ports 18180-18181; the host's load
average is printed, because on a shared machine it moves every figure.
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
# Split on/off are measured in back-to-back pairs, and the figure is the median of the per-pair
# p50 differences: on a shared host the load drifts by more than the effect between two rounds.
SPLIT_ROUNDS = 5


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
        _log_compiled_like_training(s, model, x, info)
    name = s.mlflow.registered_model
    champion = mlflow.register_model(info.model_uri, name).version
    canary = mlflow.register_model(info.model_uri, name).version
    client_for(s).set_registered_model_alias(name, CHAMPION, champion)
    cols = [c.id.column, c.event_time, *c.features.all]
    rows = json.loads(df[cols].head(2000).to_json(orient="records"))
    return s, rows, (model, x), str(champion), str(canary)


def _log_compiled_like_training(settings: Any, model: Any, x: Any, info: Any) -> None:
    """Add the compiled predictor the training step logs beside the model, when this tree has one.

    The training step's own function (a holdout slice of the month stands in for its holdout),
    so the gateway decides to serve it, or not, exactly as it does for a trained version.
    """
    from pipelines.training import train

    log_compiled = getattr(train, "_log_compiled", None)
    if log_compiled is None:
        log("no compiled predictor in this tree: the pipeline serves")
        return
    holdout = x.sample(n=min(len(x), 5000), random_state=0)
    log_compiled(settings, model, x.head(5), holdout, info.model_id)


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


def _predictor(model: dict[str, Any] | None) -> str:
    """The serving path of a /version model entry: the compiled engine, sklearn (+fast path)."""
    if not model:
        return "none"
    name = str(model.get("predictor") or "sklearn")
    if name == "sklearn" and model.get("fast_path"):
        name = "sklearn-fast-path"
    return name


def run(model_kind: str, seconds: float, served: dict[str, str]) -> list[dict[str, Any]]:
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
        info = httpx.get(f"{base}/version", timeout=30).json()
        served["gateway_predictor"] = _predictor(info.get("champion"))
        url = f"{base}/invocations"
        for size in (1, 100):
            for conc in (1, 10):
                r = http_load(url, bodies[size], conc, seconds)
                results.append(dict(r, model=model_kind, server="gateway", rows=size, conc=conc))
        # Split on vs off, interleaved over rounds (a shared host drifts): "on" = a canary at 50%
        # (another registered copy of the model), "off" = the champion alone. Medians are reported.
        admin = {"authorization": f"Bearer {TOKEN}"}
        rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for _ in range(SPLIT_ROUNDS):
            for mode in ("off", "on"):
                if mode == "on":
                    body = {"version": canary, "weight": 50}
                    canary_info = httpx.post(f"{base}/admin/canary", json=body, headers=admin, timeout=120)
                    canary_info.raise_for_status()
                    served["split_canary_predictor"] = _predictor(canary_info.json().get("canary"))
                for conc in (1, 10):
                    rounds.setdefault((mode, conc), []).append(http_load(url, bodies[1], conc, seconds))
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
        for conc in (1, 10):
            pairs = zip(rounds[("off", conc)], rounds[("on", conc)], strict=True)
            deltas = [on["p50"] - off["p50"] for off, on in pairs]
            log(f"[{model_kind}] split p50 deltas at c={conc}, per pair: {[round(d, 1) for d in deltas]}")
            served[f"split_p50_delta_ms_c{conc}"] = f"{statistics.median(deltas):.2f}"
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


def report(results: list[dict[str, Any]], served: dict[str, dict[str, str]]) -> None:
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
    # name=value lines: every figure of issue 16's serving goals, plus the raw ones behind them.
    print(f"host_load_avg_1m={load[0]:.2f}")
    for model in sorted({r["model"] for r in results}):
        pre = "" if model == "hgb" else f"{model}_"
        for key, value in served.get(model, {}).items():
            print(f"{pre}{key}={value}")
        pick = {(r["server"], r["rows"], r["conc"]): r for r in results if r["model"] == model}
        for (server, rows, conc), r in sorted(pick.items()):
            tag = f"{server.replace('-', '_').replace('+', '_')}_c{conc}_{rows}row{'s' if rows > 1 else ''}"
            print(f"{pre}{tag}_rps={r['rps']:.1f}")
            print(f"{pre}{tag}_p50_ms={r['p50']:.2f}")
            print(f"{pre}{tag}_p99_ms={r['p99']:.2f}")
            if r["errors"]:
                print(f"{pre}{tag}_errors={r['errors']}")
        goals = {(1, 1): 5.0, (1, 10): 15.0, (100, 10): 10.0, (100, 1): None}
        for (rows, conc), goal in goals.items():
            g, m = pick.get(("gateway", rows, conc)), pick.get(("mlflow", rows, conc))
            if g and m:
                ratio = g["rps"] / m["rps"]  # same rows per request: req/s ratio == rows/s ratio
                name = f"gateway_vs_mlflow_c{conc}_{rows}row{'s' if rows > 1 else ''}"
                print(f"{pre}{name}={ratio:.2f}")
                if goal is not None:
                    log(f"{model}: {name} = {ratio:.2f} ({verdict(ratio >= goal)} >= {goal:g}x)")
        g1, ip = pick.get(("gateway", 1, 1)), pick.get(("inproc", 1, 1))
        if g1 and ip:
            ratio = g1["p50"] / ip["p50"]
            print(f"{pre}gateway_p50_c1_vs_inprocess={ratio:.2f}")
            log(
                f"{model}: gateway p50 c=1 / in-process predict = {ratio:.2f} "
                f"({verdict(ratio <= 0.5)} <= 0.5)"
            )
        for conc in (1, 10):
            off, on = pick.get(("split-off", 1, conc)), pick.get(("split-on", 1, conc))
            paired = served.get(model, {}).get(f"split_p50_delta_ms_c{conc}")
            if off and on and paired is not None:
                delta = float(paired)
                log(
                    f"{model}: split cost at c={conc}: p50 {off['p50']:.2f} -> {on['p50']:.2f} ms (medians); "
                    f"median of paired differences {delta:+.2f} ({verdict(delta <= 1)} <= 1 ms)"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=["lr", "hgb", "both"], default=None, help="default: both (hgb --quick)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="measurement time per configuration")
    parser.add_argument("--quick", action="store_true", help="hgb only, 3 s windows: a few minutes")
    args = parser.parse_args()
    model = args.model or ("hgb" if args.quick else "both")
    seconds = args.seconds or (3.0 if args.quick else 6.0)
    kinds = ["lr", "hgb"] if model == "both" else [model]
    results: list[dict[str, Any]] = []
    served: dict[str, dict[str, str]] = {}
    t0 = time.perf_counter()
    for kind in kinds:
        served[kind] = {}
        results.extend(run(kind, seconds, served[kind]))
    report(results, served)
    print(f"bench_seconds={time.perf_counter() - t0:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
