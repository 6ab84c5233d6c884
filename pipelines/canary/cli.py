"""``mlops canary <command>``: a whole canary release in-process, or the one-command rollback.

release    [--version V|@challenger] [--steps 10,50,100]   whole canary release, in-process
rollback   [--reason TEXT] [--to VERSION]                  abort the canary, or back to the last good champion

``mlops serving release`` and ``mlops serving rollback`` are these same commands (routed here
by :mod:`pipelines.cli`), with the same flags and output.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.config import load_settings


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def main(argv: list[str] | None = None, prog: str = "mlops canary") -> int:
    """Run one command; ``prog`` is how the user called it (it also names a rollback's default reason)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("release", help="run a whole canary release in-process (what the DAG runs)")
    p.add_argument("--version", default="@challenger")
    p.add_argument("--steps", help="comma-separated percentages, e.g. 10,50,100")
    p = sub.add_parser("rollback", help="abort the canary, or return to the last good champion")
    p.add_argument("--reason", default=f"manual rollback ({prog} rollback)")
    p.add_argument("--to", dest="to_version", help="roll back to this version instead")
    args = parser.parse_args(argv)
    settings = load_settings()

    if args.cmd == "rollback":
        from pipelines.canary.promotion import rollback_release

        _print(rollback_release(settings, reason=args.reason, to_version=args.to_version).summary())
        return 0
    from pipelines.canary.release import run_release

    steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    result = run_release(settings, version=args.version, steps=steps)
    _print(result)
    return 3 if result["outcome"] == "rejected" else 0
