"""``mlops monitoring ...``: monitor a window, decide, inspect the history, open the Evidently UI.

mlops monitoring run --window 2013-05 [--as-of 2013-06-08] [--reference 2013-01,2013-02]
mlops monitoring decide --window 2013-05
mlops monitoring history
mlops monitoring unlock --reason "training run crashed"
mlops monitoring ui           # prints the `evidently ui` command for this workspace
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from pipelines.config import load_settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.period_ids import check_batch_id, check_batch_ids

if TYPE_CHECKING:
    from pipelines.monitoring.contracts import RetrainDecision


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="mlops monitoring", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="collect + monitor + decide one window")
    run.add_argument("--window", required=True, help="batch id, e.g. 2013-05")
    run.add_argument("--as-of", default=None, help="labels available before this ISO time count")
    run.add_argument("--reference", default="", help="fallback reference batch ids, comma-separated")
    run.add_argument("--no-decide", action="store_true", help="measure only, record no decision")
    dec = sub.add_parser("decide", help="apply the retrain policy to a monitored window")
    dec.add_argument("--window", required=True)
    sub.add_parser("history", help="one line per monitored window")
    unl = sub.add_parser("unlock", help="release the retrain-in-flight lock")
    unl.add_argument("--reason", required=True)
    sub.add_parser("ui", help="print the command that opens the Evidently UI on this workspace")
    args = ap.parse_args(argv)

    from pipelines.monitoring import records
    from pipelines.monitoring.inputs import collect_window
    from pipelines.monitoring.monitor import run_monitoring
    from pipelines.monitoring.retrain import decide_retrain

    settings = load_settings()
    try:  # ids become folder names: refused before anything is read or written (one line, exit 2)
        freq = settings.dataset.batch_frequency
        if getattr(args, "window", None) is not None:
            args.window = check_batch_id(args.window, freq)
        check_batch_ids([b for b in getattr(args, "reference", "").split(",") if b.strip()], freq)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "run":
        collected = collect_window(settings, args.window, args.as_of)
        refs = [b for b in args.reference.split(",") if b.strip()] or None
        result = run_monitoring(
            settings, args.window, as_of=collected.as_of, reference_batches=refs, collected=collected
        )
        shown = {"window": result.window, "status": result.status, "reason": result.reason}
        print(json.dumps({**shown, "artifacts": result.artifacts}, indent=2))
        if not args.no_decide:
            _print_decision(decide_retrain(settings, args.window))
        return 0 if result.status == "ok" else 1
    if args.cmd == "decide":
        _print_decision(decide_retrain(settings, args.window))
        return 0
    if args.cmd == "history":
        for row in records.history_table(settings):
            perf = (
                "-"
                if row["value"] is None
                else f"{row['metric']}={row['value']:.3f} (base {row['baseline']})"
            )
            share = "-" if row["drift_share"] is None else f"{row['drift_share']:.2f}"
            print(
                f"{row['window']}  {row['status'] or '-':<17} v{row['model_version']}  drift share {share}  "
                f"{perf}  -> {row['action']}"
            )
        return 0
    if args.cmd == "unlock":
        print("released" if records.release_retrain_lock(settings, args.reason) else "no lock held")
        return 0
    from pipelines.monitoring.workspace import workspace_path

    print(f"evidently ui --workspace {workspace_path(settings)} --host 127.0.0.1 --port 8000")
    return 0


def _print_decision(decision: RetrainDecision) -> None:
    conf = decision.request.to_conf() if decision.request is not None else None
    shown = {"action": decision.action.value, "reasons": list(decision.reasons), "trigger_conf": conf}
    print(json.dumps(shown, indent=2))
