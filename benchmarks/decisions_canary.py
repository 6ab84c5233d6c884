"""How often the canary's verdicts are right, and how often the retrain policy raises a false alarm.

``measure(quick) -> dict[str, float]`` (imported by ``bench_decisions.py``; also runnable alone):

- ``canary_equal_promoted_rate``: an equal challenger (the champion's pipeline, same window,
  another seed) promoted through every traffic step (goal >= 95 %);
- ``canary_worse_rolled_back_rate``: a challenger worse by >= 0.02 AUC on the served month
  (trained on degraded features, its loss measured and reported as ``canary_worse_auc_loss``)
  rolled back (goal >= 95 %);

each over repeated releases at two batch sizes: the demo's (a whole published month, as
``make demo`` replays it) and 720 rows (a small batch, where labels cannot rule out a 0.02
loss). Per-size keys end in ``_demo`` / ``_720``; the headline keys are the minimum over sizes.
Also ``canary_*_undecided_share_<size>`` (releases in which the ``quality_undecided`` policy,
not the test, settled a step) and ``canary_mde_<size>`` (median MDE at the first step).

720 labels cannot separate a 0.02 AUC margin both ways (the MDE is ~0.04; ~3 k labels are
needed), so the configured policy settles most small releases on a point estimate. The
``*_pooled`` keys measure ``quality_undecided: pool`` at 720 rows instead: an undecided release
keeps its split and pools the next batches' labels at a Bonferroni alpha-spending boundary, up to
``quality_pool_max_batches``, then applies the no-harm rule (``canary_720_equal_promoted_rate_pooled``,
``canary_720_worse_rolled_back_rate_pooled``, ``canary_720_batches_to_decision_mean`` / ``_p95``).

- ``policy_false_alarm_rate``: stable windows (resamples of the month the champion was
  validated on) on which any retrain-policy check fired (goal <= 5 %), with
  ``policy_retrain_rate``; built and judged by ``tests/support/monitoring.stable_windows``, the
  code of ``test_stable_windows_false_positive_rate``.

**Why simulating the release is equivalent to the gateway path.** A step's verdict is a
function of the prediction log only: each variant's requests (errors, latencies, predictions)
and the labelled rows served during the release, scored by both models. Here, per release, a
batch is resampled from the real served month (2013-04) *with matured labels* (bootstrap for
the month-sized batch, 720 rows without replacement for the small one); requests replay it
from a random cursor in the replay's order and cycle when exhausted, as ``send_traffic`` does;
each request goes to the canary with probability = the step's weight (the gateway's
hash-of-key split is uniform over distinct keys); the paired frame keeps one row per entity
(``step_frames`` deduplicates the same way). Predictions are the real models' scores of those
rows: what the gateway would log, since ``check_quality`` already proves that re-scoring the
logged features reproduces the served predictions exactly. The loop is the stepping loop's own
rules: ``requests_needed`` sizes each look, :func:`pipelines.canary.stepping.judge_look` decides
it (``is_final``, the ``quality_undecided`` policy, the step window, the timeout) and
:func:`pipelines.canary.analyse` judges it, with the demo's pacing (``DEMO_OVERRIDES``: 3 s
window, 120 s timeout, replay at ``replay_rate``). What is left out is what this benchmark is
not about: errors and latency are those of a healthy canary (both checks pass; their unit and
integration tests cover them), clock time is the replay's send time only, and unlabelled rows
(cancelled flights) are not replayed (they bring no label, only requests).

    .venv/bin/python benchmarks/decisions_canary.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SMALL_BATCH = 720

sys.path.insert(0, str(REPO / "tests"))  # the shared harness: tests/support (as the tests import it)
from support.canary_decisions import (  # noqa: E402
    SERVED,
    TRAIN,
    Scored,
    release,
    train_models,
    with_demo_pacing,
)


def _setup(root: Path) -> Any:
    """Settings on a throwaway root with the demo's canary pacing (the months go through GX next)."""
    os.environ["MLOPS__PATHS__ROOT"] = str(root / "var")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from pipelines.config import load_settings

    return with_demo_pacing(load_settings())


def publish(settings: Any, batches: list[str]) -> list[dict[str, Any]]:
    """Land each month and pass it through the real quality gate (as the integration fixture does)."""
    from pipelines.data.landing import land_batch
    from pipelines.data.validated import published
    from pipelines.quality import validate_batch

    out = []
    for batch_id in batches:
        land_batch(settings, batch_id)
        validate_batch(settings, batch_id)
        ref = published(settings, batch_id)
        if ref is None:
            raise RuntimeError(f"the quality gate did not publish {batch_id}")
        out.append(ref.to_dict())
    return out


def canary_rates(settings: Any, scored: Scored, runs: int, seed: int = 0) -> dict[str, float]:
    """Promotion / rollback rates over ``runs`` releases per challenger and batch size."""
    out: dict[str, float] = {}
    n_month = scored.label.size
    for size_name, size in (("demo", n_month), (str(SMALL_BATCH), SMALL_BATCH)):
        for challenger in ("equal", "worse"):
            rng = np.random.default_rng([seed, size, challenger == "worse"])
            results = []
            for _ in range(runs):
                if size == n_month:  # a month-sized batch: bootstrap resample (each draw its own entity)
                    batch = rng.integers(0, n_month, n_month)
                else:
                    batch = rng.choice(n_month, size, replace=False)
                results.append(release(settings, scored, challenger, batch, rng))
            promoted = np.mean([r["promoted"] for r in results])
            key = "canary_equal_promoted_rate" if challenger == "equal" else "canary_worse_rolled_back_rate"
            out[f"{key}_{size_name}"] = float(promoted if challenger == "equal" else 1 - promoted)
            out[f"canary_{challenger}_undecided_share_{size_name}"] = float(
                np.mean([r["policy"] for r in results])
            )
            mdes = [r["mde"] for r in results if r["mde"] is not None]
            if challenger == "equal" and mdes:
                out[f"canary_mde_{size_name}"] = float(np.median(mdes))
    for key in ("canary_equal_promoted_rate", "canary_worse_rolled_back_rate"):
        out[key] = min(v for k, v in out.items() if k.startswith(key + "_"))
    out.update(pooled_rates(settings, scored, runs, seed))
    return out


def pooled_rates(settings: Any, scored: Scored, runs: int, seed: int = 0) -> dict[str, float]:
    """At the 720-row size, ``quality_undecided: pool``: undecided releases wait for later batches.

    Each release starts on a 720-row batch drawn as in :func:`canary_rates`; every time a look
    says ``pooling``, the next 720 rows of the month not served yet arrive as the next batch
    (new flights, as next month's batch would bring). ``batches_to_decision``: batches pooled
    when the release ended (1 = decided on the first batch), over both challengers.
    """
    pooled = with_demo_pacing(settings, quality_undecided="pool")
    n_month = scored.label.size
    out: dict[str, float] = {}
    used: list[int] = []
    for challenger in ("equal", "worse"):
        rng = np.random.default_rng([seed, SMALL_BATCH, challenger == "worse", 1])
        results = []
        for _ in range(runs):
            order = rng.permutation(n_month)
            chunks = iter(np.array_split(order, n_month // SMALL_BATCH))
            first = next(chunks)[:SMALL_BATCH]
            results.append(
                release(pooled, scored, challenger, first, rng, more=lambda c=chunks: next(c)[:SMALL_BATCH])
            )
        promoted = float(np.mean([r["promoted"] for r in results]))
        name = "equal_promoted_rate" if challenger == "equal" else "worse_rolled_back_rate"
        out[f"canary_{SMALL_BATCH}_{name}_pooled"] = promoted if challenger == "equal" else 1 - promoted
        out[f"canary_{SMALL_BATCH}_{challenger}_policy_settled_share_pooled"] = float(
            np.mean([r["policy"] for r in results])
        )
        used += [int(r["batches"]) for r in results]
    out[f"canary_{SMALL_BATCH}_batches_to_decision_mean"] = float(np.mean(used))
    out[f"canary_{SMALL_BATCH}_batches_to_decision_p95"] = float(np.percentile(used, 95))
    out[f"canary_{SMALL_BATCH}_pool_max_batches"] = float(pooled.canary.quality_pool_max_batches)
    return out


def policy_rates(settings: Any, published: list[dict[str, Any]], windows: int) -> dict[str, float]:
    """The retrain policy on stable windows, by the monitoring test's own harness."""
    from support.monitoring import build_env, stable_windows

    run = stable_windows(build_env(settings, published), windows, scenario="bench-stable")
    return {
        "policy_false_alarm_rate": run.violation_rate,
        "policy_retrain_rate": run.retrain_rate,
        "policy_stable_windows": float(windows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    for key, value in measure(args.quick).items():
        print(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}", flush=True)
    return 0


def measure(quick: bool) -> dict[str, float]:
    """The canary's and the retrain policy's decision error rates (see the module docstring)."""
    import structlog

    # The pipeline's logs go to stderr: stdout carries only the name=value lines.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    runs, windows = (20, 20) if quick else (200, 40)
    with tempfile.TemporaryDirectory(prefix="decisions-canary-") as tmp:
        settings = _setup(Path(tmp))
        t0 = time.perf_counter()
        published = publish(settings, [*TRAIN, SERVED])  # 2013-01..04: also what the policy harness needs
        scored, figures = train_models(settings, max_rows=8000 if quick else None)
        t1 = time.perf_counter()
        figures.update(canary_rates(settings, scored, runs))
        figures["canary_releases_per_case"] = float(runs)
        t2 = time.perf_counter()
        figures.update(policy_rates(settings, published, windows))
        figures.update(
            seconds_canary_setup=t1 - t0,
            seconds_canary_releases=t2 - t1,
            seconds_policy=time.perf_counter() - t2,
        )
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
