"""Drift check for one month against its reference, three ways, side by side in one run.

1. Evidently ``DataDriftPreset()`` with defaults, on the full month and full reference;
2. our configuration (``pipelines.monitoring.reports``): seeded samples, per-column tests from
   ``monitoring`` config, ``DriftedColumnsCount`` over all features + ``ValueDrift`` for the
   important ones — computed by Evidently;
3. the floor: the same per-column tests written directly in numpy/scipy, once on the same
   samples and once on the full data.

It also checks that (2) and (3) agree (same scores, same verdicts), so the speed-up is not
bought with a different answer. Figures are printed; nothing is asserted.

    .venv/bin/python benchmarks/bench_monitoring.py [--month 2013-06] [--reference 2013-01,2013-02,2013-03]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import spatial, stats


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median, min) seconds over ``repeat`` runs after one warm-up, and the last result."""
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def _binned(
    ref: pd.Series, cur: pd.Series, numerical: bool, fill_zeroes: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bucket: sturges bins for continuous columns, per value otherwise."""
    if numerical and ref.nunique() > 20:
        edges = np.histogram_bin_edges(np.concatenate([ref.to_numpy(), cur.to_numpy()]), bins="sturges")
        r = np.histogram(ref.to_numpy(), edges)[0] / len(ref)
        c = np.histogram(cur.to_numpy(), edges)[0] / len(cur)
    else:
        rc, cc = ref.value_counts(), cur.value_counts()
        keys = rc.index.union(cc.index)
        r = rc.reindex(keys, fill_value=0).to_numpy() / len(ref)
        c = cc.reindex(keys, fill_value=0).to_numpy() / len(cur)
    if fill_zeroes:
        for a in (r, c):
            low = a[a > 0].min()
            a[a == 0] = low / 1e6 if low <= 1e-4 else 1e-4
    return r.astype(float), c.astype(float)


def floor_test(method: str, ref: pd.Series, cur: pd.Series, numerical: bool) -> float:
    """The same statistic Evidently computes for these methods, in numpy/scipy."""
    ref, cur = ref.dropna(), cur.dropna()
    if method == "wasserstein":
        x, y = ref.to_numpy(dtype=float), cur.to_numpy(dtype=float)
        return float(stats.wasserstein_distance(x, y) / max(float(np.std(x)), 0.001))
    if method == "jensenshannon":
        r, c = _binned(ref, cur, numerical, fill_zeroes=False)
        return float(spatial.distance.jensenshannon(r, c))
    if method == "psi":
        r, c = _binned(ref, cur, numerical, fill_zeroes=True)
        return float(np.sum((r - c) * np.log(r / c)))
    raise ValueError(f"no floor implementation for method {method!r}")


def floor(plan: Any, ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, float]:
    return {
        col: floor_test(t.method, ref[col], cur[col], col in plan.numeric) for col, t in plan.tests.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--month", default="2013-06")
    ap.add_argument("--reference", default="2013-01,2013-02,2013-03")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    from pipelines.config import load_settings
    from pipelines.core.periods import batch_ids
    from pipelines.data.source import load_source

    settings = load_settings()
    contract, cfg = settings.dataset, settings.monitoring
    features = contract.features.all
    t0 = time.perf_counter()
    df = load_source(contract, base=settings.config_file.parent)
    ids = batch_ids(df[contract.event_time], contract.batch_frequency, contract.event_timezone)
    refs = [b.strip() for b in args.reference.split(",")]
    ref_full = df.loc[ids.isin(refs), features].reset_index(drop=True)
    cur_full = df.loc[ids == args.month, features].reset_index(drop=True)
    print(
        f"data: reference {refs} = {len(ref_full)} rows, month {args.month} = {len(cur_full)} rows, "
        f"{len(features)} features (loaded in {time.perf_counter() - t0:.1f}s)"
    )

    t0 = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from pipelines.monitoring import reports

    print(f"import evidently: {time.perf_counter() - t0:.1f}s (once per process)")

    important = list(cfg.important_features) or features[:5]
    ref_s = reports.sample(ref_full, cfg.reference_sample_rows, cfg.sample_seed)
    cur_s = reports.sample(cur_full, cfg.current_sample_rows, cfg.sample_seed)
    plan = reports.drift_plan(settings, cur_s, ref_s, important)
    definition = DataDefinition(
        numerical_columns=contract.features.numeric, categorical_columns=contract.features.categorical
    )

    def preset() -> Any:
        cur = Dataset.from_pandas(cur_full, data_definition=definition)
        ref = Dataset.from_pandas(ref_full, data_definition=definition)
        return Report([DataDriftPreset()]).run(cur, ref)

    def ours() -> dict[str, Any]:
        cur = reports.sample(cur_full, cfg.current_sample_rows, cfg.sample_seed)
        ref = reports.sample(ref_full, cfg.reference_sample_rows, cfg.sample_seed)
        return reports.drift_figures(reports.run_drift_report(cur, ref, plan, quality=False), plan)

    def ours_with_quality() -> dict[str, Any]:
        cur = reports.sample(cur_full, cfg.current_sample_rows, cfg.sample_seed)
        ref = reports.sample(ref_full, cfg.reference_sample_rows, cfg.sample_seed)
        return reports.drift_figures(reports.run_drift_report(cur, ref, plan, quality=True), plan)

    def floor_same() -> dict[str, float]:
        cur = reports.sample(cur_full, cfg.current_sample_rows, cfg.sample_seed)
        ref = reports.sample(ref_full, cfg.reference_sample_rows, cfg.sample_seed)
        return floor(plan, ref, cur)

    def floor_full() -> dict[str, float]:
        return floor(plan, ref_full, cur_full)

    n = args.repeat
    rows = [
        ("Evidently DataDriftPreset() defaults, full data", *timed(preset, n)),
        ("our configuration (Evidently), sampled", *timed(ours, n)),
        ("  ... + data-quality metrics (as the monitoring step runs it)", *timed(ours_with_quality, n)),
        ("floor: same tests in numpy/scipy, same samples", *timed(floor_same, n)),
        ("floor: same tests in numpy/scipy, full data", *timed(floor_full, n)),
    ]
    print(f"\ndrift check, {args.month} vs {'+'.join(refs)} (median / min of {n} runs after a warm-up)")
    for name, med, low, _ in rows:
        print(f"  {name:<64} {med:7.3f}s  {low:7.3f}s")
    t_preset, t_ours, t_floor_same, t_floor_full = rows[0][1], rows[1][1], rows[3][1], rows[4][1]
    print(f"\n  preset / floor(full)      = {t_preset / t_floor_full:5.1f}x")
    print(f"  ours / floor(full)        = {t_ours / t_floor_full:5.1f}x   (goal: <= 3x)")
    print(f"  ours / floor(same sample) = {t_ours / t_floor_same:5.1f}x   (overhead on identical work)")
    print(f"  preset / ours             = {t_preset / t_ours:5.1f}x")

    figures, scores_same, scores_full = rows[1][3], rows[3][3], rows[4][3]
    diffs = [abs(figures["columns"][c].score - scores_same[c]) for c in plan.important]
    verdicts = all(
        figures["columns"][c].detected == (scores_same[c] >= plan.tests[c].threshold) for c in plan.important
    )
    share_floor = sum(scores_same[c] >= t.threshold for c, t in plan.tests.items()) / len(plan.tests)
    print("\nagreement (important features, same samples):")
    print(f"  max |Evidently score - floor score| = {max(diffs):.2e}; same drift verdicts: {verdicts}")
    print(f"  drifted share: Evidently {figures['drift_share']:.3f}, floor {share_floor:.3f}")
    print("  sampling effect (floor, sample vs full data), per important feature:")
    for c in plan.important:
        print(
            f"    {c:<16} {plan.tests[c].method:<14} sample {scores_same[c]:.4f}  full {scores_full[c]:.4f}  "
            f"threshold {plan.tests[c].threshold:g}"
        )
    snap = rows[0][3]
    share = next(
        m["value"]["share"]
        for m in snap.dict()["metrics"]
        if m["config"]["type"].endswith("DriftedColumnsCount")
    )
    print(f"\n  DataDriftPreset drifted share (its own default tests): {share:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
