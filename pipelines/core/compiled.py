"""A compiled predictor for the tree pipeline, and the parity check that decides whether it may serve.

Why: one single-row ``predict_proba`` of the scikit-learn pipeline costs milliseconds, nearly all of
it per-call Python overhead (``check_array`` and dataframe handling in every step), not trees. The
compiled predictor does the same arithmetic in one native call: the fitted ``OrdinalEncoder``'s
codes become a dict lookup per categorical value, and the fitted tree ensemble is imported into
treelite and evaluated by its GTIL (a C++ evaluator shipped inside the treelite wheel: no compiler
at load time, so it runs in the slim image).

Why treelite and not ONNX Runtime (measured in ``benchmarks/bench_compiled.py``): skl2onnx 1.20
cannot convert scikit-learn 1.9's HistGradientBoosting (its converter fails building the node
attributes), and its tree converter writes every split as a numeric threshold, so native
categorical splits would be wrong even where conversion succeeds. treelite imports the categorical
splits and reproduces the pipeline to ~1e-15.

Nothing here is trusted blindly: :func:`max_abs_diff` compares the compiled scores with the
original pipeline's, at training time (recorded beside the model) and again at every load (the
gateway serves the compiled copy only within :data:`PARITY_ATOL`). A pipeline shape this module
does not know raises :class:`CompileError`, whose message is the fallback reason.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.errors import PipelineError

#: Largest |compiled - original| score accepted on the parity rows.
PARITY_ATOL = 1e-6
#: Folder of the logged model that holds the compiled predictor and its parity record.
ARTIFACT_DIR = "compiled"
ENGINE = "treelite"
MODEL_FILE = "model.treelite"
SPEC_FILE = "predictor.json"
PARITY_FILE = "parity.json"
ROWS_FILE = "parity_rows.parquet"


class CompileError(PipelineError):
    """The pipeline cannot be compiled or the compiled copy cannot be loaded; the message says why."""


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclass
class CompiledPredictor:
    """Served scores of a fitted ``Pipeline(ColumnTransformer, tree ensemble)`` in one native call.

    ``features`` lists the estimator's input columns in order, each ``(column, kind)`` with kind
    ``numeric`` (float64 as given) or ``categorical`` (looked up in ``codes``).
    """

    task: str
    features: list[tuple[str, str]]
    codes: dict[str, dict[str, float]]
    missing_code: dict[str, float]
    unknown_code: dict[str, float]
    model: Any = field(repr=False)
    conversion_seconds: float = 0.0
    #: ``imputed`` columns: the value a NaN becomes (the fitted SimpleImputer's statistic).
    fill: dict[str, float] = field(default_factory=dict)

    def design_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for j, (col, kind) in enumerate(self.features):
            values = frame[col].to_numpy()
            if kind == "numeric":
                x[:, j] = values.astype(np.float64)
                continue
            if kind == "imputed":
                num = values.astype(np.float64)
                x[:, j] = np.where(np.isnan(num), self.fill[col], num)
                continue
            if kind == "indicator":
                x[:, j] = np.isnan(values.astype(np.float64))
                continue
            codes, missing, unknown = self.codes[col], self.missing_code[col], self.unknown_code[col]
            x[:, j] = [
                code
                if (code := codes.get(v) if isinstance(v, str) else None) is not None
                else (missing if _is_missing(v) else unknown)
                for v in values
            ]
        return x

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive class) for a binary classifier, the value for a regressor (float64, one per row)."""
        import treelite.gtil

        n = len(frame)
        if n == 0:
            return np.empty(0, dtype=np.float64)
        # One thread: the gateway already runs one predictor thread per model.
        out = treelite.gtil.predict(self.model, self.design_matrix(frame), nthread=1)
        return np.asarray(out, dtype=np.float64).reshape(n, -1)[:, -1]

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_FILE).write_bytes(self.model.serialize_bytes())

        def enc(v: float) -> float | None:  # JSON has no NaN
            return None if math.isnan(v) else v

        spec = {
            "engine": ENGINE,
            "treelite_version": _treelite_version(),
            "task": self.task,
            "features": [list(f) for f in self.features],
            "codes": {c: {k: enc(v) for k, v in m.items()} for c, m in self.codes.items()},
            "missing_code": {c: enc(v) for c, v in self.missing_code.items()},
            "unknown_code": {c: enc(v) for c, v in self.unknown_code.items()},
            "conversion_seconds": self.conversion_seconds,
            "fill": self.fill,
        }
        (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> CompiledPredictor:
        """Read a saved predictor (raises CompileError naming the file when it is absent or unreadable)."""
        spec_path = folder / SPEC_FILE
        if not spec_path.is_file():
            refused = read_parity(folder)
            why = refused.get("reason") if refused else None
            raise CompileError(
                f"no compiled predictor beside the model ({ARTIFACT_DIR}/{SPEC_FILE} absent"
                + (f"; training recorded: {why}" if why else "; logged before compiled serving existed")
                + ")"
            )
        try:
            import treelite

            spec = json.loads(spec_path.read_text())
            if spec.get("engine") != ENGINE:
                raise CompileError(f"compiled engine {spec.get('engine')!r} is not {ENGINE!r}")

            def dec(v: float | None) -> float:
                return math.nan if v is None else float(v)

            model = treelite.Model.deserialize_bytes((folder / MODEL_FILE).read_bytes())
            return cls(
                task=spec["task"],
                features=[(str(c), str(k)) for c, k in spec["features"]],
                codes={c: {k: dec(v) for k, v in m.items()} for c, m in spec["codes"].items()},
                missing_code={c: dec(v) for c, v in spec["missing_code"].items()},
                unknown_code={c: dec(v) for c, v in spec["unknown_code"].items()},
                model=model,
                conversion_seconds=float(spec.get("conversion_seconds", 0.0)),
                fill={c: float(v) for c, v in spec.get("fill", {}).items()},
            )
        except CompileError:
            raise
        except Exception as exc:
            raise CompileError(
                f"compiled predictor in {folder} is unreadable ({type(exc).__name__}: {exc})"
            ) from exc


def _treelite_version() -> str:
    from importlib.metadata import version

    return version("treelite")


# ---------------------------------------------------------------------- compilation
UNSEEN_PROBE = "\x00unseen level probe\x00"


def _encoder_codes(
    trans: Any, columns: list[str], categorical_out: list[bool]
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, float]]:
    """Each column's value -> code, and the missing and unknown codes, read off the fitted step's own
    ``transform`` (a constant string imputer and infrequent grouping included) on a probe of every
    learned level, a missing value and an unseen one. A code the estimator reads as missing
    (negative, on a native categorical feature) becomes NaN, which the tree ensemble routes the same
    way."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    steps = [s for _, s in trans.steps] if isinstance(trans, Pipeline) else [trans]
    encoder = steps[-1]
    if not isinstance(encoder, OrdinalEncoder):
        raise CompileError(f"categorical step {type(encoder).__name__} has no compiled equivalent")
    for step in steps[:-1]:
        if not (isinstance(step, SimpleImputer) and step.strategy == "constant"):
            raise CompileError(f"categorical step {type(step).__name__} has no compiled equivalent")
    if encoder.handle_unknown != "use_encoded_value":
        raise CompileError("OrdinalEncoder(handle_unknown='error') cannot be compiled (unknowns must encode)")
    cats = [[c for c in col_cats if not _is_missing(c)] for col_cats in encoder.categories_]
    for col, col_cats in zip(columns, cats, strict=True):
        bad = [c for c in col_cats if not isinstance(c, str)]
        if bad:
            raise CompileError(f"categorical column {col!r} has non-string levels {bad[:3]}")
        if not col_cats:
            raise CompileError(f"categorical column {col!r}: the encoder learned no level")
    width = max(len(c) for c in cats)
    probe = pd.DataFrame(
        {
            col: [*c, *[c[0]] * (width - len(c)), None, UNSEEN_PROBE]
            for col, c in zip(columns, cats, strict=True)
        },
        dtype=object,
    )
    encoded = np.asarray(trans.transform(probe), dtype=np.float64)

    def served(code: float, native_categorical: bool) -> float:
        return math.nan if native_categorical and (math.isnan(code) or code < 0) else float(code)

    codes, missing, unknown = {}, {}, {}
    for j, col in enumerate(columns):
        cat = categorical_out[j]
        codes[col] = {level: served(encoded[i, j], cat) for i, level in enumerate(cats[j])}
        missing[col] = served(encoded[width, j], cat)
        unknown[col] = served(encoded[width + 1, j], cat)
    return codes, missing, unknown


def _is_identity(trans: Any) -> bool:
    """``"passthrough"``, which a fitted ColumnTransformer stores as a FunctionTransformer without func."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(trans, str):
        return trans == "passthrough"
    return isinstance(trans, FunctionTransformer) and trans.func is None and trans.inverse_func is None


def _numeric_imputer(trans: Any) -> Any:
    """The fitted numeric SimpleImputer of a ``SimpleImputer`` or one-step ``Pipeline`` step, else None."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if isinstance(trans, Pipeline) and len(trans.steps) == 1:
        trans = trans.steps[0][1]
    if not isinstance(trans, SimpleImputer) or trans.strategy not in ("median", "mean", "constant"):
        return None
    if not (isinstance(trans.missing_values, float) and math.isnan(trans.missing_values)):
        return None
    if trans.add_indicator and getattr(trans.indicator_, "features", None) != "missing-only":
        return None
    return trans


def compile_pipeline(model: Any, task: str) -> CompiledPredictor:
    """Compile a fitted ``Pipeline(ColumnTransformer(passthrough, OrdinalEncoder), tree ensemble)``.

    Raises CompileError naming the step that has no compiled equivalent (the median imputer and
    "__missing__" level of the onehot variant, a linear model, a multi-class classifier...).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    t0 = time.perf_counter()
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise CompileError(f"{type(model).__name__} is not a Pipeline(preprocess, estimator)")
    pre, est = model.steps[0][1], model.steps[-1][1]
    if not isinstance(pre, ColumnTransformer):
        raise CompileError(f"preprocessing step {type(pre).__name__} is not a ColumnTransformer")
    if task == "classification":
        classes = getattr(est, "classes_", None)
        if classes is None or len(classes) != 2:
            raise CompileError("only binary classifiers are compiled (served value: P(positive class))")
    try:
        import treelite.sklearn
    except ImportError as exc:
        raise CompileError(f"treelite is not installed: {exc}") from exc
    is_categorical = getattr(est, "is_categorical_", None)
    features: list[tuple[str, str]] = []
    codes: dict[str, dict[str, float]] = {}
    missing: dict[str, float] = {}
    unknown: dict[str, float] = {}
    fill: dict[str, float] = {}
    for name, trans, cols in pre.transformers_:
        if trans == "drop":
            continue
        cols = [str(c) for c in cols]
        start = len(features)
        if _is_identity(trans):
            features.extend((c, "numeric") for c in cols)
            continue
        imputer = _numeric_imputer(trans)
        if imputer is not None:
            stats = np.asarray(imputer.statistics_, dtype=np.float64)
            if len(stats) != len(cols) or not np.isfinite(stats).all():
                raise CompileError(
                    f"transformer {name!r}: imputer statistics {stats.tolist()} are not finite"
                )
            features.extend((c, "imputed") for c in cols)
            fill.update({c: float(v) for c, v in zip(cols, stats, strict=True)})
            if imputer.add_indicator:
                features.extend((cols[int(i)], "indicator") for i in imputer.indicator_.features_)
            continue
        native = [
            bool(is_categorical[start + k]) if is_categorical is not None else False for k in range(len(cols))
        ]
        try:
            c, m, u = _encoder_codes(trans, cols, native)
        except CompileError as exc:
            raise CompileError(f"transformer {name!r}: {exc}") from exc
        features.extend((col, "categorical") for col in cols)
        codes.update(c)
        missing.update(m)
        unknown.update(u)
    n_in = getattr(est, "n_features_in_", None)
    if n_in != len(features):
        raise CompileError(
            f"the estimator takes {n_in} features, the compiled preprocessing gives {len(features)}"
        )
    try:
        tl_model = treelite.sklearn.import_model(est)
    except Exception as exc:
        raise CompileError(
            f"treelite cannot import {type(est).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    return CompiledPredictor(
        task=task,
        features=features,
        codes=codes,
        missing_code=missing,
        unknown_code=unknown,
        model=tl_model,
        conversion_seconds=time.perf_counter() - t0,
        fill=fill,
    )


# ---------------------------------------------------------------------- parity
def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b|; inf when shapes differ or a value is finite in one and not the other."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    ok = ~np.isnan(a)
    return float(np.max(np.abs(a[ok] - b[ok]), initial=0.0))


def parity(
    compiled: Callable[[pd.DataFrame], np.ndarray],
    original: Callable[[pd.DataFrame], np.ndarray],
    frames: Mapping[str, pd.DataFrame | None],
) -> dict[str, float]:
    """Max abs diff per named frame (a frame that makes either side raise counts as inf)."""
    out: dict[str, float] = {}
    for name, frame in frames.items():
        if frame is None or frame.empty:
            continue
        try:
            out[name] = max_abs_diff(compiled(frame), original(frame))
        except Exception:
            out[name] = math.inf
    return out


def parity_rows(
    holdout: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    rows: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """The rows both sides must agree on: a seeded holdout sample, the holdout's rows with a missing
    value, and one edge copy per feature (numeric NaN; categorical None and an unseen level), so a
    mistranslated missing/unknown code cannot pass unnoticed on data that happens to lack them."""
    if holdout.empty:
        return holdout.copy()
    sample = holdout.sample(n=min(rows, len(holdout)), random_state=seed)
    with_missing = holdout[holdout.isna().any(axis=1)].head(100)
    base = sample.iloc[[0]]
    edges = []
    for col in numeric:
        edges.append(base.assign(**{col: np.nan}))
    for col in categorical:
        edges.append(base.assign(**{col: None}).astype({col: object}))
        edges.append(base.assign(**{col: "__unseen_level__"}))
    out = pd.concat([sample, with_missing, *edges], ignore_index=True)
    for col in categorical:
        out[col] = pd.Series([None if _is_missing(v) else v for v in out[col]], index=out.index, dtype=object)
    return out


def write_parity(folder: Path, record: Mapping[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PARITY_FILE).write_text(
        json.dumps(record, indent=1, sort_keys=True, default=lambda v: None if v != v else str(v))
    )


def read_parity(folder: Path) -> dict[str, Any] | None:
    path = folder / PARITY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_rows(folder: Path) -> pd.DataFrame | None:
    path = folder / ROWS_FILE
    if not path.is_file():
        return None
    frame = pd.read_parquet(path)
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = pd.Series(
                [None if _is_missing(v) else v for v in frame[col]], index=frame.index, dtype=object
            )
    return frame
