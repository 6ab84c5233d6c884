"""Routing state of the gateway: which versions serve, with what canary weight.

The state is a small JSON file under ``paths.serving`` (written atomically), so a
restarted gateway serves exactly what it served before, and operators can read
it. ``history`` keeps every change, including refused ones (a canary that failed
to load), newest last; it is also where "the last good champion" is found.

The split is deterministic for a request key: the key is hashed (salted with the
canary version, so each release draws a fresh sample of callers) into a bucket in
[0, 100); the request goes to the canary when its bucket is below the weight. A
caller therefore stays on one variant for a whole step, and raising the weight
only moves callers from champion to canary, never back.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.observability import write_json_atomic

HISTORY_LIMIT = 500


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RoutingState:
    """What the gateway serves; persisted as JSON, versions as strings (MLflow's type)."""

    model_name: str
    champion_version: str | None = None
    canary_version: str | None = None
    canary_weight: float = 0.0
    updated_at: str = field(default_factory=now_iso)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoutingState:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def record(self, action: str, ok: bool = True, **details: Any) -> None:
        """Append a history entry describing the state *after* the action."""
        self.updated_at = now_iso()
        self.history.append(
            {
                "at": self.updated_at,
                "action": action,
                "ok": ok,
                "champion": self.champion_version,
                "canary": self.canary_version,
                "weight": self.canary_weight,
                **details,
            }
        )
        del self.history[:-HISTORY_LIMIT]

    def previous_champion(self) -> str | None:
        """The champion before the current one (walking back over successful changes)."""
        current = self.champion_version
        for entry in reversed(self.history):
            if not entry.get("ok", True):
                continue
            prev = entry.get("previous_champion")
            changed_to_current = entry.get("action") in ("promote", "set_champion") and (
                entry.get("champion") == current
            )
            if changed_to_current and prev and prev != current:
                return str(prev)
        return None


class RoutingStore:
    """Loads and saves the routing state file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, model_name: str) -> RoutingState:
        if not self.path.exists():
            return RoutingState(model_name=model_name)
        try:
            state = RoutingState.from_dict(json.loads(self.path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise RuntimeError(
                f"routing state {self.path} is unreadable ({exc}); fix or remove it "
                "(the gateway then serves @champion)"
            ) from exc
        if state.model_name != model_name:
            raise RuntimeError(
                f"routing state {self.path} is for model {state.model_name!r}, but "
                f"mlflow.registered_model is {model_name!r}; remove the file or fix the config"
            )
        return state

    def save(self, state: RoutingState) -> None:
        write_json_atomic(self.path, state.to_dict())


def bucket(key: str, salt: str = "") -> float:
    """A stable position in [0, 100) for a request key (uniform over keys)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


def goes_to_canary(weight: float, key: str | None, salt: str = "") -> bool:
    """Routing decision: sticky per key when one is given, otherwise random."""
    if weight <= 0:
        return False
    if weight >= 100:
        return True
    position = bucket(key, salt) if key else random.random() * 100.0
    return position < weight
