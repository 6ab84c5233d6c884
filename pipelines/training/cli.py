"""``mlops training``: train a candidate through the gate, or inspect the registry.

    python -m pipelines.cli training train --reason "new data"                 # default window
    python -m pipelines.cli training train --window 2013-01,2013-02,2013-03 --holdout 2013-04
    python -m pipelines.cli training train --window 6 --reason "longer window"
    python -m pipelines.cli training show                                      # versions, aliases, tags
    python -m pipelines.cli training show --version 3 --tags

Exit status: 0 when the candidate passed the gate (or ``show`` worked), 1 when it was
rejected, 2 when training refused to start (bad window, data, config, tracking server).
``--config`` points at another pipeline YAML (another dataset).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.config import Settings, load_settings


def _train(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.training.steps import run_training

    result = run_training(settings, args.window, args.holdout, args.reason)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["passed"] else 1


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.core.registry import client_for, list_versions
    from pipelines.training.tracking import check_reachable

    check_reachable(settings)
    client = client_for(settings)
    name = settings.mlflow.registered_model
    versions = list_versions(settings, client)
    if not versions:
        print(f"no versions of {name} in {settings.tracking_uri}")
        return 0
    aliases: dict[str, str] = dict(client.get_registered_model(name).aliases)
    primary = settings.gate.for_task(settings.dataset.target.task).primary_metric
    print(f"{name} ({settings.tracking_uri})  aliases: {aliases or 'none'}")
    for mv in versions:
        if args.version and str(mv.version) != str(args.version):
            continue
        tags: dict[str, Any] = dict(mv.tags)
        held = [a for a, v in aliases.items() if str(v) == str(mv.version)]
        print(
            f"  v{mv.version:<3} {tags.get('gate.verdict', '?'):<8} "
            f"train={tags.get('data.train_batches', '?')} holdout={tags.get('data.holdout_batch', '?')} "
            f"{primary}={tags.get('metric.' + primary, '?')} "
            f"run={mv.run_id} {('@' + ',@'.join(held)) if held else ''}".rstrip()
        )
        if tags.get("gate.verdict") == "rejected":
            print(f"       failed: {tags.get('gate.failures', '?')}")
        if args.tags:
            for key in sorted(tags):
                print(f"       {key} = {tags[key]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops training", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", type=Path, help="pipeline YAML (default: config/pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train, evaluate vs @champion, gate, register (+@challenger)")
    p.add_argument("--window", help="training batch ids (comma-separated) or a count")
    p.add_argument("--holdout", help="holdout batch id (default: newest published not in the window)")
    p.add_argument("--reason", default="cli", help="recorded on the run and the model version")
    p = sub.add_parser("show", help="registry versions, aliases, verdicts")
    p.add_argument("--version", help="only this version")
    p.add_argument("--tags", action="store_true", help="print every tag")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    from pipelines.training.errors import TrainingError

    try:
        return _train(settings, args) if args.command == "train" else _show(settings, args)
    except TrainingError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
