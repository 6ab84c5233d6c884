"""Decision quality of the evaluation gate (issue 12): false rejects of equal retrains, bad
challengers accepted. Figures only; nothing is asserted.

Real months through the real gate, in a throwaway runtime root (landing + GX quality gate, an
embedded SQLite MLflow store). For each window (3 months -> the next as holdout) a seed-42
champion is trained and given ``@champion``; then:

- ``false_reject_rate``: share of *equal-quality* retrains (same pipeline, same window, another
  seed) that the gate rejects; ``false_reject_rate_point_gate``: the same candidates judged by the
  previous gate's rules (fixed tolerances on point estimates: overall -0.01, slices -0.03,
  behavioural shifts against 0.02 / 0.005 / 0.005), from the same evaluation documents;
- ``bad_challengers_accepted``: candidates of the corpus in ``tests/support/gate_corpus.py``
  (slice-broken, leaky-but-slice-broken, behaviour-inverted, constant, shuffled labels, noisy,
  NaN-emitting, raising, wrong shape, slow) that the gate lets through, on the first window;
  ``bad_challengers_misattributed``: rejected, but not by the expected criterion;
- ``train_seconds_per_model`` / ``evaluate_seconds_per_model``: mean wall time per equal retrain
  (``train_candidate``; evaluation + gate + registration), on this machine, under whatever load
  it has.

Full: 20 seeds x 3 windows (63 fits); ``--quick``: 5 seeds x 3 windows (18 fits, a few minutes).

    .venv/bin/python benchmarks/decisions_gate.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

WINDOWS = [
    (("2013-01", "2013-02", "2013-03"), "2013-04"),
    (("2013-02", "2013-03", "2013-04"), "2013-05"),
    (("2013-03", "2013-04", "2013-05"), "2013-06"),
]
CHAMPION_SEED = 42
#: The gate before issue 12: fixed tolerances on point estimates (config of that time).
POINT_MAX_REGRESSION = 0.01
POINT_SLICE_TOLERANCE = 0.03
POINT_BEHAVIOURAL = {
    "temperature_1F_invariance": 0.02,
    "heavier_rain_not_less_late": 0.005,
    "lower_visibility_not_less_late": 0.005,
}


def point_gate_rejects(document: dict[str, Any]) -> list[str]:
    """What the previous gate would have failed on this evaluation document (relative, slice and
    behavioural rules; the absolute bar is unchanged and left out)."""
    failed = []
    comp = (document.get("champion") or {}).get("comparison") or {}
    if comp and comp["improvement"] < -POINT_MAX_REGRESSION:
        failed.append("relative")
    for s in document.get("slices") or []:
        c = s.get("comparison")
        if s.get("gated") and c and c["improvement"] < -POINT_SLICE_TOLERANCE:
            failed.append(f"slice:{s['column']}={s['value']}")
    for b in document.get("behavioural") or []:
        tol = POINT_BEHAVIOURAL.get(b["name"])
        if tol is None:
            continue
        bad = b["mean_abs_shift"] > tol if b.get("kind") == "invariance" else b["mean_shift"] < -tol
        if bad:
            failed.append(f"behavioural:{b['name']}")
    return failed


def measure(quick: bool) -> dict[str, float]:
    """Run the gate on equal retrains and on the bad-challenger corpus; return the figures.

    Works in its own throwaway runtime root (removed after, unless ``MLOPS_KEEP_BENCH_ROOT=1``); the
    caller's ``MLOPS__PATHS__ROOT`` is restored after.
    """
    previous = os.environ.get("MLOPS__PATHS__ROOT")
    root = Path(tempfile.mkdtemp(prefix="bench-decisions-gate-"))
    os.environ["MLOPS__PATHS__ROOT"] = str(root / "var")
    try:
        return _measure(quick, root)
    finally:
        if not os.environ.get("MLOPS_KEEP_BENCH_ROOT"):
            shutil.rmtree(root, ignore_errors=True)
        if previous is None:
            os.environ.pop("MLOPS__PATHS__ROOT", None)
        else:
            os.environ["MLOPS__PATHS__ROOT"] = previous


def _measure(quick: bool, root: Path) -> dict[str, float]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    from support import gate_corpus as corpus

    from pipelines.config import load_settings
    from pipelines.training.contracts import TrainingWindow
    from pipelines.training.evaluate import load_evaluation
    from pipelines.training.train import train_candidate

    seeds = [1, 2, 3, 4, 5] if quick else list(range(1, 21))
    base = load_settings()
    stamp = int(time.time())
    base = base.model_copy(
        update={"mlflow": base.mlflow.model_copy(update={"experiment": f"bench-gate-{stamp}"})}
    )
    corpus.publish(base, sorted({b for w, h in WINDOWS for b in (*w, h)}))

    judged = rejected = point_rejected = 0
    train_s: list[float] = []
    eval_s: list[float] = []
    reasons: dict[str, int] = {}
    first_champion = None
    first_settings = None
    for i, (train_batches, holdout) in enumerate(WINDOWS):
        settings = base.model_copy(
            update={"mlflow": base.mlflow.model_copy(update={"registered_model": f"bench_gate_{stamp}_w{i}"})}
        )
        window = TrainingWindow(train_batches, holdout)
        champion, seconds = corpus.make_champion(corpus.with_seed(settings, CHAMPION_SEED), window)
        train_s.append(seconds)
        if first_champion is None:
            first_champion, first_settings = champion, settings
        for seed in seeds:
            s = corpus.with_seed(settings, seed)
            t0 = time.perf_counter()
            trained = train_candidate(s, window, f"benchmark: equal retrain seed {seed}")
            t1 = time.perf_counter()
            verdict, _, _ = corpus.judge(s, trained)
            eval_s.append(time.perf_counter() - t1)
            train_s.append(t1 - t0)
            judged += 1
            if not verdict.passed:
                rejected += 1
                for c in verdict.failed_criteria:
                    reasons[c] = reasons.get(c, 0) + 1
            document = load_evaluation(
                f"runs:/{trained.run_id}/evaluation/evaluation.json", settings.tracking_uri
            )
            if point_gate_rejects(document):
                point_rejected += 1
            shifts = {b["name"]: round(b["mean_shift"], 4) for b in document.get("behavioural") or []}
            change = ((document.get("champion") or {}).get("comparison") or {}).get("improvement")
            print(
                f"# window {i} seed {seed}: {verdict.verdict} {list(verdict.failed_criteria)} "
                f"overall change {change:+.4f} shifts {shifts}",
                file=sys.stderr,
                flush=True,
            )

    assert first_champion is not None and first_settings is not None
    accepted = misattributed = 0
    scratch = root / "corpus"
    for kind in corpus.EXPECTED:
        s, bad = corpus.build_bad(first_settings, first_champion, kind, scratch)
        verdict, _, _ = corpus.judge(s, bad)
        if verdict.passed:
            accepted += 1
        elif not corpus.caught(kind, verdict.failed_criteria):
            misattributed += 1
        print(f"# bad {kind}: {verdict.verdict} {list(verdict.failed_criteria)}", file=sys.stderr, flush=True)
    for reason, n in sorted(reasons.items()):
        print(f"# false reject reason {reason}: {n}", file=sys.stderr)
    return {
        "false_reject_rate": rejected / judged,
        "false_reject_rate_point_gate": point_rejected / judged,
        "equal_retrains_judged": float(judged),
        "bad_challengers_accepted": float(accepted),
        "bad_challengers_misattributed": float(misattributed),
        "bad_challenger_kinds": float(len(corpus.EXPECTED)),
        "train_seconds_per_model": sum(train_s) / len(train_s),
        "evaluate_seconds_per_model": sum(eval_s) / len(eval_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 seeds x 3 windows instead of 20 x 3")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    for key, value in measure(args.quick).items():
        print(f"{key}={value:.4g}", flush=True)
    print(f"seconds_gate={time.perf_counter() - t0:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
