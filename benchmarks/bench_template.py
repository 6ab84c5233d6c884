"""Time from a data file to a reviewed config and a finished loop: ``mlops init``, ``config check``, demo.

Runs on the second dataset's CSV (442 rows, six months) in a throwaway folder and runtime root,
each command in a fresh interpreter as a user would type it. Prints figures only:

* ``init_seconds`` — ``mlops init`` (GX profile, suite, derived config);
* ``config_check_seconds`` — ``mlops config check`` on what init wrote;
* ``quick_demo_seconds`` (with ``--demo``) — ``python -m pipelines.replay --quick`` on it, and
  ``init_to_quick_demo_seconds``, the three together.

    .venv/bin/python benchmarks/bench_template.py [--demo]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "second_dataset" / "diabetes_visits.csv"


def _run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="also run the quick demo on the config")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-template-") as tmp:
        out = Path(tmp) / "cfg"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS__", "MLOPS_CONFIG"))
        }
        env.update(MLOPS__PATHS__ROOT=str(Path(tmp) / "var"), MLOPS__SERVING__PORT=str(port))
        init = _run(
            [
                "-m",
                "pipelines.cli",
                "init",
                "--data",
                str(DATA),
                "--target",
                "progression",
                "--out",
                str(out),
            ],
            env,
        )
        env["MLOPS_CONFIG"] = str(out / "pipeline.yaml")
        check = _run(["-m", "pipelines.cli", "config", "check"], env)
        print(f"init_seconds={init:.1f}")
        print(f"config_check_seconds={check:.1f}")
        if args.demo:
            demo = _run(["-m", "pipelines.replay", "--quick"], env)
            print(f"quick_demo_seconds={demo:.1f}")
            print(f"init_to_quick_demo_seconds={init + check + demo:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
