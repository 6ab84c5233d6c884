"""Pareto front over candidate models and the configured selection policy.

Pure functions on plain rows (dicts), so the choice can be checked by hand on a
constructed case and re-computed from the comparison table logged to MLflow.
A row whose objective is missing (a family that failed to fit, a latency that
could not be measured) is never on the front and never selected: a number that
was not measured must not win by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Objective:
    """One axis of the comparison; ``sense`` says which direction is better."""

    name: str
    sense: Literal["max", "min"]

    def better_or_equal(self, a: float, b: float) -> bool:
        return a >= b if self.sense == "max" else a <= b

    def strictly_better(self, a: float, b: float) -> bool:
        return a > b if self.sense == "max" else a < b


def _value(row: Mapping[str, Any], name: str) -> float | None:
    v = row.get(name)
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def measured(row: Mapping[str, Any], objectives: Sequence[Objective]) -> bool:
    """True when every objective of the row is a real number."""
    return all(_value(row, o.name) is not None for o in objectives)


def _vector(row: Mapping[str, Any], objectives: Sequence[Objective]) -> list[float] | None:
    vals = [_value(row, o.name) for o in objectives]
    return None if any(v is None for v in vals) else [v for v in vals if v is not None]


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], objectives: Sequence[Objective]) -> bool:
    """a dominates b: at least as good on every objective and strictly better on one."""
    va, vb = _vector(a, objectives), _vector(b, objectives)
    if va is None or vb is None:
        return False
    triples = list(zip(objectives, va, vb, strict=True))
    return all(o.better_or_equal(x, y) for o, x, y in triples) and any(
        o.strictly_better(x, y) for o, x, y in triples
    )


def pareto_front(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[int]:
    """Indices (in input order) of the measured rows no other measured row dominates."""
    ok = [i for i, r in enumerate(rows) if measured(r, objectives)]
    return [i for i in ok if not any(dominates(rows[j], rows[i], objectives) for j in ok if j != i)]


@dataclass(frozen=True)
class Selection:
    """The policy's pick (index into the rows) or ``None`` with the reason nothing qualified."""

    index: int | None
    reason: str


def select(
    rows: Sequence[Mapping[str, Any]],
    *,
    policy: Literal["best_quality_within_latency_budget", "fastest_within_quality_tolerance"],
    quality: str,
    latency: str,
    latency_budget: float,
    quality_tolerance: float = 0.0,
    tie_breakers: Sequence[Objective] = (),
) -> Selection:
    """Apply the configured policy to the measured rows.

    ``best_quality_within_latency_budget``: highest quality among candidates whose
    latency is within the budget. ``fastest_within_quality_tolerance``: lowest
    latency among the within-budget candidates that are within ``quality_tolerance``
    of the best within-budget quality. Ties are broken by ``tie_breakers`` in order,
    then by input order, so the pick is deterministic.
    """
    q, lat = Objective(quality, "max"), Objective(latency, "min")
    objectives = [q, lat, *tie_breakers]
    vecs = {i: v for i, r in enumerate(rows) if (v := _vector(r, objectives)) is not None}
    if not vecs:
        return Selection(None, "no candidate has every objective measured")
    within = [i for i, v in vecs.items() if v[1] <= latency_budget]
    if not within:
        fastest = min(vecs, key=lambda i: vecs[i][1])
        return Selection(
            None,
            f"no candidate within the {latency} budget of {latency_budget:g} "
            f"(fastest: {rows[fastest].get('name', fastest)} at {vecs[fastest][1]:.3g})",
        )

    def rank(i: int, order: Sequence[int]) -> tuple[float, ...]:
        # Ascending sort key: "max" objectives negated so that better always sorts first.
        signed = [-x if o.sense == "max" else x for o, x in zip(objectives, vecs[i], strict=True)]
        return (*(signed[k] for k in order), float(i))

    if policy == "best_quality_within_latency_budget":
        best = min(within, key=lambda i: rank(i, [0, 1, *range(2, len(objectives))]))
        return Selection(
            best,
            f"highest {quality} ({vecs[best][0]:.4f}) among {len(within)} candidate(s) "
            f"with {latency} <= {latency_budget:g}",
        )
    top = max(vecs[i][0] for i in within)
    near = [i for i in within if vecs[i][0] >= top - quality_tolerance]
    best = min(near, key=lambda i: rank(i, [1, 0, *range(2, len(objectives))]))
    return Selection(
        best,
        f"lowest {latency} ({vecs[best][1]:.3g}) among {len(near)} candidate(s) within "
        f"{quality_tolerance:g} of the best {quality} ({top:.4f}) and the budget {latency_budget:g}",
    )
