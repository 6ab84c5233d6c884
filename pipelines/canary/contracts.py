"""What the release's tasks hand each other: the plan, then the evidence each stage adds to it.

``plan → precheck → traffic steps → promotion`` (or ``plan → rollback``). Each stage returns a
frozen dataclass that carries the one before it, so the next task (and a reader) has the whole
story so far without a registry or log read. Only versions, keys, verdicts and small figure
dicts travel this way; the prediction log and the models stay where they are.

The ``record`` methods give the plain dicts that are recorded (the release file, events, the
CLI's JSON): their keys and strings are the release's public record and do not change shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class ReleaseAction(StrEnum):
    """What a release run does; the values are what the release file and events hold."""

    RELEASE = "release"  # canary steps against the current champion, then promotion
    BOOTSTRAP = "bootstrap"  # no champion yet: promoted after the pre-rollout check alone
    ROLLBACK = "rollback"  # do nothing but roll back (the DAG's ``rollback`` param)
    NOOP = "noop"  # nothing to release (no candidate, or it already is the champion)


class ReleasePath(Enum):
    """The branch a release run takes after planning; ``dags/`` maps each to its task."""

    ROLLBACK = "rollback"
    RELEASE = "release"


@dataclass(frozen=True)
class ReleasePlan:
    """The decision of the plan step: what to release, against which champion, in which steps."""

    model_name: str
    steps: tuple[int, ...]
    planned_at: str
    action: ReleaseAction
    reason: str
    version: str | None = None
    requested: str | None = None
    champion_version: str | None = None
    #: Prediction-log time the release began (its traffic is read from here on).
    started_at: str | None = None
    #: ``<model>/v<version>``: the key of this release's events.
    release_key: str | None = None

    @property
    def moves_champion(self) -> bool:
        """Whether this run may end with a new ``@champion`` (release or bootstrap)."""
        return self.action in (ReleaseAction.RELEASE, ReleaseAction.BOOTSTRAP)

    @property
    def candidate(self) -> str:
        """The version being released (only plans that move the champion have one)."""
        if self.version is None:
            raise ValueError(f"a {self.action.value} plan has no candidate version")
        return self.version

    @property
    def key(self) -> str:
        """The release key (only plans that move the champion have one)."""
        if self.release_key is None:
            raise ValueError(f"a {self.action.value} plan has no release key")
        return self.release_key

    def record(self) -> dict[str, Any]:
        """The plan as the release file (``serving/releases/<model>-v<version>.json``) holds it."""
        return {
            "model_name": self.model_name,
            "steps": list(self.steps),
            "planned_at": self.planned_at,
            "version": self.version,
            "requested": self.requested,
            "champion_version": self.champion_version,
            "action": self.action.value,
            "started_at": self.started_at,
            "release_key": self.release_key,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PrecheckResult:
    """The plan after the pre-rollout check: the fresh instance's figures, or why it was skipped."""

    plan: ReleasePlan
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def record(self) -> dict[str, Any]:
        return {"skipped": self.skipped} if self.skipped is not None else dict(self.figures)


@dataclass(frozen=True)
class StepResult:
    """One traffic step's final verdict (``success`` to go on) with its flat analysis figures."""

    step: int
    verdict: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stepped:
    """The checked plan after the traffic steps: each step's verdict, or why none ran."""

    checked: PrecheckResult
    steps: tuple[StepResult, ...] = ()
    note: str | None = None

    @property
    def plan(self) -> ReleasePlan:
        return self.checked.plan


@dataclass(frozen=True)
class Promotion:
    """The end of a release: the candidate is ``@champion`` and proven served, or it was skipped."""

    plan: ReleasePlan
    promoted_at: str | None = None
    previous_champion: str | None = None
    #: What the live gateway answered when asked to prove it serves the new champion.
    served: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def record(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {
            "promoted_at": self.promoted_at,
            "previous_champion": self.previous_champion,
            "served": self.served,
        }


class RollbackScope(StrEnum):
    CANARY = "canary"  # a running canary was taken out of traffic
    CHAMPION = "champion"  # @champion and the gateway went back to an earlier champion


@dataclass(frozen=True)
class Rollback:
    """A done rollback; which fields are set depends on the scope (see :meth:`record`)."""

    scope: RollbackScope
    served: dict[str, Any]
    # scope CANARY
    aborted: str | None = None
    champion: str | None = None
    challenger_alias_removed: bool | None = None
    # scope CHAMPION
    from_version: str | None = None
    to_version: str | None = None
    served_before: str | None = None
    #: Where the ``rollback`` event was recorded.
    evidence: str = ""

    def record(self) -> dict[str, Any]:
        """The ``rollback`` event's fields, in the order the CLI prints them."""
        if self.scope is RollbackScope.CANARY:
            return {
                "scope": self.scope.value,
                "aborted": self.aborted,
                "champion": self.champion,
                "served": self.served,
                "challenger_alias_removed": self.challenger_alias_removed,
            }
        return {
            "scope": self.scope.value,
            "from": self.from_version,
            "to": self.to_version,
            "served_before": self.served_before,
            "served": self.served,
        }

    def summary(self) -> dict[str, Any]:
        """What ``rollback`` commands print: the record and where its evidence is."""
        return {**self.record(), "evidence": self.evidence}
