"""``mlops serving <command>``: run, start/stop, inspect the gateway; replay traffic; release; roll back.

serve      [--host H] [--port P] [--model-version V]   run the gateway in the foreground
start                                                  start the embedded gateway if needed (prints URL)
stop                                                   stop the embedded gateway
status                                                 served versions, weight, health
traffic    [--batch B] [--requests N] [--rate R] [--concurrency C] [--rows-per-request K]
release    [--version V|@challenger] [--steps 10,50,100]   whole canary release, in-process
rollback   [--reason TEXT] [--to VERSION]              abort the canary, or back to the last good champion

``release`` and ``rollback`` belong to the canary (``pipelines.canary.cli``, which sits above
serving): ``mlops`` (:mod:`pipelines.cli`) routes ``mlops serving release|rollback`` there, so
this module never imports the canary.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.config import load_settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.period_ids import check_batch_id


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops serving",
        description=__doc__.splitlines()[0],
        epilog="release, rollback: the canary's commands, run as `mlops serving release|rollback` "
        "or `mlops canary release|rollback` (see `mlops canary -h`)",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the gateway in the foreground")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--model-version")
    sub.add_parser("start", help="start the embedded gateway unless one is healthy")
    sub.add_parser("stop", help="stop the embedded gateway")
    sub.add_parser("status", help="served versions, canary weight, health")
    p = sub.add_parser("traffic", help="replay a validated batch as requests (labels fed back)")
    p.add_argument("--batch", help="batch id (default: newest published)")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--rate", type=float)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--rows-per-request", type=int, default=1)
    p.add_argument("--label-delay-s", type=float)
    args = parser.parse_args(argv)
    settings = load_settings()

    if args.cmd == "serve":
        from pipelines.serving.server import serve

        serve(
            settings,
            args.host or settings.serving.host,
            args.port or settings.serving.port,
            args.model_version,
        )
        return 0
    if args.cmd == "start":
        from pipelines.serving.launcher import ensure_gateway

        print(ensure_gateway(settings))
        return 0
    if args.cmd == "stop":
        from pipelines.serving.launcher import stop_gateway

        print("stopped" if stop_gateway(settings) else "no embedded gateway running")
        return 0
    if args.cmd == "status":
        from pipelines.serving.client import GatewayClient
        from pipelines.serving.launcher import gateway_url

        with GatewayClient(gateway_url(settings)) as gw:
            if not gw.ping():
                print(f"no gateway answers at {gw.base_url}")
                return 1
            code, health = gw.health()
            _print({"health": health, "version": gw.version()})
            return 0 if code == 200 else 1
    from pipelines.serving.traffic import send_traffic

    try:  # a batch id becomes a folder name: refused before a gateway starts (one line, exit 2)
        if args.batch is not None:
            args.batch = check_batch_id(args.batch, settings.dataset.batch_frequency)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = send_traffic(
            settings,
            args.batch,
            args.requests,
            args.rate,
            args.concurrency,
            rows_per_request=args.rows_per_request,
            label_delay_s=args.label_delay_s,
        )
    except FileNotFoundError as exc:  # no such published batch: nothing to replay
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print(result)
    return 0
