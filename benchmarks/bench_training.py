"""Training benchmark: fit time per window size, MLflow logging overhead, model size on disk.

    .venv/bin/python benchmarks/bench_training.py            # 1, 3 and 6 month windows
    .venv/bin/python benchmarks/bench_training.py --windows 1 3 --metrics 100

Runs in a throwaway runtime root (real landing + GX quality gate for the months it needs, an
embedded SQLite MLflow store) with the estimator from config/pipeline.yaml, and prints figures.
Timings are wall-clock on this host: compare them with each other, not across machines.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 3, 6], help="window sizes, months")
    parser.add_argument("--metrics", type=int, default=200, help="metrics logged in the overhead test")
    parser.add_argument("--root", type=Path, help="runtime root (default: a new temp dir)")
    args = parser.parse_args()

    root = args.root or Path(tempfile.mkdtemp(prefix="bench-training-"))
    os.environ["MLOPS__PATHS__ROOT"] = str(root)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

    import logging

    import mlflow
    import structlog
    from threadpoolctl import threadpool_limits

    # figures only: step logs (info/warning lines) would bury them
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    from pipelines.config import load_settings
    from pipelines.data.landing import land_batch
    from pipelines.data.validated import published
    from pipelines.quality import validate_batch
    from pipelines.training import TrainingWindow, build_pipeline, configure_tracking, load_window, prepare_xy
    from pipelines.training.train import train_candidate

    settings = load_settings()
    # A fresh experiment per invocation: train_candidate must train, not reuse an earlier run.
    settings = settings.model_copy(
        update={"mlflow": settings.mlflow.model_copy(update={"experiment": f"bench-{int(time.time())}"})}
    )
    months = settings.dataset.batches[: max(args.windows) + 1]
    print(f"runtime root: {root}")
    print(f"estimator: {settings.training.estimator} {settings.training.estimator_params}")
    print(f"threads: {settings.training.threads} (0 = all {os.cpu_count()} cores)\n")

    t0 = time.perf_counter()
    for b in months:
        if published(settings, b) is None:
            land_batch(settings, b)
            validate_batch(settings, b, raise_on_reject=False)
    print(f"setup: landed + validated {len(months)} months in {time.perf_counter() - t0:.1f} s\n")

    t0 = time.perf_counter()
    configure_tracking(settings)
    print(f"MLflow ready (imports + SQLite store, migrated if new): {time.perf_counter() - t0:.1f} s\n")

    print("== training time per window size (same holdout: the month after the window)")
    print("(fit s: the pipeline's fit alone; train_candidate s: fit + data load, fingerprints, MLflow run,")
    print(" datasets, signature, model logging -- the first row also pays one-time imports;")
    print(" overhead s = train_candidate s - fit s; model MB: the logged MLflow model folder)")
    print(
        f"{'months':>6} {'rows':>8} {'fit s':>7} {'train_candidate s':>18} {'overhead s':>11} "
        f"{'model MB':>9} {'skops MB':>9}"
    )
    for n in args.windows:
        window = TrainingWindow(tuple(months[:n]), months[n])
        data = prepare_xy(settings.dataset, load_window(settings, window.train_batches))
        model = build_pipeline(settings.dataset, settings.training)
        with threadpool_limits(limits=settings.training.threads or None):
            t0 = time.perf_counter()
            model.fit(data.x, data.y)
            fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = train_candidate(settings, window, reason=f"benchmark {n} months")
        total_s = time.perf_counter() - t0
        local = Path(mlflow.artifacts.download_artifacts(result.model_uri))
        skops_file = next(local.glob("*.skops"), None)
        skops_mb = skops_file.stat().st_size / 1e6 if skops_file else float("nan")
        model_mb = _dir_size(local) / 1e6
        print(
            f"{n:>6} {data.rows:>8} {fit_s:>7.1f} {total_s:>18.1f} {total_s - fit_s:>11.1f} "
            f"{model_mb:>9.2f} {skops_mb:>9.2f}"
        )

    print(f"\n== MLflow logging overhead: {args.metrics} metrics in one run")
    values = {f"m{i}": float(i) for i in range(args.metrics)}
    with mlflow.start_run(run_name="bench per-metric"):
        t0 = time.perf_counter()
        for k, v in values.items():
            mlflow.log_metric(k, v)
        per_call = time.perf_counter() - t0
    with mlflow.start_run(run_name="bench log_batch"):
        t0 = time.perf_counter()
        mlflow.log_metrics(values)  # one log_batch call
        batched = time.perf_counter() - t0
    print(f"per-metric log_metric calls: {per_call:.2f} s ({per_call / args.metrics * 1000:.1f} ms/metric)")
    print(f"one log_metrics (log_batch): {batched:.3f} s")
    print(f"ratio: {per_call / max(batched, 1e-9):.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
