"""``mlops`` command line: one entry point, each component owns its subcommands.

``mlops <component> ...`` imports ``pipelines.<component>.cli`` and calls its
``main(argv)``; importing lazily keeps ``mlops --help`` fast and lets components
be added without editing this file.

One route crosses components: ``mlops serving release|rollback`` (the names people and the
README know) run the canary's commands, which sit above serving; serving's own CLI cannot
import them without an import circle, so the route lives here, above both.
"""

from __future__ import annotations

import importlib
import sys

COMPONENTS = {
    "quality": "validate, inspect and replay data batches (GX gate, quarantine)",
    "training": "train, evaluate and register candidates",
    "serving": "run the gateway, send traffic, roll back",
    "canary": "release a challenger through canary steps, or roll back",
    "monitoring": "drift and performance monitoring, retrain policy",
    "optimize": "tuning, model choice, capacity planning, scorecard",
}
#: Template commands (``mlops init``, ``mlops config check``): entry points of pipelines.template.cli.
TEMPLATE_COMMANDS = {
    "init": ("init_main", "write pipeline.yaml + expectations.json derived from a data file"),
    "config": ("config_main", "config check: can each stage act with this config on its data?"),
}
#: ``mlops serving <command>`` commands that the canary's CLI runs.
SERVING_TO_CANARY = {"release", "rollback"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TEMPLATE_COMMANDS:
        from pipelines.template import cli as template_cli

        entry = getattr(template_cli, TEMPLATE_COMMANDS[args[0]][0])
        return int(entry(args[1:]) or 0)
    if not args or args[0] in {"-h", "--help"} or args[0] not in COMPONENTS:
        print("usage: mlops <component> [args...]\n\ncomponents:")
        for name, what in COMPONENTS.items():
            print(f"  {name:<11} {what}")
        print("\ntemplate:")
        for name, (_, what) in TEMPLATE_COMMANDS.items():
            print(f"  {name:<11} {what}")
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    if args[0] == "serving" and len(args) > 1 and args[1] in SERVING_TO_CANARY:
        from pipelines.canary import cli as canary_cli

        return int(canary_cli.main(args[1:], prog="mlops serving") or 0)
    module = importlib.import_module(f"pipelines.{args[0]}.cli")
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
