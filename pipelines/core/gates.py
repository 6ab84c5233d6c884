"""Verdict types shared by every gate: the data gate, the evaluation gate and the canary analysis.

A gate is a list of criteria, each judged on its own numbers; the verdict follows from them by
one rule (fail closed): any required criterion that failed fails the gate, any required one that
could not be judged leaves it inconclusive, and only when all pass does the gate pass. Keeping the
rule here means a reader of any gate's record meets the same words and the same arithmetic.

These are plain frozen dataclasses: pure functions build them, effect modules record them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How one criterion (or a whole gate) came out. The values are what records and tags hold."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Criterion:
    """One judged criterion: what it is, how it came out, why, and the figures behind it.

    ``kind`` groups criteria (``absolute``, ``relative``, ``slice``, ``behavioural``, ``errors``,
    ``latency``...); ``required`` is False for criteria that only warn (they never decide).
    """

    kind: str
    name: str
    outcome: Outcome
    detail: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    required: bool = True

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


def combine(criteria: Iterable[Criterion]) -> Outcome:
    """The gate's outcome from its criteria (fail closed; non-required criteria never decide).

    An empty list is INCONCLUSIVE: a gate that judged nothing has not passed anything.
    """
    required = [c for c in criteria if c.required]
    if not required:
        return Outcome.INCONCLUSIVE
    if any(c.outcome is Outcome.FAIL for c in required):
        return Outcome.FAIL
    if any(c.outcome is Outcome.INCONCLUSIVE for c in required):
        return Outcome.INCONCLUSIVE
    return Outcome.PASS


@dataclass(frozen=True)
class Verdict:
    """A gate's decision with every criterion that led to it."""

    criteria: tuple[Criterion, ...]

    @property
    def outcome(self) -> Outcome:
        return combine(self.criteria)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS

    @property
    def failed(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.required and c.outcome is Outcome.FAIL)

    @property
    def failed_criteria(self) -> list[str]:
        """``kind:name`` of each failed required criterion, in order."""
        return [c.label for c in self.failed]

    @property
    def failures(self) -> list[str]:
        """``kind:name: detail`` of each failed required criterion: a rejection that explains itself."""
        return [f"{c.label}: {c.detail}" for c in self.failed]
