"""``mlops optimize <command>``: tuning, model choice, capacity, cost, scorecard, load test.

Every command prints the figures it measured and the path of the full report; a
step that cannot measure something says why ("skipped because ...", "not enough
data") and exits 0, while a request that cannot run at all (bad window, no data)
exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.config import REPO_ROOT, load_settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.period_ids import check_batch_id, check_batch_ids


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _window(value: str | None) -> Any:
    if not value:
        return None
    return int(value) if value.isdigit() else [v.strip() for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops optimize", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("tune", help="Optuna study within the time budget; winner goes through the gate")
    p.add_argument("--budget", type=float, help="seconds (default optimize.tuning_budget_seconds; 0 = skip)")
    p.add_argument("--window", help="training batches (comma-separated) or a count")
    p.add_argument("--holdout", help="holdout batch id")
    p.add_argument("--no-propose", action="store_true", help="do not train the winner as a candidate")

    p = sub.add_parser("choose", help="compare model families: quality, p99 latency, fit time, size")
    p.add_argument("--window")
    p.add_argument("--holdout")
    p.add_argument("--propose", action="store_true", help="train the pick through the normal gate")

    p = sub.add_parser("capacity", help="forecast traffic, load-test one replica, recommend replicas")
    p.add_argument("--source", choices=["prediction_log", "validated_batches"], default="prediction_log")
    p.add_argument("--version", help="model version to load-test (default: champion)")
    p.add_argument("--no-load-test", action="store_true")
    p.add_argument("--apply", action="store_true", help="really scale the compose service (default: dry run)")

    p = sub.add_parser("cost", help="CPU / energy / CO2 per 1,000 predictions and per training run")
    p.add_argument("--versions", help="comma-separated (default: all)")
    p.add_argument("--predictions", type=int)
    p.add_argument("--no-remeasure", action="store_true", help="do not re-fit versions to measure training")
    p.add_argument("--refresh", action="store_true", help="measure again even if the run has figures")

    p = sub.add_parser("loadtest", help="bounded load test of one model version on the real gateway")
    p.add_argument("--version", required=True)
    p.add_argument("--seconds", type=float)
    p.add_argument("--concurrency", type=int)

    p = sub.add_parser("scorecard", help="print the operations scorecard and write its HTML report")
    p.add_argument("--json", action="store_true", help="print the whole card as JSON")

    args = parser.parse_args(argv)
    settings = load_settings()
    try:  # batch ids from the shell pass the kernel's check first (one line, exit 2)
        freq = settings.dataset.batch_frequency
        if getattr(args, "holdout", None):
            args.holdout = check_batch_id(args.holdout, freq)
        window = _window(getattr(args, "window", None))
        if isinstance(window, list):
            check_batch_ids(window, freq)
    except InvalidInputError as exc:
        print(f"optimize {args.cmd}: {exc}")
        return 2
    try:
        return _run(args, settings)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"optimize {args.cmd}: {type(exc).__name__}: {exc}")
        return 2


def _run(args: argparse.Namespace, settings: Any) -> int:
    if args.cmd == "tune":
        from pipelines.optimize.tuning import tune

        r = tune(
            settings,
            _window(args.window),
            args.holdout,
            budget_seconds=args.budget,
            propose=not args.no_propose,
        )
        _print({k: v for k, v in r.items() if k not in {"cost"}})
    elif args.cmd == "choose":
        from pipelines.optimize.model_choice import choose_model

        r = choose_model(settings, _window(args.window), args.holdout, propose=args.propose)
        cols = ["name", "status", "quality", "p50_latency_ms", "p99_latency_ms", "cpu_ms_per_request"]
        cols += ["train_seconds", "model_size_bytes", "pareto", "picked", "reason"]
        for row in r["rows"]:
            print("  ".join(f"{c}={row.get(c)}" for c in cols if c in row))
        print(f"pick: {r['pick']} ({r['pick_reason']})\nreport: {r['report_path']}\nplot: {r['plot']}")
    elif args.cmd == "capacity":
        from pipelines.optimize.capacity import plan_capacity

        r = plan_capacity(
            settings,
            source=args.source,
            version=args.version,
            load_test=not args.no_load_test,
            apply=args.apply,
        )
        r["forecast"].pop("next_period", None)
        r["forecast"].pop("naive_next_period", None)
        _print(r)
    elif args.cmd == "cost":
        from pipelines.optimize.unit_cost import version_costs

        versions = [v.strip() for v in args.versions.split(",")] if args.versions else None
        _print(
            version_costs(
                settings,
                versions,
                remeasure_training=not args.no_remeasure,
                predictions=args.predictions,
                refresh=args.refresh,
            )
        )
    elif args.cmd == "loadtest":
        from pipelines.optimize.loadtest import run_load_test

        _print(run_load_test(settings, args.version, seconds=args.seconds, concurrency=args.concurrency))
    elif args.cmd == "scorecard":
        from pipelines.optimize.scorecard import (
            build_scorecard,
            checkout_stage_dags,
            render_text,
            write_scorecard_html,
        )

        # The CLI drives the pipeline from a checkout: the stages and DAG files come from its dags/.
        card = build_scorecard(settings, checkout_stage_dags(REPO_ROOT / "dags"))
        path = write_scorecard_html(settings, card)
        if args.json:
            _print(card)
        else:
            print(render_text(card))
        print(f"\nHTML report: {path}")
    return 0
