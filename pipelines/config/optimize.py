"""Tuning, model choice, capacity and cost (section ``optimize``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipelines.config.base import Section


class SearchDim(Section):
    """One tuned hyperparameter: an int/float range (optionally log-scaled) or a list of choices."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> SearchDim:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search dimension needs choices")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} search dimension needs low < high")
        return self


def _default_search_space() -> dict[str, SearchDim]:
    # Parameters shared by HistGradientBoostingClassifier and ...Regressor (the default estimator
    # for both tasks); a different training.estimator needs its own space.
    return {
        "learning_rate": SearchDim(type="float", low=0.02, high=0.3, log=True),
        "max_leaf_nodes": SearchDim(type="int", low=15, high=127, log=True),
        "min_samples_leaf": SearchDim(type="int", low=10, high=200, log=True),
        "l2_regularization": SearchDim(type="float", low=1e-4, high=10.0, log=True),
    }


class ModelFamily(Section):
    """A candidate model family for the latency/cost-aware model choice."""

    name: str
    task: Literal["classification", "regression"] = Field(
        description="Families whose task differs from dataset.target.task are not evaluated."
    )
    estimator: str = Field(description="Dotted path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)
    categorical_encoding: Literal["ordinal", "onehot"] | None = Field(
        default=None, description="Overrides training.categorical_encoding (linear models want onehot)."
    )


def _default_families() -> list[ModelFamily]:
    clf, reg = "classification", "regression"
    return [
        ModelFamily(
            name="hist_gradient_boosting",
            task=clf,
            estimator="sklearn.ensemble.HistGradientBoostingClassifier",
            params={"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31},
        ),
        ModelFamily(
            name="logistic_regression",
            task=clf,
            estimator="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 1000},
            categorical_encoding="onehot",
        ),
        ModelFamily(
            name="random_forest_small",
            task=clf,
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_estimators": 50, "max_depth": 12, "min_samples_leaf": 20, "n_jobs": 1},
        ),
        ModelFamily(
            name="hist_gradient_boosting",
            task=reg,
            estimator="sklearn.ensemble.HistGradientBoostingRegressor",
            params={"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31},
        ),
        ModelFamily(
            name="ridge",
            task=reg,
            estimator="sklearn.linear_model.Ridge",
            params={},
            categorical_encoding="onehot",
        ),
        ModelFamily(
            name="random_forest_small",
            task=reg,
            estimator="sklearn.ensemble.RandomForestRegressor",
            params={"n_estimators": 50, "max_depth": 12, "min_samples_leaf": 20, "n_jobs": 1},
        ),
    ]


class ModelChoiceConfig(Section):
    """Which families compete and the policy that picks one (see pipelines/optimize/pareto.py)."""

    # FIXME::TEMPLATE: the model families to compare for your dataset.
    families: list[ModelFamily] = Field(default_factory=_default_families)
    policy: Literal["best_quality_within_latency_budget", "fastest_within_quality_tolerance"] = (
        "best_quality_within_latency_budget"
    )
    latency_budget_ms: float = Field(
        default=50.0, gt=0, description="p99 single-row latency budget through the serving code path."
    )
    quality_tolerance: float = Field(
        default=0.005, ge=0, description="fastest_within_quality_tolerance: allowed quality shortfall."
    )
    latency_requests: int = Field(default=300, ge=20, description="Timed single-row requests per family.")
    warmup_requests: int = Field(default=20, ge=0, description="Untimed requests first (caches, lazy init).")


class CapacityConfig(Section):
    """Forecast of the hourly request rate and the replica recommendation."""

    season_hours: int = Field(default=168, ge=2, description="Seasonal period (168 = weekly, incl. daily).")
    horizon_hours: int = Field(default=168, ge=1, description="How far ahead the plan looks.")
    holdout_hours: int = Field(default=168, ge=1, description="Back-test window (the last hours seen).")
    max_gap_hours: int = Field(
        default=12,
        ge=1,
        description="A longer stretch without any request means the log does not cover it (e.g. a "
        "replay that skipped days): only the newest stretch without such a gap is forecast.",
    )
    tie_tolerance: float = Field(
        default=0.05,
        ge=0,
        description="Holt-Winters counts as tying the naive seasonal baseline when its holdout MAE is "
        "within this relative margin; beyond it the baseline drives the plan.",
    )
    headroom: float = Field(
        default=0.5, ge=0, description="Capacity above the forecast peak (bursts, forecast error)."
    )
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=8, ge=1)
    load_test_seconds: float = Field(default=5.0, gt=0, le=120, description="Bounded load-test duration.")
    load_test_concurrency: int = Field(default=4, ge=1, le=64)
    load_test_port: int = Field(default=18471, ge=1024, le=65535, description="127.0.0.1 port used.")
    compose_project: str = Field(default="mlops", description="docker-compose project of the stack.")
    compose_service: str = Field(default="gateway", description="Service scaled by `apply`.")
    docker_base_url: str | None = Field(
        default=None, description="Docker engine URL; empty = the environment (DOCKER_HOST / socket)."
    )


class CostConfig(Section):
    country_iso_code: str = Field(
        default="USA", min_length=3, max_length=3, description="Carbon intensity used by CodeCarbon."
    )
    predictions: int = Field(
        default=1000, ge=100, description="Single-row predictions measured per model version."
    )


class OptimizeConfig(Section):
    tuning_budget_seconds: float = Field(
        default=120, ge=0, description="Optuna wall-clock budget (timeout=); 0 skips tuning."
    )
    tuning_max_trials: int = Field(default=30, ge=1, description="Upper bound on trials within the budget.")
    # FIXME::TEMPLATE: the search space belongs to training.estimator.
    tuning_search_space: dict[str, SearchDim] = Field(default_factory=_default_search_space)
    threads: int = Field(
        default=1,
        ge=1,
        description="OpenMP/BLAS threads for the fits and predictions these steps time (threadpoolctl). "
        "More threads than free cores makes OpenMP spin: measured 75 s instead of 7 s for one fit on a "
        "busy 2-core host.",
    )
    model_choice: ModelChoiceConfig = Field(default_factory=ModelChoiceConfig)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    airflow_db_url: str = Field(
        default="",
        description="Airflow metadata DB read by the scorecard (DAG runs, read-only). Empty: "
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, else <paths.root>/airflow/airflow.db when it exists.",
    )
