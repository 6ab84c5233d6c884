"""When does a run of the training DAG actually train?

Monthly batches must not blindly retrain every month: an asset event (a batch was
validated) trains only to *bootstrap* (no champion and no challenger yet, and
enough batches for a window plus a holdout), or when
``training.retrain_on_every_batch`` is on. Runs that carry a reason (the drift
monitor's retrain decision, a person) or are started by hand always train.

Pure: the facts (aliases, published batches) are gathered by
:func:`pipelines.training.window.should_train`, which calls :func:`decide_should_train`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainDecision:
    """Whether this run trains, and the sentence the task log gives as the reason."""

    train: bool
    why: str


def decide_should_train(
    *,
    reason: str,
    asset_triggered: bool,
    has_champion: bool,
    has_challenger: bool,
    published: int,
    needed: int,
    retrain_on_every_batch: bool,
) -> TrainDecision:
    """Pure policy (table-tested); ``window.should_train`` gathers the facts."""
    if reason.strip():
        return TrainDecision(True, f"requested: {reason.strip()}")
    if not asset_triggered:
        return TrainDecision(True, "manual run")
    if published < needed:
        return TrainDecision(
            False, f"waiting for data: {published} published batches, a window + holdout needs {needed}"
        )
    if retrain_on_every_batch:
        return TrainDecision(True, "training.retrain_on_every_batch is on")
    if not has_champion and not has_challenger:
        return TrainDecision(True, "bootstrap: no champion and no challenger yet")
    holder = "a champion" if has_champion else "a challenger awaiting release"
    return TrainDecision(
        False,
        f"{holder} exists; a new batch alone does not retrain (monitoring or a person asks, with a reason)",
    )
