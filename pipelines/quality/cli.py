"""``mlops quality``: land, validate, replay and inspect batches from the shell.

    python -m pipelines.cli quality land     --batch-id 2013-01      # or --all
    python -m pipelines.cli quality validate --batch-id 2013-01      # or --all
    python -m pipelines.cli quality replay   --batch-id 2013-01 --file corrected.csv
    python -m pipelines.cli quality show     --batch-id 2013-01

Exit status: 0 when every batch passed (possibly with warnings), 1 when one was rejected,
2 on usage or configuration errors. ``--config`` points at another pipeline YAML
(another dataset).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.config import Settings, load_settings
from pipelines.data.landing import available_batches, current_landed, land_batch, land_file
from pipelines.data.source import SourceError
from pipelines.quality.errors import BatchRejected, SuiteError
from pipelines.quality.gate import validate_batch
from pipelines.quality.paths import gate_paths
from pipelines.quality.verdict import REJECTED


def _batches(settings: Settings, args: argparse.Namespace) -> list[str]:
    if getattr(args, "all", False):
        return available_batches(settings)
    if not args.batch_id:
        raise SystemExit("give --batch-id or --all")
    return [args.batch_id]


def _summary(verdict: dict[str, object]) -> str:
    return (
        f"{verdict['batch_id']}: {verdict['status']} "
        f"(in {verdict['rows_in']}, accepted {verdict['rows_accepted']}, "
        f"quarantined {verdict['rows_quarantined']}) report: {verdict['paths']['report_md']}"  # type: ignore[index]
    )


def _validate(settings: Settings, batch_id: str) -> int:
    try:
        verdict = validate_batch(settings, batch_id)
    except BatchRejected as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(_summary(verdict))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops quality", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="pipeline YAML (default: config/pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, what in (("land", "land batches from the source"), ("validate", "run the quality gate")):
        p = sub.add_parser(name, help=what)
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--batch-id")
        group.add_argument("--all", action="store_true", help="every configured batch, in order")
    p = sub.add_parser("replay", help="land a corrected file as a new version of a batch and re-validate")
    p.add_argument("--batch-id", required=True)
    p.add_argument("--file", type=Path, required=True)
    p = sub.add_parser("show", help="print the gate report of a batch's current version")
    p.add_argument("--batch-id", required=True)
    p.add_argument("--json", action="store_true", help="print report.json instead of report.md")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, SuiteError, SourceError, ValueError) as exc:  # usage/config: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.command == "land":
        for batch_id in _batches(settings, args):
            landed = land_batch(settings, batch_id)
            print(f"{batch_id}: {landed.rows} rows -> {landed.uri}")
        return 0
    if args.command == "validate":
        codes = [_validate(settings, b) for b in _batches(settings, args)]
        return max(codes, default=0)
    if args.command == "replay":
        if not args.file.is_file():
            print(f"no such file: {args.file}", file=sys.stderr)
            return 2
        landed = land_file(settings, args.batch_id, args.file, origin=f"replay:{args.file.resolve()}")
        print(f"{args.batch_id}: landed {args.file} as version {landed.sha256[:12]} ({landed.rows} rows)")
        return _validate(settings, args.batch_id)
    # show
    landed = current_landed(settings, args.batch_id)
    paths = gate_paths(settings, args.batch_id, landed.sha256)
    report = paths.report_json if args.json else paths.report_md
    if not report.exists():
        print(f"{args.batch_id} (version {landed.sha256[:12]}) has not been validated yet", file=sys.stderr)
        return 2
    print(report.read_text(encoding="utf-8"))
    return 1 if json.loads(paths.report_json.read_text())["status"] == REJECTED else 0


if __name__ == "__main__":
    raise SystemExit(main())
