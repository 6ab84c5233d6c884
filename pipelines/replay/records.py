"""What a replay did: the record the driver fills and the report reads.

Its own module so that the driver (:mod:`pipelines.replay.demo`) and the summary
(:mod:`pipelines.replay.report`) both depend on it instead of on each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pipelines.config import Settings
from pipelines.replay.orchestration import DagRunRecord


@dataclass
class Replay:
    """What the replay did, for the timeline and the summary."""

    settings: Settings
    runs: list[DagRunRecord] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    traffic_seconds: float = 0.0
    champion_by_month: dict[str, str] = field(default_factory=dict)
    baseline_version: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def note(self, month: str, what: str, detail: str = "") -> None:
        self.timeline.append({"month": month, "event": what, "detail": detail})
        print(f"  [{month}] {what}{': ' + detail if detail else ''}", flush=True)
