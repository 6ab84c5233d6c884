"""The validated-batch store: what the quality gate publishes and training reads.

Layout::

    <root>/validated/<dataset>/<batch_id>/accepted.parquet   # rows that passed, landed schema
    <root>/validated/<dataset>/<batch_id>/_PUBLISHED.json     # written last: the batch is usable

A batch without ``_PUBLISHED.json`` does not exist for downstream steps, so a gate
that crashed half-way can never leak a partial batch into training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.period_ids import check_batch_id, check_under

MARKER = "_PUBLISHED.json"


@dataclass(frozen=True)
class ValidatedBatch:
    """Reference to a published batch (passed between tasks and carried in asset events)."""

    dataset: str
    batch_id: str
    uri: str
    rows: int
    source_sha256: str
    status: str  # "passed" | "passed_with_warnings"
    rows_quarantined: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidatedBatch:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def path(self) -> Path:
        return Path(self.uri.removeprefix("file://"))


def validated_dir(settings: Settings, batch_id: str) -> Path:
    """The batch's folder in the store; the id and the path are checked as landing checks them."""
    bid = check_batch_id(batch_id, settings.dataset.batch_frequency)
    return check_under(settings.paths.root, settings.paths.validated / settings.dataset.name / bid)


def published(settings: Settings, batch_id: str) -> ValidatedBatch | None:
    """The published batch, or None if the gate has not (successfully) published it."""
    marker = validated_dir(settings, batch_id) / MARKER
    if not marker.exists():
        return None
    return ValidatedBatch.from_dict(json.loads(marker.read_text()))


def list_published(settings: Settings) -> list[str]:
    """Published batch ids, oldest first (batch ids sort chronologically by construction)."""
    root = settings.paths.validated / settings.dataset.name
    if not root.exists():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{MARKER}"))


def load_batches(settings: Settings, batch_ids: list[str]) -> pd.DataFrame:
    """Concatenate published batches; raises naming every batch that is not published."""
    missing = [b for b in batch_ids if published(settings, b) is None]
    if missing:
        raise FileNotFoundError(
            f"batches not published by the quality gate: {missing} "
            f"(looked in {settings.paths.validated / settings.dataset.name})"
        )
    frames = [pd.read_parquet(validated_dir(settings, b) / "accepted.parquet") for b in batch_ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
