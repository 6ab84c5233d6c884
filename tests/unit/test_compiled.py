"""The compiled predictor (issue 16): parity with the pipeline, refusal of what it cannot compile,
and the load-time check that keeps a non-reproducing copy from serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import DatasetContract, TrainingConfig
from pipelines.core import compiled
from pipelines.training.features import build_pipeline, predict_scores

pytestmark = pytest.mark.performance


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """HistGradientBoosting's OpenMP threads spin on a loaded 2-core host (10x slower fits)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _contract(task: str) -> DatasetContract:
    return DatasetContract.model_validate(
        {
            "name": "toy",
            "source": {"path": "toy.csv"},
            "id": {"column": "id"},
            "event_time": "t",
            "target": {"name": "y", "task": task},
            "features": {"numeric": ["a", "b"], "categorical": ["c", "d"]},
            "expectation_suite": "toy.json",
        }
    )


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.uniform(0, 10, size=n)
    c = rng.choice(["x", "y", "z", "w"], size=n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    d = rng.choice([f"L{i}" for i in range(30)], size=n).astype(object)
    a[rng.random(n) < 0.1] = np.nan
    b[rng.random(n) < 0.3] = np.nan
    c[rng.random(n) < 0.05] = None
    x = pd.DataFrame({"a": a, "b": b, "c": c, "d": d})
    effect = np.where(c == "x", 1.0, 0.0) + np.nan_to_num(a) + 0.1 * np.nan_to_num(b, nan=5.0)
    logit = effect - 1 + rng.normal(scale=0.5, size=n)
    return x, (logit > 0).astype(int), effect * 10 + rng.normal(size=n)


def _edge_rows(x: pd.DataFrame) -> pd.DataFrame:
    """Rows with every kind of value the request path can bring: NaN, None, unseen levels."""
    rows = x.head(4).copy()
    rows.loc[rows.index[0], "a"] = np.nan
    rows.loc[rows.index[1], "c"] = None
    rows.loc[rows.index[2], "d"] = "never-seen"
    rows.loc[rows.index[3], ["a", "b", "c", "d"]] = [np.nan, np.nan, None, "also-new"]
    return rows


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_default_pipeline_compiles_and_reproduces_scores_incl_missing_and_unseen(
    task: str, tmp_path: Path
) -> None:
    # max_categories=8 groups the rarer levels of d: the compiled codes must group them too.
    cfg = TrainingConfig(estimator_params={"max_iter": 40}, max_categories=8, seed=3)
    x, y_clf, y_reg = _frame(3000, 0)
    model = build_pipeline(_contract(task), cfg).fit(x, y_clf if task == "classification" else y_reg)
    predictor = compiled.compile_pipeline(model, task)
    predictor.save(tmp_path)
    loaded = compiled.CompiledPredictor.load(tmp_path)

    holdout, _, _ = _frame(500, 1)
    probe = pd.concat([holdout, _edge_rows(holdout)], ignore_index=True)
    reference = predict_scores(model, probe, task)
    for p in (predictor, loaded):
        diff = compiled.max_abs_diff(p.predict(probe), reference)
        assert diff <= compiled.PARITY_ATOL, diff
    # The edge rows really take the missing/unknown branches (not all one code).
    assert not np.allclose(reference[-4:], reference[-4])
    assert loaded.predict(probe.head(0)).shape == (0,)


def test_imputer_free_variant_compiles_too() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    x, y, _ = _frame(2000, 2)
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    pre = ColumnTransformer([("num", "passthrough", ["a", "b"]), ("cat", enc, ["c", "d"])])
    est = HistGradientBoostingClassifier(max_iter=30, categorical_features=[2, 3], random_state=0)
    model = Pipeline([("preprocess", pre), ("model", est)]).fit(x, y)
    predictor = compiled.compile_pipeline(model, "classification")
    probe = pd.concat([x.head(200), _edge_rows(x)], ignore_index=True)
    assert compiled.max_abs_diff(predictor.predict(probe), model.predict_proba(probe)[:, 1]) <= 1e-6


def test_a_pipeline_without_a_compiled_equivalent_is_refused_with_the_step_named() -> None:
    cfg = TrainingConfig(
        estimator="sklearn.linear_model.LogisticRegression",
        categorical_encoding="onehot",
        estimator_params={"max_iter": 200},
    )
    x, y, _ = _frame(500, 4)
    model = build_pipeline(_contract("classification"), cfg).fit(x, y)
    with pytest.raises(compiled.CompileError, match=r"transformer 'num'|has no compiled equivalent"):
        compiled.compile_pipeline(model, "classification")


def test_load_without_artefact_names_the_training_reason(tmp_path: Path) -> None:
    with pytest.raises(compiled.CompileError, match="logged before compiled serving existed"):
        compiled.CompiledPredictor.load(tmp_path)
    compiled.write_parity(tmp_path, {"compiled": False, "reason": "not compiled: LogisticRegression"})
    with pytest.raises(compiled.CompileError, match="training recorded: not compiled: LogisticRegression"):
        compiled.CompiledPredictor.load(tmp_path)


def test_max_abs_diff_fails_closed() -> None:
    assert compiled.max_abs_diff(np.array([0.1, 0.2]), np.array([0.1, 0.2 + 1e-9])) < 1e-8
    assert compiled.max_abs_diff(np.array([0.1]), np.array([0.1, 0.2])) == float("inf")
    assert compiled.max_abs_diff(np.array([np.nan]), np.array([0.3])) == float("inf")


def _served(model: Any, x: pd.DataFrame) -> Any:
    from pipelines.serving.models import ServedModel

    served = ServedModel(
        name="toy", version="1", task="classification", columns=[], model=model, example=x.head(5)
    )
    return served


def test_gateway_serves_the_compiled_copy_only_when_it_reproduces_the_pipeline(settings: Any) -> None:
    from pipelines.serving.models import _use_compiled

    x, y, _ = _frame(2000, 5)
    model = build_pipeline(_contract("classification"), TrainingConfig(estimator_params={"max_iter": 30}))
    model.fit(x, y)
    rows = compiled.parity_rows(x.tail(300), ["a", "b"], ["c", "d"])

    good = _served(model, x)
    _use_compiled(settings, good, model, compiled.compile_pipeline(model, "classification"), rows, "")
    info = good.describe()
    assert info["predictor"] == compiled.ENGINE and info["predictor_reason"] is None
    assert info["parity_max_abs_diff"] <= compiled.PARITY_ATOL
    probe = _edge_rows(x)
    assert compiled.max_abs_diff(good.predict(probe), model.predict_proba(probe)[:, 1]) <= 1e-6

    # A copy whose codes were swapped (a tampered or mis-built artefact) must not serve.
    bad_predictor = compiled.compile_pipeline(model, "classification")
    codes = bad_predictor.codes["c"]
    codes["x"], codes["y"] = codes["y"], codes["x"]
    bad = _served(model, x)
    _use_compiled(settings, bad, model, bad_predictor, rows, "")
    info = bad.describe()
    assert info["predictor"] == "sklearn" and bad.compiled is None
    assert "does not reproduce the pipeline" in info["predictor_reason"]
    assert info["parity_max_abs_diff"] > compiled.PARITY_ATOL

    off = _served(model, x)
    no = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"compiled_predictor": False})}
    )
    _use_compiled(no, off, model, compiled.compile_pipeline(model, "classification"), rows, "")
    assert off.describe()["predictor_reason"] == "disabled by serving.compiled_predictor"


def test_a_compiled_copy_that_raises_at_request_time_leaves_the_answer_to_the_pipeline(settings: Any) -> None:
    import json

    from pipelines.serving.models import _use_compiled

    x, y, _ = _frame(1000, 6)
    model = build_pipeline(_contract("classification"), TrainingConfig(estimator_params={"max_iter": 20}))
    model.fit(x, y)
    served = _served(model, x)
    _use_compiled(settings, served, model, compiled.compile_pipeline(model, "classification"), None, "")
    assert served.predictor == compiled.ENGINE
    served.compiled.features.append(("no_such_column", "numeric"))  # breaks every call
    probe = x.head(7)
    assert compiled.max_abs_diff(served.predict(probe), model.predict_proba(probe)[:, 1]) == 0.0

    # a parity frame that raised is inf internally, null in /version's JSON
    served.parity = {"input_example": float("inf")}
    info = served.describe()
    assert info["parity_max_abs_diff"] is None and info["parity"] == {"input_example": None}
    json.dumps(info, allow_nan=False)
