"""Training building blocks (issue 3): pipeline factory, input types, window policy. No MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import TrainingConfig, load_settings
from pipelines.data.validated import MARKER, validated_dir
from pipelines.training.errors import TrainingConfigError, TrainingDataError, WindowError
from pipelines.training.features import build_pipeline, coerce_features, predict_scores, prepare_xy
from pipelines.training.window import data_fingerprint, resolve_window

REPO = Path(__file__).resolve().parents[2]
SECOND = REPO / "tests" / "data" / "second_dataset" / "pipeline.yaml"


def _frame(contract, n: int = 400, seed: int = 0) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Synthetic rows in the landed schema of ``contract``; the label depends on the first numeric."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({contract.id.column: [f"id{i}" for i in range(n)], contract.event_time: "2013-01-01"})
    for i, col in enumerate(contract.features.numeric):
        df[col] = rng.normal(size=n) if i else rng.integers(0, 100, size=n)  # first one int-typed
    for col in contract.features.categorical:
        df[col] = rng.choice(["a", "b", "c", None], size=n)
    signal = df[contract.features.numeric[0]].to_numpy() / 100.0
    if contract.target.task == "classification":
        df[contract.target.name] = (signal + rng.normal(scale=0.3, size=n) > 0.5).astype(float)
    else:
        df[contract.target.name] = 100 * signal + rng.normal(size=n)
    return df


def _publish(settings, batch_id: str, df: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    """Write a batch straight into the validated store (layout of pipelines.data.validated)."""
    folder = validated_dir(settings, batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    df.to_parquet(folder / "accepted.parquet", index=False)
    marker = {
        "dataset": settings.dataset.name,
        "batch_id": batch_id,
        "uri": f"file://{folder / 'accepted.parquet'}",
        "rows": len(df),
        "source_sha256": "test",
        "status": "passed",
    }
    (folder / MARKER).write_text(json.dumps(marker))


# --------------------------------------------------------------------------- pipeline factory
def test_pipeline_trains_from_the_contract_and_handles_unseen_and_missing_categories(settings) -> None:
    contract = settings.dataset
    data = prepare_xy(contract, _frame(contract))
    model = build_pipeline(contract, TrainingConfig(estimator_params={"max_iter": 20}))
    model.fit(data.x, data.y)
    assert list(model.feature_names_in_) == contract.features.all
    # native categorical splits on the ordinal codes (found by name, not by position)
    assert model.named_steps["model"].categorical_features == contract.features.categorical
    unseen = data.x.head(5).copy()
    unseen[contract.features.categorical[0]] = ["zzz", None, "a", "never", None]
    p = predict_scores(model, unseen, "classification")
    assert p.shape == (5,)
    assert np.all((p >= 0) & (p <= 1))


def test_pipeline_is_seeded(settings) -> None:
    contract = settings.dataset
    data = prepare_xy(contract, _frame(contract))
    cfg = TrainingConfig(estimator_params={"max_iter": 15, "early_stopping": True}, seed=7)
    p1 = predict_scores(build_pipeline(contract, cfg).fit(data.x, data.y), data.x, "classification")
    p2 = predict_scores(build_pipeline(contract, cfg).fit(data.x, data.y), data.x, "classification")
    assert np.array_equal(p1, p2)
    assert build_pipeline(contract, cfg).named_steps["model"].random_state == 7


def test_onehot_encoding_with_a_linear_model(settings) -> None:
    contract = settings.dataset
    data = prepare_xy(contract, _frame(contract))
    cfg = TrainingConfig(
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 500},
        categorical_encoding="onehot",
    )
    model = build_pipeline(contract, cfg).fit(data.x, data.y)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(data.y, predict_scores(model, data.x, "classification")) > 0.7


def test_regression_contract_gets_a_regressor_and_a_wrong_kind_is_refused() -> None:
    second = load_settings(SECOND)
    contract = second.dataset
    assert contract.target.task == "regression"
    data = prepare_xy(contract, _frame(contract))
    fast = second.training.model_copy(update={"estimator_params": {"max_iter": 20}})
    model = build_pipeline(contract, fast).fit(data.x, data.y)
    assert type(model.named_steps["model"]).__name__ == "HistGradientBoostingRegressor"
    assert predict_scores(model, data.x, "regression").dtype == np.float64
    wrong = second.training.model_copy(
        update={"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}
    )
    with pytest.raises(TrainingConfigError, match="not a regression estimator"):
        build_pipeline(contract, wrong)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (TrainingConfig(estimator="sklearn.ensemble.NoSuchModel"), "cannot be imported"),
        (TrainingConfig(estimator="HistGradientBoostingClassifier"), "dotted path"),
        (TrainingConfig(estimator_params={"not_a_param": 1}), "do not fit"),
    ],
)
def test_bad_estimator_config_is_refused_with_the_reason(settings, cfg: TrainingConfig, message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message):
        build_pipeline(settings.dataset, cfg)


# --------------------------------------------------------------------------- input types
def test_coerce_features_gives_signature_dtypes(settings) -> None:
    contract = settings.dataset
    df = _frame(contract, n=6)
    df[contract.features.categorical[0]] = [1.0, 2.0, None, 1.0, 2.0, 2.0]  # numeric-looking levels
    out = coerce_features(contract, df)
    assert list(out.columns) == contract.features.all
    assert all(out[c].dtype == np.float64 for c in contract.features.numeric)
    assert out[contract.features.categorical[0]].tolist() == ["1", "2", None, "1", "2", "2"]
    bad = df.assign(**{contract.features.numeric[0]: "late"})
    with pytest.raises(TrainingDataError, match=contract.features.numeric[0]):
        coerce_features(contract, bad)
    with pytest.raises(TrainingDataError, match="lacks"):
        coerce_features(contract, df.drop(columns=contract.features.categorical[0]))


def test_rows_without_label_are_dropped_and_counted(settings) -> None:
    contract = settings.dataset
    df = _frame(contract, n=50)
    df.loc[:9, contract.target.name] = None
    data = prepare_xy(contract, df)
    assert data.rows == 40
    assert data.dropped_null_target == 10
    assert set(data.y.unique()) <= {0, 1}


def test_fingerprint_changes_with_content_only(settings) -> None:
    contract = settings.dataset
    df = _frame(contract, n=30)
    cols = contract.landed_columns
    assert data_fingerprint(df, cols) == data_fingerprint(df.copy(), cols)
    changed = df.copy()
    changed.loc[3, contract.target.name] = 1 - changed.loc[3, contract.target.name]
    assert data_fingerprint(df, cols) != data_fingerprint(changed, cols)


# --------------------------------------------------------------------------- window policy
@pytest.fixture
def six_batches(isolated_settings):  # type: ignore[no-untyped-def]
    for i, b in enumerate(["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]):
        _publish(isolated_settings, b, _frame(isolated_settings.dataset, n=20, seed=i))
    return isolated_settings


@pytest.mark.parametrize(
    ("window", "holdout", "train", "held"),
    [
        # default (training.window_strategy expanding): every batch before the newest
        (None, None, ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05"], "2013-06"),
        (2, None, ["2013-04", "2013-05"], "2013-06"),
        ("2", "2013-04", ["2013-02", "2013-03"], "2013-04"),
        (["2013-01", "2013-02", "2013-03"], None, ["2013-01", "2013-02", "2013-03"], "2013-06"),
        ("2013-02,2013-01", "2013-03", ["2013-01", "2013-02"], "2013-03"),
        ("", None, ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05"], "2013-06"),
    ],
)
def test_window_policy(six_batches, window, holdout, train, held) -> None:  # type: ignore[no-untyped-def]
    w = resolve_window(six_batches, window, holdout)
    assert list(w.train_batches) == train
    assert w.holdout_batch == held


@pytest.mark.parametrize(
    ("window", "holdout", "message"),
    [
        ([], None, "empty"),
        (6, None, "window too small: 6 training batches requested before holdout 2013-06, only 5"),
        (3, "2013-02", "only 1 published"),
        (["2013-01", "2013-09"], None, r"\['2013-09'\] are not published"),
        (["2013-01", "2013-02"], "2013-02", "also a training batch"),
        (["2013-03"], "2013-02", "must be newer"),
        (2, "2014-01", "holdout batch '2014-01' is not published"),
        (
            ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"],
            None,
            "no published batch",
        ),
    ],
)
def test_bad_windows_are_refused_naming_the_batches(six_batches, window, holdout, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WindowError, match=message):
        resolve_window(six_batches, window, holdout)


def test_empty_store_is_an_empty_window(isolated_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WindowError, match="no published batches"):
        resolve_window(isolated_settings)
