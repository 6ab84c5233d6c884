"""Train and gate candidates in memory: the training pipeline's own code, without MLflow.

The replay's backtest (:mod:`pipelines.replay.backtest`) trains a model for every month under
several retrain strategies; logging each one to MLflow and loading it back through pyfunc
would cost more than the fits themselves and leave hundreds of throw-away runs in a registry.
Here the same pieces run in memory: :func:`~pipelines.training.features.build_pipeline` and
:func:`~pipelines.training.features.prepare_xy`, the window strategy's sample weights
(:func:`~pipelines.training.train.fit_model`), and the evaluation gate's own measurements
(slices, behavioural checks) and decision (:func:`pipelines.training.verdict.decide`) over an
evaluation document of the same shape :func:`pipelines.training.evaluate.evaluate_candidate`
writes. What is skipped is what does not change a verdict: artifacts, plots, permutation
importance and the registry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pipelines.config import Settings
from pipelines.training import metrics
from pipelines.training.features import build_pipeline, predict_scores, prepare_xy
from pipelines.training.verdict import Verdict


@dataclass
class FittedModel:
    """A model trained in memory, what it was trained on and what its fit cost."""

    name: str
    model: Any
    train_batches: tuple[str, ...]
    holdout_batch: str
    train_rows: int
    cpu_seconds: float
    holdout_metrics: dict[str, float]


class _ServedScores:
    """``predict`` returns what ``pyfunc.predict`` of the logged model returns (the gate's input)."""

    def __init__(self, model: Any, task: str) -> None:
        self.model, self.task = model, task

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        if self.task == "classification":
            return np.asarray(self.model.predict_proba(x))
        return np.asarray(self.model.predict(x))


def fit_window(
    settings: Settings,
    frames: Mapping[str, pd.DataFrame],
    train_batches: Sequence[str],
    holdout_batch: str,
    name: str = "",
) -> FittedModel:
    """Fit the configured pipeline on ``train_batches`` (landed-schema frames by batch id).

    ``cpu_seconds`` is the process CPU time of the fit alone (``training.threads`` threads):
    what a retrain costs, whatever else the machine is doing.
    """
    from pipelines.training.train import fit_model

    contract, task = settings.dataset, settings.dataset.target.task
    df = pd.concat([frames[b].assign(__batch_id=b) for b in train_batches], ignore_index=True)
    train = prepare_xy(contract, df)
    model = build_pipeline(contract, settings.training)
    row_batches = df.loc[df[contract.target.name].notna(), "__batch_id"]
    with threadpool_limits(limits=settings.training.threads or None):
        t0 = time.process_time()
        fit_model(model, train, settings.training, row_batches)
        cpu = time.process_time() - t0
    holdout = prepare_xy(contract, frames[holdout_batch])
    scores = predict_scores(model, holdout.x, task)
    return FittedModel(
        name=name or f"{train_batches[0]}..{train_batches[-1]}",
        model=model,
        train_batches=tuple(train_batches),
        holdout_batch=holdout_batch,
        train_rows=train.rows,
        cpu_seconds=cpu,
        holdout_metrics=metrics.compute(task, holdout.y.to_numpy(), scores),
    )


def evaluation_document(
    settings: Settings, candidate: FittedModel, champion: FittedModel | None, holdout_df: pd.DataFrame
) -> dict[str, Any]:
    """The evaluation document the gate reads, measured in memory on ``holdout_df``.

    Same fields and the same measuring functions as
    :func:`pipelines.training.evaluate.evaluate_candidate` (predict contract, paired comparison
    with the champion, slices, behavioural checks, latency), without the MLflow round trip.
    """
    from pipelines.training import evaluate

    contract, task = settings.dataset, settings.dataset.target.task
    holdout = prepare_xy(contract, holdout_df)
    labelled = holdout_df[holdout_df[contract.target.name].notna()].reset_index(drop=True)
    y = holdout.y.to_numpy()
    cand_model = _ServedScores(candidate.model, task)
    champ_model = _ServedScores(champion.model, task) if champion is not None else None
    slice_cols = [c for c in contract.slice_columns if c in labelled.columns]
    doc: dict[str, Any] = {
        "run_id": f"in-memory:{candidate.name}",
        "task": task,
        "primary_metric": settings.gate.for_task(task).primary_metric,
        "holdout_batch": candidate.holdout_batch,
        "holdout_rows": int(holdout.rows),
        "champion": None,
    }
    with threadpool_limits(limits=settings.training.threads or None):
        champ = predict_scores(champion.model, holdout.x, task) if champion is not None else None
        if champion is not None and champ is not None:
            doc["champion"] = {"version": champion.name, "metrics": metrics.compute(task, y, champ)}
        try:
            cand = evaluate.checked_score(cand_model, holdout.x, task, "holdout")
        except evaluate.PredictContractError as exc:
            doc.update(
                predict_contract={"passed": False, "stage": exc.stage, "detail": exc.detail},
                candidate={"metrics": {}},
                slices=[],
                behavioural=[],
                latency=None,
            )
            return doc
        if doc["champion"] is not None and champ is not None:
            doc["champion"]["comparison"] = evaluate.compare(
                settings, y, cand, champ, evaluate.BOOTSTRAP_SEED
            )
        doc.update(
            predict_contract={"passed": True, "stage": "holdout", "detail": f"{len(cand)} rows scored"},
            candidate={
                "metrics": metrics.compute(task, y, cand),
                "primary_se": evaluate.primary_se(settings, y, cand),
            },
            slices=evaluate.slice_metrics(settings, labelled[slice_cols], y, cand, champ),
            behavioural=evaluate.run_behavioural(cand_model, holdout.x, settings),
            latency=(
                evaluate.measure_latency(cand_model, champ_model, holdout.x, settings)
                if champ_model is not None
                else None
            ),
        )
    return doc


def gate_models(
    settings: Settings, candidate: FittedModel, champion: FittedModel | None, holdout_df: pd.DataFrame
) -> Verdict:
    """The evaluation gate's verdict on ``candidate`` against ``champion`` on the same holdout."""
    from pipelines.training.verdict import decide

    document = evaluation_document(settings, candidate, champion, holdout_df)
    return decide(document, settings.gate, settings.dataset.target.task)
