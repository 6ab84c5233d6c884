"""Compiled serving path (issue 16 item 1): candidates, latency, parity, and the quality of the new default.

    .venv/bin/python benchmarks/bench_compiled.py            # latency + parity + quality (3 seeds)
    .venv/bin/python benchmarks/bench_compiled.py --quick    # 1 seed, fewer repeats

Prints ``name=value`` lines (stdout only; logs go to stderr):

* ``quality_*``: the default pipeline (median imputer + indicators, "__missing__" level; it now
  compiles as it is) against the imputer-free alternative the issue suggested (native NaN routing,
  the encoder's -1 code), fitted with the project's own code (``build_pipeline``/``fit_model``) on
  flights 2013-01..03 -> holdout 2013-04 (AUC) and on the second dataset
  (tests/data/second_dataset, 2023-01..03 -> 2023-04, MAE), per seed and mean.
* ``<candidate>_*``: in-process predict p50 (ms) for 1 and 100 rows, conversion seconds and the
  max abs diff of served scores over the whole holdout month, for the sklearn pipeline (as the
  gateway serves it: the numpy fast path), treelite GTIL (the chosen path) and ONNX Runtime via
  skl2onnx (when installed; it is not a project dependency).
* ``compiled_crossover_rows``: the batch size above which GTIL is slower than the pipeline.

Single-threaded (``threadpool_limits(1)``, GTIL nthread=1), as the gateway's predictor thread runs.
Timings are wall clock on a shared 2-core host: compare them with each other, not across machines.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def p50_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _frames(config: Path | None, months: list[str]) -> tuple[Any, dict[str, pd.DataFrame]]:
    from pipelines.config import load_settings
    from pipelines.replay.backtest import load_months

    settings = load_settings(config)
    frames, _ = load_months(settings, months)
    return settings, frames


def _native_preprocessor(settings: Any) -> Any:
    """The alternative measured against the default: numerics pass through with their NaN (the
    trees' own missing-value routing), categoricals straight into the OrdinalEncoder (-1 = missing
    and unknown), no imputer. Not adopted: it cost flights AUC (quality_* lines)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    f, cfg = settings.dataset.features, settings.training
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=-1,
        encoded_missing_value=-1,
        max_categories=cfg.max_categories,
    )
    ct = ColumnTransformer(
        [("num", "passthrough", list(f.numeric)), ("cat", encoder, list(f.categorical))],
        verbose_feature_names_out=False,
    )
    ct.set_output(transform="pandas")
    return ct


def _fit(settings: Any, frames: dict[str, pd.DataFrame], train: list[str], native: bool, seed: int) -> Any:
    """The project's default pipeline (``build_pipeline``), or with the native preprocessor."""
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    from pipelines.training.features import build_pipeline, prepare_xy
    from pipelines.training.train import fit_model

    cfg = settings.training.model_copy(update={"seed": seed})
    contract = settings.dataset
    df = pd.concat([frames[b].assign(__batch_id=b) for b in train], ignore_index=True)
    data = prepare_xy(contract, df)
    model = build_pipeline(contract, cfg)
    if native:
        model = Pipeline([("preprocess", _native_preprocessor(settings)), ("model", model[-1])])
    with threadpool_limits(1):
        fit_model(model, data, cfg, df.loc[df[contract.target.name].notna(), "__batch_id"])
    return model


def quality(seeds: list[int]) -> None:
    from threadpoolctl import threadpool_limits

    from pipelines.training import metrics
    from pipelines.training.features import predict_scores, prepare_xy

    cases = [
        ("flights", None, ["2013-01", "2013-02", "2013-03"], "2013-04", "roc_auc"),
        (
            "diabetes",
            REPO / "tests/data/second_dataset/pipeline.yaml",
            ["2023-01", "2023-02", "2023-03"],
            "2023-04",
            "mae",
        ),
    ]
    for name, config, train, holdout, metric in cases:
        settings, frames = _frames(config, [*train, holdout])
        task = settings.dataset.target.task
        hold = prepare_xy(settings.dataset, frames[holdout])
        figures: dict[str, list[float]] = {"default": [], "native": []}
        for seed in seeds:
            for label, native in (("default", False), ("native", True)):
                model = _fit(settings, frames, train, native, seed)
                with threadpool_limits(1):
                    scores = predict_scores(model, hold.x, task)
                value = metrics.compute(task, hold.y.to_numpy(), scores)[metric]
                figures[label].append(value)
                print(f"quality_{name}_{metric}_{label}_seed{seed}={value:.5f}", flush=True)
        for label, values in figures.items():
            print(f"quality_{name}_{metric}_{label}_mean={np.mean(values):.5f}")
        delta = np.mean(figures["native"]) - np.mean(figures["default"])
        print(f"quality_{name}_{metric}_native_minus_default_mean={delta:+.5f}")


def _onnx(model: Any, x: pd.DataFrame, settings: Any) -> tuple[Callable[[pd.DataFrame], np.ndarray], float]:
    """skl2onnx + onnxruntime on the same pipeline (raises what the converter raises)."""
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    num, cat = list(settings.dataset.features.numeric), list(settings.dataset.features.categorical)
    inputs = [(c, DoubleTensorType([None, 1])) for c in num] + [(c, StringTensorType([None, 1])) for c in cat]
    t0 = time.perf_counter()
    onx = convert_sklearn(
        model,
        initial_types=inputs,
        target_opset={"": 18, "ai.onnx.ml": 3},
        options={id(model[-1]): {"zipmap": False}},
    )
    seconds = time.perf_counter() - t0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def predict(frame: pd.DataFrame) -> np.ndarray:
        feed = {c: frame[c].to_numpy(np.float64).reshape(-1, 1) for c in num}
        feed |= {c: frame[c].fillna("").astype(str).to_numpy().reshape(-1, 1) for c in cat}
        return np.asarray(sess.run(None, feed)[1])[:, 1]

    return predict, seconds


def latency(repeats: int) -> None:
    from threadpoolctl import threadpool_limits

    from pipelines.core.compiled import compile_pipeline, max_abs_diff
    from pipelines.training.features import prepare_xy

    settings, frames = _frames(None, ["2013-01", "2013-02", "2013-03", "2013-04"])
    model = _fit(settings, frames, ["2013-01", "2013-02", "2013-03"], False, settings.training.seed)
    hold = prepare_xy(settings.dataset, frames["2013-04"]).x
    with threadpool_limits(1):
        reference = model.predict_proba(hold)[:, 1]
        fast = copy.deepcopy(model)
        fast.set_output(transform="default")
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        candidates: dict[str, tuple[Callable[[pd.DataFrame], np.ndarray], float]] = {
            "sklearn": (lambda f: fast.predict_proba(f)[:, 1], 0.0)
        }
        compiled = compile_pipeline(model, "classification")
        candidates["treelite"] = (compiled.predict, compiled.conversion_seconds)
        # skl2onnx on the default pipeline, and on the imputer-free variant (is the imputer the only
        # obstacle?); onnxruntime serves whichever converts.
        native = _fit(settings, frames, ["2013-01", "2013-02", "2013-03"], True, settings.training.seed)
        for label, pipeline in (("onnx", model), ("onnx_native", native)):
            try:
                predict_onnx, seconds = _onnx(pipeline, hold, settings)
            except ImportError as exc:
                print(f"{label}_status=not installed ({exc.name})")
                continue
            except Exception as exc:
                first = str(exc).splitlines()[0][:160] if str(exc) else ""
                print(f"{label}_status=conversion failed: {type(exc).__name__}: {first}")
                continue
            print(f"{label}_status=converted")
            if pipeline is model:
                candidates[label] = (predict_onnx, seconds)
        for name, (predict, seconds) in candidates.items():
            print(f"{name}_conversion_s={seconds:.4f}")
            print(f"{name}_parity_max_abs_diff={max_abs_diff(predict(hold), reference):.3g}")
            for n in (1, 100):
                rows = hold.iloc[:n]
                print(f"{name}_predict_{n}row_p50_ms={p50_ms(lambda r=rows, p=predict: p(r), repeats):.3f}")
        crossover = math.inf
        for n in (100, 200, 400, 800, 1600):
            rows = hold.iloc[:n]
            t_compiled = p50_ms(lambda r=rows: compiled.predict(r), max(5, repeats // 10))
            t_sklearn = p50_ms(lambda r=rows: fast.predict_proba(r), max(5, repeats // 10))
            print(f"rows{n}_treelite_ms={t_compiled:.2f} rows{n}_sklearn_ms={t_sklearn:.2f}")
            if t_compiled > t_sklearn and math.isinf(crossover):
                crossover = n
        print(f"compiled_crossover_rows={crossover}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, fewer repeats")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()

    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    warnings.simplefilter("ignore")
    if not args.skip_latency:
        latency(100 if args.quick else 300)
    if not args.skip_quality:
        quality([42] if args.quick else [42, 7, 2024])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
