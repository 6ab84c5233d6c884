"""What the monitoring DAG's tasks hand each other: references and counts, never data.

Frozen dataclasses, serialised at the XCom boundary by :mod:`pipelines.core.contracts`. The
collected window points at the parquet files it wrote; the monitored window at its reports; the
decision carries the action as an enum (the DAG maps it to a task id, nothing here knows one) and,
on a retrain, the training request the orchestrator passes on as the training run's conf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RetrainAction(StrEnum):
    """The policy's answer for a window (the recorded ``action`` string is the value)."""

    RETRAIN = "retrain"
    NO_RETRAIN = "no_retrain"
    NO_DECISION = "no_decision"


@dataclass(frozen=True)
class CollectedWindow:
    """A window's evidence written to parquet (``served_uri``, ``labelled_uri``) and its counts.

    The counts travel because the monitoring step judges them before it reads a row: too many
    corrupt rows or too few served ones make the window undecidable without touching Evidently.
    """

    window: str
    start: str
    end: str
    as_of: str
    prediction_log: str
    rows_logged: int
    rows_served: int
    rows_error: int
    rows_corrupt: int
    rows_duplicate: int
    corrupt_examples: tuple[str, ...]
    model_versions: dict[str, int]
    champion_version: str | None
    labels_mature: int
    labels_immature: int
    served_uri: str
    labelled_uri: str


@dataclass(frozen=True)
class MonitoredWindow:
    """A judged window: its status and headline figures, and where its reports are."""

    window: str
    status: str
    reason: str
    model_version: str | None
    drift_share: float | None
    n_predictions: int
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainRequest:
    """What a retrain asks training for: why, on which batches, judged on which holdout."""

    reason: str
    window: tuple[str, ...]
    holdout: str

    def to_conf(self) -> dict[str, Any]:
        """The training run's conf (and the recorded ``trigger_conf``): ``{reason, window, holdout}``."""
        return {"reason": self.reason, "window": list(self.window), "holdout": self.holdout}


@dataclass(frozen=True)
class RetrainDecision:
    """The recorded decision of a window, as the orchestrator needs it.

    ``request`` is set exactly when ``action`` is ``RETRAIN``: a retrain that cannot form a
    training window is recorded as ``NO_DECISION`` instead.
    """

    window: str
    action: RetrainAction
    reasons: tuple[str, ...]
    blocked_by: tuple[str, ...] = ()
    request: RetrainRequest | None = None
    report: str | None = None

    def __post_init__(self) -> None:
        if (self.action is RetrainAction.RETRAIN) != (self.request is not None):
            raise ValueError(
                f"window {self.window}: a training request goes with a retrain, and only with one"
            )
