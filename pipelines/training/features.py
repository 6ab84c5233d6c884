"""The model's input, built only from the dataset contract's feature roles.

Column names come from ``settings.dataset`` and the estimator from
``settings.training``, so the same factory trains a flight-delay classifier or a
regression on another table. Preprocessing lives *inside* the scikit-learn
``Pipeline``: the registered model takes the contract's raw feature columns, and
serving never re-implements a transformation (no training/serving skew).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipelines.config import DatasetContract, TrainingConfig
from pipelines.training.errors import TrainingConfigError, TrainingDataError

DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
MISSING_CATEGORY = "__missing__"


@dataclass
class PreparedData:
    """Features and label of labelled rows; ``dropped_null_target`` counts the unlabelled ones."""

    x: pd.DataFrame
    y: pd.Series
    dropped_null_target: int

    @property
    def rows(self) -> int:
        return len(self.x)


def _as_category(s: pd.Series) -> pd.Series:
    """Categorical values as Python strings (missing = None), whatever dtype the file gave.

    Integral floats become "2", not "2.0", so a level is spelled the same whether a
    batch arrived with missing values (float column) or without (int column).
    """
    if pd.api.types.is_float_dtype(s):
        present = s.dropna()
        if (present == np.floor(present)).all():
            s = s.astype("Int64")
    out = s.astype("string").astype(object)
    out[s.isna()] = None
    return out


def coerce_features(contract: DatasetContract, df: pd.DataFrame) -> pd.DataFrame:
    """The contract's feature columns, numeric as float64 and categorical as str/None.

    These are the dtypes of the model signature: MLflow refuses to convert int64 to
    double at predict time, so callers (serving, evaluation) pass frames through
    here first. A value that is not numeric in a numeric column raises.
    """
    missing = [c for c in contract.features.all if c not in df.columns]
    if missing:
        raise TrainingDataError(f"frame lacks the contract's feature columns {missing}")
    out = pd.DataFrame(index=df.index)
    for col in contract.features.numeric:
        try:
            out[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise TrainingDataError(f"numeric feature {col!r} holds non-numeric values: {exc}") from exc
    for col in contract.features.categorical:
        out[col] = _as_category(df[col])
    return out


def prepare_xy(contract: DatasetContract, df: pd.DataFrame) -> PreparedData:
    """Features and label of the rows whose label is known.

    An unknown label (e.g. a cancelled flight) is not a negative example: such rows
    are dropped here and counted, never imputed.
    """
    target = contract.target.name
    if target not in df.columns:
        raise TrainingDataError(f"frame lacks the target column {target!r}")
    labelled = df[df[target].notna()]
    x = coerce_features(contract, labelled).reset_index(drop=True)
    y = pd.to_numeric(labelled[target], errors="raise").reset_index(drop=True)
    if contract.target.task == "classification":
        y = y.astype("int64")
    else:
        y = y.astype("float64")
    return PreparedData(x=x, y=y, dropped_null_target=len(df) - len(labelled))


def _import_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise TrainingConfigError(f"training.estimator {path!r} is not a dotted path (module.Class)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise TrainingConfigError(f"training.estimator {path!r} cannot be imported: {exc}") from exc
    if not isinstance(cls, type):
        raise TrainingConfigError(f"training.estimator {path!r} is not a class")
    return cls


def make_estimator(contract: DatasetContract, cfg: TrainingConfig) -> BaseEstimator:
    """The configured estimator, seeded, checked against the contract's task."""
    task = contract.target.task
    path = cfg.estimator or DEFAULT_ESTIMATORS[task]
    cls = _import_class(path)
    params: dict[str, Any] = dict(cfg.estimator_params)
    try:
        est = cls(**params)
    except TypeError as exc:
        raise TrainingConfigError(f"training.estimator_params do not fit {path}: {exc}") from exc
    kind_ok = is_classifier(est) if task == "classification" else is_regressor(est)
    if not kind_ok:
        raise TrainingConfigError(
            f"training.estimator {path} is not a {task} estimator but dataset.target.task is "
            f"{task!r}; set training.estimator (or leave it empty for {DEFAULT_ESTIMATORS[task]})"
        )
    available = est.get_params(deep=False)
    if "random_state" in available and "random_state" not in params:
        est.set_params(random_state=cfg.seed)
    if (
        cfg.categorical_encoding == "ordinal"
        and contract.features.categorical
        and "categorical_features" in available
        and "categorical_features" not in params
    ):
        # Native categorical splits on the ordinal codes (columns found by name).
        est.set_params(categorical_features=list(contract.features.categorical))
    assert isinstance(est, BaseEstimator)
    return est


def make_preprocessor(contract: DatasetContract, cfg: TrainingConfig) -> ColumnTransformer:
    """Impute numerics (with missingness indicators), encode categoricals with unknowns allowed."""
    numeric_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True))
    ]
    if cfg.categorical_encoding == "onehot":
        numeric_steps.append(("scale", StandardScaler()))
        encoder: Any = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=cfg.max_categories,
            sparse_output=False,
        )
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,  # HistGradientBoosting reads negative codes as missing
            encoded_missing_value=-1,
            max_categories=cfg.max_categories,
        )
    transformers: list[tuple[str, Any, list[str]]] = []
    if contract.features.numeric:
        transformers.append(("num", Pipeline(numeric_steps), list(contract.features.numeric)))
    if contract.features.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                ("encode", encoder),
            ]
        )
        transformers.append(("cat", categorical, list(contract.features.categorical)))
    if not transformers:
        raise TrainingConfigError("dataset.features lists no numeric and no categorical column")
    ct = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    ct.set_output(transform="pandas")
    return ct


def build_pipeline(contract: DatasetContract, cfg: TrainingConfig) -> Pipeline:
    """An unfitted ``Pipeline(preprocess, model)`` for the contract; seeded from ``cfg.seed``."""
    return Pipeline(
        [("preprocess", make_preprocessor(contract, cfg)), ("model", make_estimator(contract, cfg))]
    )


def predict_scores(model: Any, x: pd.DataFrame, task: str) -> np.ndarray:
    """The served prediction: P(positive class) for classification, the value for regression."""
    if task == "classification":
        return np.asarray(model.predict_proba(x))[:, 1].astype("float64")
    return np.asarray(model.predict(x), dtype="float64").ravel()


def scores_from_pyfunc(output: Any, task: str) -> np.ndarray:
    """P(positive) / value from ``pyfunc.predict`` (classifiers are logged with predict_proba)."""
    arr = np.asarray(output, dtype="float64")
    if task == "classification":
        return arr[:, 1] if arr.ndim == 2 else arr
    return arr.ravel()
