"""Models for the serving and canary tests: small real ones, and deliberately bad canaries.

The good models are the team's model contract (a scikit-learn ``Pipeline`` over the
contract's raw features, built by ``pipelines.training.features``), logged with
``mlflow.sklearn.log_model`` like training logs them. The bad canaries are real
scikit-learn pipelines too:

* ``raising``: a ``FunctionTransformer`` step that raises on every call;
* ``slow``: a ``FunctionTransformer`` step that sleeps before passing rows on;
* ``broken``: an estimator whose unpickling raises (it cannot be loaded);
* ``shuffled``: a genuine model trained on shuffled labels (much worse predictions).

Fault models are logged with cloudpickle *by value* (``register_pickle_by_value``),
so a gateway subprocess or container loads them without importing this module.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer


def raise_always(x: Any) -> Any:
    raise RuntimeError("canary fault: this model raises on every request")


def sleep_then_pass(x: Any, seconds: float = 0.2) -> Any:
    time.sleep(seconds)
    return x


class BrokenOnLoad(ClassifierMixin, BaseEstimator):
    """Predicts fine in the process that built it; raises when unpickled anywhere."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def fit(self, x: Any, y: Any) -> BrokenOnLoad:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: Any) -> Any:
        return self.inner.predict_proba(x)

    def predict(self, x: Any) -> Any:
        return self.inner.predict(x)

    def __setstate__(self, state: dict[str, Any]) -> None:
        raise RuntimeError("canary fault: this model's artifact cannot be loaded")


def train_pipeline(
    settings: Any, frame: pd.DataFrame, *, shuffle_labels: bool = False, seed: int = 0, max_rows: int = 15000
) -> tuple[Any, pd.DataFrame]:
    """A logistic-regression Pipeline over the contract's features (fast to fit); returns (model, x)."""
    from pipelines.training.features import build_pipeline, coerce_features

    contract = settings.dataset
    labelled = frame[frame[contract.target.name].notna()]
    if len(labelled) > max_rows:
        labelled = labelled.sample(max_rows, random_state=seed)
    x = coerce_features(contract, labelled).reset_index(drop=True)
    y = labelled[contract.target.name].astype("int64").to_numpy()
    if shuffle_labels:
        y = np.random.default_rng(seed).permutation(y)
    cfg = settings.training.model_copy(
        update={
            "estimator": "sklearn.linear_model.LogisticRegression",
            "estimator_params": {"max_iter": 300, "C": 0.5},
            "categorical_encoding": "onehot",
        }
    )
    model = build_pipeline(contract, cfg)
    model.fit(x, y)
    return model, x


def fault_pipeline(kind: str, base: Any, x: pd.DataFrame, slow_seconds: float = 0.2) -> Any:
    """Wrap a fitted model into one of the bad canaries (no refit)."""
    if kind == "raising":
        step: Any = FunctionTransformer(raise_always)
    elif kind == "slow":
        step = FunctionTransformer(sleep_then_pass, kw_args={"seconds": slow_seconds})
    elif kind == "broken":
        est = BrokenOnLoad(inner=base).fit(x, None)
        return est
    else:
        raise ValueError(kind)
    step.fit(x.head(5))
    pipe = Pipeline([("fault", step), ("model", base)])
    return pipe


def log_and_register(
    settings: Any,
    model: Any,
    x: pd.DataFrame,
    *,
    description: str,
    by_value: bool = False,
    alias: str | None = None,
) -> str:
    """Log like training does (signature, example, pinned requirements) and register; returns the version."""
    import cloudpickle
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from pipelines.training.tracking import configure_tracking
    from pipelines.training.train import pip_requirements
    from support import canary_faults

    configure_tracking(settings)  # artifacts under paths.root, never ./mlruns
    example = x.head(5)
    if by_value:
        cloudpickle.register_pickle_by_value(canary_faults)
        signature = infer_signature(x, np.zeros((len(x), 2)))
        kwargs: dict[str, Any] = {"serialization_format": "cloudpickle"}
    else:
        signature = infer_signature(x, model.predict_proba(example))
        kwargs = {"serialization_format": settings.mlflow.serialization, "input_example": example}
        if settings.mlflow.serialization == "skops":
            import skops.io

            kwargs["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    try:
        with mlflow.start_run(run_name=description):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                pip_requirements=pip_requirements(),
                pyfunc_predict_fn="predict_proba",
                **kwargs,
            )
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(canary_faults)
    mv = mlflow.register_model(info.model_uri, settings.mlflow.registered_model)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    client.set_model_version_tag(
        settings.mlflow.registered_model, mv.version, "test.description", description
    )
    if alias:
        client.set_registered_model_alias(settings.mlflow.registered_model, alias, mv.version)
    return str(mv.version)
