"""How a candidate model is trained (section ``training``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pipelines.config.base import Section


class TrainingConfig(Section):
    # FIXME::TEMPLATE: swap the model here (any scikit-learn estimator class, by dotted path).
    estimator: str | None = Field(
        default=None,
        description="Dotted path of a scikit-learn estimator class. Empty: "
        "HistGradientBoostingClassifier or ...Regressor, following dataset.target.task.",
    )
    estimator_params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the estimator (seed added if accepted)."
    )
    window_batches: int = Field(
        default=3,
        ge=1,
        description="sliding: train on the last N validated batches before the holdout; expanding "
        "and recency_weighted: at least N (all published batches before the holdout).",
    )
    # Chosen with the replay's backtest (python -m pipelines.replay.backtest, issue 12), flights
    # May-Dec 2013, AUC gain of the monitoring policy over never retraining: sliding-3 -0.014 mean,
    # -0.129 in December (a model trained on Jul-Sep has never seen winter); expanding +0.010 mean,
    # worst month -0.002, 1 retrain; recency_weighted (half-life 3) no better than expanding.
    window_strategy: Literal["sliding", "expanding", "recency_weighted"] = Field(
        default="expanding",
        description="Which published batches before the holdout a default window trains on. sliding: "
        "the last window_batches; expanding: all of them (window_batches is the minimum to start); "
        "recency_weighted: all of them, each row weighted 0.5 ** (age in batches / recency_half_life). "
        "Chosen with the replay's backtest (python -m pipelines.replay.backtest).",
    )
    recency_half_life: float = Field(
        default=3.0,
        gt=0,
        description="recency_weighted: a batch this many batches older than the newest training batch "
        "weighs half as much.",
    )
    min_rows: int = Field(default=1000, ge=1, description="Fewer labelled training rows: refuse.")
    min_class_rows: int = Field(
        default=50,
        ge=1,
        description="Classification: each class needs this many training rows (single class: refuse).",
    )
    min_holdout_rows: int = Field(
        default=300,
        ge=1,
        description="Fewer labelled holdout rows: refuse (the gate's paired comparisons with the "
        "champion cannot tell models apart on less).",
    )
    seed: int = 42
    categorical_encoding: Literal["ordinal", "onehot"] = Field(
        default="ordinal",
        description="ordinal: native categorical splits when the estimator supports them "
        "(HistGradientBoosting*); onehot: for linear models.",
    )
    max_categories: int = Field(
        default=200,
        ge=2,
        le=254,
        description="Per categorical column; rarer levels are grouped (HistGradientBoosting "
        "caps native categories at 255 bins).",
    )
    retrain_on_every_batch: bool = Field(
        default=False,
        description="Asset-triggered runs train on every validated batch. Off: only to bootstrap "
        "(no champion and no challenger yet); monitoring or a person asks for the others.",
    )
    importance_rows: int = Field(
        default=2000, ge=100, description="Holdout rows sampled for permutation importance."
    )
    importance_repeats: int = Field(default=3, ge=1)
    threads: int = Field(
        default=1,
        ge=0,
        description="OpenMP/BLAS threads while fitting and scoring (0 = all cores). On a shared "
        "host, more threads than free cores makes OpenMP spin: a 3-month fit took 5 s on 1 thread "
        "and 14-52 s on 2 under load.",
    )
