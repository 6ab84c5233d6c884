"""When does a run of ``automate_training`` actually train?

Monthly batches must not blindly retrain every month: an asset event (a batch was
validated) trains only to *bootstrap* (no champion and no challenger yet, and
enough batches for a window plus a holdout), or when
``training.retrain_on_every_batch`` is on. Runs that carry a reason (the drift
monitor's retrain decision, a person) or are started by hand always train.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipelines.config import Settings


@dataclass(frozen=True)
class TrainDecision:
    train: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """Pure policy (table-tested); :func:`should_train` gathers the facts."""
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


def should_train(settings: Settings, reason: str = "", asset_triggered: bool = False) -> TrainDecision:
    from pipelines.data.validated import list_published
    from pipelines.training.registry import challenger_version, champion_version, client_for
    from pipelines.training.tracking import check_reachable

    check_reachable(settings)
    client = client_for(settings)
    return decide_should_train(
        reason=reason,
        asset_triggered=asset_triggered,
        has_champion=champion_version(settings, client) is not None,
        has_challenger=challenger_version(settings, client) is not None,
        published=len(list_published(settings)),
        needed=settings.training.window_batches + 1,
        retrain_on_every_batch=settings.training.retrain_on_every_batch,
    )
