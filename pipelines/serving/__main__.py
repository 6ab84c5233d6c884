"""``python -m pipelines.serving [--host H] [--port P] [--model-version V]``.

Without ``--model-version`` this is the gateway: it serves what the routing state
(or the registry's ``@champion``) says, logs predictions and exposes the admin API.
With it, it is a fresh *pre-rollout* instance of the same program serving only
that version, with no routing state and no prediction log (nothing it does can
touch what users are served).
"""

from __future__ import annotations

import argparse

from pipelines.config import load_settings
from pipelines.serving.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="bind address (default serving.host)")
    parser.add_argument("--port", type=int, help="port (default serving.port)")
    parser.add_argument("--model-version", help="serve only this registered version (pre-rollout instance)")
    args = parser.parse_args(argv)
    settings = load_settings()
    serve(
        settings,
        host=args.host or settings.serving.host,
        port=args.port or settings.serving.port,
        ephemeral_version=args.model_version,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
