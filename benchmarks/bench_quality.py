"""What the GX quality gate costs: import, context, validation of a month and of the year,
against hand-written pandas checks of the same rules. Figures are printed; nothing is asserted.

The pandas baseline interprets the same suite JSON (every expectation type the flights suite
uses) with vectorised pandas, and the script checks that both find the same failed rules and
the same offending rows, so the comparison is like for like.

    .venv/bin/python benchmarks/bench_quality.py [--repeat 3] [--skip-year]

Runs in a temporary runtime root (landing the 12 months there; the source cache of the default
root is reused when present), so it leaves the project's var/ untouched.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def timed(fn: Callable[[], Any], repeat: int, warmup: bool = True) -> tuple[float, float, Any]:
    """(median, min) seconds over ``repeat`` runs (after one warm-up run), and the last result."""
    out = fn() if warmup else None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"{label:<48}{seconds:8.3f} s  {note}".rstrip())


def import_cost(module: str, repeat: int) -> float:
    """Median wall time of importing ``module`` in a fresh interpreter, minus a bare interpreter."""

    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - t0

    bare = statistics.median(run("pass") for _ in range(repeat))
    full = statistics.median(run(f"import {module}") for _ in range(repeat))
    return full - bare


# --------------------------------------------------------------------------- pandas baseline
def pandas_checks(
    df: Any, suite: list[dict[str, Any]], params: dict[str, Any], id_col: str
) -> dict[str, Any]:
    """The suite's rules in plain pandas: label -> (success, flagged row mask or None)."""
    import numpy as np
    import pandas as pd

    from pipelines.quality.suite import expectation_label

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "$PARAMETER" in v:
            return params[v["$PARAMETER"]]
        return v

    out: dict[str, Any] = {}
    n = len(df)
    for exp in suite:
        kind, kw = exp["type"], {k: value(v) for k, v in exp["kwargs"].items()}
        label = expectation_label(exp)
        col = kw.get("column")
        mostly = kw.get("mostly", 1.0)
        if col is not None and col not in df.columns:
            out[label] = (False, None)
            continue
        mask = None
        if kind == "expect_table_columns_to_match_ordered_list":
            ok = list(df.columns) == list(kw["column_list"])
        elif kind == "expect_table_row_count_to_be_between":
            ok = kw.get("min_value", -np.inf) <= n <= kw.get("max_value", np.inf)
        elif kind == "expect_column_values_to_be_in_type_list":
            ok = str(df[col].dtype) in kw["type_list"]
        elif kind == "expect_column_proportion_of_unique_values_to_be_between":
            share = df[col].nunique() / max(df[col].notna().sum(), 1)
            ok = kw.get("min_value", 0) <= share <= kw.get("max_value", 1)
        elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
            share = df[col].notna().mean() if n else np.nan
            ok = bool(kw.get("min_value", 0) <= share <= kw.get("max_value", 1))
        else:
            s = df[col]
            present = s.notna()
            if kind == "expect_column_values_to_not_be_null":
                mask = ~present
                denom = n
            elif kind == "expect_column_values_to_be_unique":
                mask = present & s.duplicated(keep=False)
                denom = int(present.sum())
            elif kind == "expect_column_values_to_be_in_set":
                mask = present & ~s.isin(kw["value_set"])
                denom = int(present.sum())
            elif kind == "expect_column_values_to_be_between":
                lo, hi = kw.get("min_value"), kw.get("max_value")
                bad = pd.Series(False, index=s.index)
                if lo is not None:
                    bad |= (s <= lo) if kw.get("strict_min") else (s < lo)
                if hi is not None:
                    bad |= (s >= hi) if kw.get("strict_max") else (s > hi)
                mask = present & bad
                denom = int(present.sum())
            else:
                raise NotImplementedError(kind)
            ok = (1 - mask.sum() / denom if denom else 1.0) >= mostly
        out[label] = (bool(ok), mask)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--month", default="2013-06")
    parser.add_argument("--skip-year", action="store_true")
    args = parser.parse_args(argv)

    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))  # figures only
    root = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    os.environ["MLOPS__PATHS__ROOT"] = str(root / "var")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    default_cache = REPO / "var" / "cache"
    if default_cache.is_dir():
        shutil.copytree(default_cache, root / "var" / "cache")

    try:
        print(f"== import cost (fresh interpreter, minus a bare one; median of {args.repeat})")
        gx_import = import_cost("great_expectations", args.repeat)
        pd_import = import_cost("pandas", args.repeat)
        row("import great_expectations", gx_import)
        row("import pandas", pd_import)

        import pandas as pd

        from pipelines.config import load_settings
        from pipelines.data.landing import available_batches, land_batch
        from pipelines.quality.gx_runner import import_gx, run_suite
        from pipelines.quality.reader import read_landed
        from pipelines.quality.suite import batch_period, load_suite, suite_parameters

        settings = load_settings()
        contract = settings.dataset
        spec = load_suite(settings)
        import_gx()

        months = available_batches(settings) if not args.skip_year else [args.month]
        t0 = time.perf_counter()
        landed = {b: land_batch(settings, b) for b in months}
        print(f"\n(landed {len(months)} month(s) in {time.perf_counter() - t0:.1f} s, not part of the gate)")

        read = read_landed(landed[args.month].path, contract)
        assert read.frame is not None
        month = read.frame
        params = suite_parameters(contract, args.month)

        n_exp = len(spec.expectations)
        print(f"\n== GX context (ephemeral, suite of {n_exp} expectations); median of {args.repeat}")

        def context_only() -> None:
            import great_expectations as gx

            from pipelines.quality.gx_runner import _context, build_suite

            ctx = _context(None)
            ctx.suites.add(build_suite(spec, {"landed_columns": contract.landed_columns}))
            bd = (
                ctx.data_sources.add_pandas("p")
                .add_dataframe_asset("a")
                .add_batch_definition_whole_dataframe("b")
            )
            ctx.validation_definitions.add(
                gx.ValidationDefinition(name="v", data=bd, suite=ctx.suites.get(spec.name))
            )

        ctx_med, _, _ = timed(context_only, args.repeat)
        row("context + suite + validation definition", ctx_med)

        shape = f"{len(month):,} rows x {month.shape[1]} columns"
        print(f"\n== one month ({args.month}, {shape}); median of {args.repeat}")
        med, mn, outcome = timed(lambda: run_suite(month, spec, params, None, "bench"), args.repeat)
        row("GX run_suite, no Data Docs (context+validate)", med, f"(min {mn:.3f})")
        row("   of which validation (last run)", outcome.timings["validate_s"])
        docs_dir = root / "docs"

        def with_docs() -> Any:
            shutil.rmtree(docs_dir, ignore_errors=True)
            return run_suite(month, spec, params, docs_dir, "bench")

        dmed, _, doc_out = timed(with_docs, args.repeat)
        row("GX run_suite + Data Docs", dmed, f"(docs {doc_out.timings['data_docs_s']:.3f} s)")
        read_med, _, _ = timed(lambda: read_landed(landed[args.month].path, contract), args.repeat)
        row("read + structural checks of the CSV", read_med)
        pmed, pmin, pres = timed(
            lambda: pandas_checks(month, spec.expectations, params, contract.id.column), args.repeat
        )
        row("hand-written pandas, same rules", pmed, f"(min {pmin:.3f}) -> GX/pandas x{med / pmed:.0f}")

        gx_failed = {f.expectation for f in outcome.failures}
        pd_failed = {label for label, (ok, _) in pres.items() if not ok}
        gx_rows = {k: len(v) for k, v in outcome.row_positions.items()}
        pd_rows = {k: int(m.sum()) for k, (ok, m) in pres.items() if not ok and m is not None}
        agree = gx_failed == pd_failed and all(gx_rows.get(k) == pd_rows.get(k) for k in gx_rows)
        print(f"same verdicts: {agree}  (failed: {sorted(gx_failed)}; flagged rows {gx_rows})")

        from pipelines.quality.gate import validate_batch

        emed, _, _ = timed(lambda: validate_batch(settings, args.month, raise_on_reject=False), args.repeat)
        row("validate_batch end to end", emed, "(read, GX, docs, reports, quarantine, publish)")

        if not args.skip_year:
            frames = []
            for b in months:
                r = read_landed(landed[b].path, contract)
                assert r.frame is not None
                frames.append(r.frame)
            year = pd.concat(frames, ignore_index=True)
            start, _ = batch_period(months[0], contract)
            _, end = batch_period(months[-1], contract)
            yparams = {**params, "batch_start": start.to_pydatetime(), "batch_end": end.to_pydatetime()}
            print(f"\n== whole year ({len(year):,} rows); median of {max(args.repeat - 1, 1)}")
            ymed, _, yout = timed(
                lambda: run_suite(year, spec, yparams, None, "bench-year"),
                max(args.repeat - 1, 1),
                warmup=False,
            )
            row("GX run_suite, no Data Docs", ymed, f"(validation {yout.timings['validate_s']:.3f} s)")
            ypmed, _, _ = timed(
                lambda: pandas_checks(year, spec.expectations, yparams, contract.id.column), args.repeat
            )
            row("hand-written pandas, same rules", ypmed, f"-> GX/pandas x{ymed / ypmed:.0f}")
            print("(the year fails the per-month row-count rule in both: timing only)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
