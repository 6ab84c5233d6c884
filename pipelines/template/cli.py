"""``mlops init`` and ``mlops config check`` (routed here by :mod:`pipelines.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def check_main(argv: list[str] | None = None, prog: str = "mlops config check") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Say, per stage, whether it can act with this config (MLOPS_CONFIG) on its data. "
        "Exit 0 when no stage contradicts the config, 1 on a contradiction.",
    )
    parser.add_argument("--config", type=Path, default=None, help="config file (default: MLOPS_CONFIG)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on an inert stage (warn) too")
    args = parser.parse_args(argv)
    from pipelines.config import config_file_in_use, load_settings
    from pipelines.template.check import report

    try:
        settings = load_settings(args.config)
    except Exception as exc:  # a config that does not load is the first contradiction
        where = args.config or config_file_in_use()
        print(f"config: error: {where} does not load: {exc}")
        return 1
    print(f"# mlops config check: {settings.config_file}")
    lines, code = report(settings, strict=args.strict)
    for line in lines:
        print(line)
    return code


def config_main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] != "check":
        print("usage: mlops config check [--config FILE] [--strict]")
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    return check_main(args[1:])


def init_main(argv: list[str] | None = None) -> int:
    from pipelines.template.init import main

    return main(argv)
