"""How often the pipeline's decisions are wrong: the evaluation gate, the canary and the retrain policy.

A decision that runs is not yet a decision that can be trusted; this measures its error rates on
real models trained on real months, with the same code the DAGs call:

- ``false_reject_rate``: equal-quality retrains (same window, another seed) the evaluation gate
  rejects (goal ≤ 5 %);
- ``bad_challengers_accepted``: candidates from a corpus of deliberately bad models that the gate
  lets through (goal 0);
- ``canary_equal_promoted_rate`` / ``canary_worse_rolled_back_rate``: the canary's verdicts on an
  equal and on a clearly worse challenger, over repeated runs and batch sizes (goal ≥ 95 % each);
- ``policy_false_alarm_rate``: retrain requests on stable windows (goal ≤ 5 %).

Each figure is printed as a ``name=value`` line; nothing is asserted (goals are read from the
figures, not enforced by a timed test). ``--quick`` runs fewer seeds and repetitions (< ~10 min).

    .venv/bin/python benchmarks/bench_decisions.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import decisions_canary  # sibling modules, found through the path above
import decisions_gate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds and repetitions (< ~10 min)")
    args = parser.parse_args(argv)
    import structlog

    # The pipeline's logs go to stderr: stdout carries only the name=value lines.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    for name, measure in (("gate", decisions_gate.measure), ("canary", decisions_canary.measure)):
        t0 = time.perf_counter()
        figures = measure(args.quick)
        for key, value in figures.items():
            print(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}", flush=True)
        print(f"seconds_{name}={time.perf_counter() - t0:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
