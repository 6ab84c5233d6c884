"""What tuning and model choice share: their MLflow experiment, their rows, their report folder.

* **Beside, not inside, training's experiment** (``<experiment>-optimize``): a study's trials
  are not candidates, and the training experiment's runs stay one per candidate.
* **Never the gate's holdout.** Trials and families are fitted and scored inside the training
  window (:func:`inner_split`): a configuration picked on the gate's own data would arrive at
  the gate with an optimistic score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.registry import client_for
from pipelines.optimize.errors import TuningError


def optimize_experiment(settings: Settings) -> str:
    """Tuning and model-choice runs live beside, not inside, the training experiment."""
    from pipelines.training import artifact_root, configure_tracking

    configure_tracking(settings)
    client = client_for(settings)
    name = f"{settings.mlflow.experiment}-optimize"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_root(settings)))
    except Exception:  # created concurrently
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def inner_split(settings: Settings, train_batches: tuple[str, ...]) -> tuple[Any, Any, str]:
    """Trial training and validation rows, both from the training window, in time order."""
    from pipelines.training import load_window, prepare_xy

    contract = settings.dataset
    df = load_window(settings, train_batches)
    if df.empty:
        raise TuningError(f"training window {list(train_batches)} has no rows")
    if len(train_batches) >= 2:
        valid_mask = df["__batch_id"] == train_batches[-1]
        how = f"trials fit on {list(train_batches[:-1])}, scored on {train_batches[-1]}"
    else:
        # One batch: the latest 20 % by event time validates (never a random split of the future).
        t = pd.to_datetime(df[contract.event_time], utc=True, format="ISO8601")
        cut = pd.Timestamp(t.quantile(0.8))
        valid_mask = t > cut
        how = f"trials fit on {train_batches[0]} up to {cut.isoformat()}, scored on the rest"
    train = prepare_xy(contract, df[~valid_mask].drop(columns="__batch_id"))
    valid = prepare_xy(contract, df[valid_mask].drop(columns="__batch_id"))
    if train.rows < settings.training.min_rows or valid.rows < settings.training.min_holdout_rows:
        raise TuningError(
            f"not enough labelled rows to tune: {train.rows} trial-training rows (need "
            f"{settings.training.min_rows}), {valid.rows} validation rows (need "
            f"{settings.training.min_holdout_rows}); {how}"
        )
    return train, valid, how


def report_dir(settings: Settings, kind: str) -> Path:
    return settings.paths.reports / "optimize" / kind
