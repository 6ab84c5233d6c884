"""Cost of each optimize step on this machine, and the tuning gain on the same holdout.

    .venv/bin/python benchmarks/bench_optimize.py [--budget 120] [--root DIR]

Works in its own runtime root (default: a fresh temp dir): lands and validates
2013-01..04 with the real quality gate, trains the *default* candidate through
the normal training chain, then runs tuning (whose winner goes through the same
chain), model choice, capacity planning (on a prediction log written with the
gateway's own log writer from the batches' real event times, plus a load test of
the real gateway), unit costs and the scorecard. Prints wall / CPU seconds per
step and the holdout quality of the default vs the tuned candidate (both judged
by the evaluation gate on the same holdout batch).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

BATCHES = ["2013-01", "2013-02", "2013-03", "2013-04"]
WINDOW, HOLDOUT = ["2013-01", "2013-02", "2013-03"], "2013-04"


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(label: str, fn: Callable[[], Any], table: list[tuple[str, float, float]]) -> Any:
    c0, t0 = cpu(), time.perf_counter()
    out = fn()
    table.append((label, time.perf_counter() - t0, cpu() - c0))
    print(f"  {label:<38} {table[-1][1]:8.1f} s wall {table[-1][2]:8.1f} s CPU", flush=True)
    return out


def log_traffic(settings: Any) -> int:
    from pipelines.core.predlog import LoggedRequest, PredictionLogWriter, log_url
    from pipelines.data.validated import load_batches

    c = settings.dataset
    df = load_batches(settings, BATCHES)[[c.id.column, c.event_time]]
    writer = PredictionLogWriter(log_url(settings), flush_ms=50)
    now = datetime.now(UTC).isoformat()
    for eid, t in zip(df[c.id.column].tolist(), df[c.event_time].tolist(), strict=True):
        writer.submit(
            LoggedRequest(uuid.uuid4().hex, now, "champion", "1", [], [], 1, [0.5], 1.0, None, [eid], [t])
        )
    writer.flush(timeout=600)
    writer.close()
    return len(df)


def holdout_metric(evaluation_uri: str, metric: str) -> float:
    from pipelines.training import load_evaluation

    return float(load_evaluation(evaluation_uri)["candidate"]["metrics"][metric])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, help="tuning budget in seconds (default: config)")
    parser.add_argument("--root", help="runtime root (default: a fresh temp dir)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    root = args.root or tempfile.mkdtemp(prefix="bench-optimize-")
    os.environ["MLOPS__PATHS__ROOT"] = f"{root}/var"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

    from pipelines.config import REPO_ROOT, load_settings
    from pipelines.data.landing import land_batch
    from pipelines.optimize import (
        build_scorecard,
        checkout_stage_dags,
        choose_model,
        plan_capacity,
        tune,
        version_costs,
        write_scorecard_html,
    )
    from pipelines.quality import validate_batch
    from pipelines.training import run_training

    s = load_settings()
    metric = s.gate.for_task(s.dataset.target.task).primary_metric
    table: list[tuple[str, float, float]] = []
    print(f"root {root}; load average {os.getloadavg()}; {os.cpu_count()} CPUs")
    print("setup (not optimize steps):")
    for b in BATCHES:
        timed(f"land + GX gate {b}", lambda b=b: (land_batch(s, b), validate_batch(s, b)), table)
    default = timed(
        "train default candidate (full chain)", lambda: run_training(s, WINDOW, HOLDOUT, "bench"), []
    )
    timed("write prediction log (every flight once)", lambda: log_traffic(s), [])
    table.clear()

    print("optimize steps:")
    budget = s.optimize.tuning_budget_seconds if args.budget is None else args.budget
    tuned = timed(
        f"tuning (budget {budget:g} s) + candidate",
        lambda: tune(s, WINDOW, HOLDOUT, budget_seconds=budget),
        table,
    )
    choice = timed("model choice (3 families)", lambda: choose_model(s, WINDOW, HOLDOUT), table)
    cap = timed("capacity (forecast + 5 s load test)", lambda: plan_capacity(s), table)
    cost = timed("unit cost (all versions)", lambda: version_costs(s), table)
    stages = checkout_stage_dags(REPO_ROOT / "dags")
    card = timed(
        "scorecard (build + HTML)", lambda: write_scorecard_html(s, build_scorecard(s, stages)), table
    )

    print("\nfigures:")
    d_auc = holdout_metric(default["evaluation_uri"], metric)
    print(
        f"  default candidate v{default['version']}: holdout {HOLDOUT} {metric} = {d_auc:.4f} "
        f"({default['verdict']})"
    )
    print(
        f"  tuning: {tuned['status']}, {tuned.get('trials_completed')} trials in "
        f"{tuned.get('elapsed_seconds')} s; "
        f"validation {metric} default {tuned.get('default_score')} -> best {tuned.get('best_score')}"
    )
    if tuned.get("candidate"):
        c = tuned["candidate"]
        t_auc = holdout_metric(c["evaluation_uri"], metric)
        print(
            f"  tuned candidate v{c['version']}: holdout {HOLDOUT} {metric} = {t_auc:.4f} ({c['verdict']}); "
            f"gain on the same holdout {t_auc - d_auc:+.4f}"
        )
    for row in choice["rows"]:
        if row["status"] == "ok":
            print(
                f"  family {row['name']:<24} {metric} {row['quality']:.4f}  "
                f"p50 {row['p50_latency_ms']:.1f} ms  "
                f"p99 {row['p99_latency_ms']:.1f} ms  CPU {row['cpu_ms_per_request']:.1f} ms/req  "
                f"fit {row['train_seconds']:.1f} s  size {row['model_size_bytes'] / 1e6:.2f} MB"
            )
        else:
            print(f"  family {row['name']:<24} {row['reason']}")
    print(f"  model choice pick: {choice['pick']} ({choice['pick_reason']})")
    fc = cap["forecast"]
    if fc["status"] == "ok":
        h = fc["holdout"]
        print(
            f"  forecast: Holt-Winters MAE {h['holt_winters']['mae']:.3f} vs naive "
            f"{h['naive_seasonal']['mae']:.3f} (WAPE {h['holt_winters']['wape']:.3%} vs "
            f"{h['naive_seasonal']['wape']:.3%}); peak {fc['peak_per_hour']:.1f}/h"
        )
    lt = cap["load_test"]
    if lt.get("status") == "ok":
        print(
            f"  load test v{lt['model_version']}: {lt['requests_per_s']:.1f} req/s, "
            f"p99 {lt['p99_ms']:.1f} ms, "
            f"server CPU {lt['server_cpu_seconds_per_1k_predictions']} s per 1k predictions"
        )
    print(
        f"  recommendation: {cap['recommendation'].get('arithmetic') or cap['recommendation'].get('reason')}"
    )
    for v in cost["versions"]:
        sp = v.get("serving_per_1k") or {}
        print(
            f"  cost v{v['version']}: {sp.get('cpu_seconds')} CPU s, {sp.get('energy_kwh')} kWh, "
            f"{sp.get('emissions_kg')} kg CO2 per 1k predictions; training {v['training']}"
        )
    print(f"  scorecard: {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
