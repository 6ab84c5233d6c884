"""Parse time of each DAG file in dags/, net of interpreter start-up. Prints figures only.

Each file is executed in a fresh interpreter, repeated; every file run is paired with an
empty-DAG run made just before it, so load changes on a shared machine cancel out in the
per-pair differences (medians reported; the bare interpreter, ~0.1 s, is measured once):

* ``- bare``: minus ``python -c pass`` (what the issue asks for: the file's full parse cost,
  Airflow's Task SDK import included);
* ``- empty``: minus a trivial one-task DAG file (the SDK import and DAG machinery every DAG
  pays), leaving what the file itself adds;
* ``own``: the file's execution time measured inside an interpreter that has already built a
  trivial DAG (what a DAG processor, with Airflow loaded, pays per re-parse).

    .venv/bin/python benchmarks/bench_dag_parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"

EMPTY_DAG = """
from airflow.sdk import Asset, Param, dag, task

@dag(schedule=None, params={"p": Param("", type="string")})
def empty():
    @task(outlets=[Asset(name="a", uri="x://a")])
    def t():
        return None
    t()

empty()
"""


def wall(code: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env, cwd=REPO)
    return time.perf_counter() - t0


def own_time(file: Path, env: dict[str, str]) -> float:
    """Seconds to execute the DAG file after a trivial DAG was built in the same process."""
    code = (
        f"import time, runpy\nexec({EMPTY_DAG!r})\n"
        f"t = time.perf_counter(); runpy.run_path({str(file)!r}); print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=REPO
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="bench-dag-parse-")
    try:
        return _run(args.repeat, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(repeat: int, home: str) -> int:
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "PYTHONPATH": f"{DAGS}{os.pathsep}{REPO}",
    }
    files = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    empty_code = EMPTY_DAG
    wall(empty_code, env)  # warm the OS file cache
    b = statistics.median(wall("pass", env) for _ in range(5))  # tiny and stable: measured once

    print(f"median of {repeat} paired runs in fresh interpreters; {len(files)} DAG files")
    print(f"\n{'DAG file':<34}{'wall':>8}{'- bare':>9}{'- empty':>9}{'own':>8}   (seconds)")
    empties = []
    for f in files:
        code = f"import runpy; runpy.run_path({str(f)!r})"
        walls, minus_bare, minus_empty, own = [], [], [], []
        for _ in range(repeat):
            e = wall(empty_code, env)
            t = wall(code, env)
            walls.append(t)
            minus_bare.append(t - b)
            minus_empty.append(t - e)
            empties.append(e - b)
            own.append(own_time(f, env))
        print(
            f"{f.name:<34}{statistics.median(walls):8.3f}{statistics.median(minus_bare):9.3f}"
            f"{statistics.median(minus_empty):9.3f}{statistics.median(own):8.3f}"
        )
    if empties:
        sdk = statistics.median(empties)
        print(f"\n{'empty one-task DAG, - bare':<34}{sdk:8.3f}  (the Task SDK's own cost)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
