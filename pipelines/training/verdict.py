"""The evaluation gate: a pure decision over an evaluation document and the gate config.

Criteria, all of which must pass (fail closed: a missing number is a failure):

* **absolute** — each ``gate.<task>.absolute`` metric meets its bound;
* **relative** — the primary metric trails ``@champion`` (same holdout) by at most
  ``gate.max_regression``; skipped only when there is no champion yet (first model);
* **slice** — in every slice group big enough to judge, the primary metric trails
  the champion's by at most ``gate.slice_tolerance`` (also champion-only);
* **behavioural** — each configured invariance / directional check holds, and at
  least ``gate.min_behavioural_checks`` are configured.

The verdict lists every criterion with its numbers, so a rejection explains itself. The
criteria and the rule that combines them are the kernel's (:mod:`pipelines.core.gates`), shared
with the data gate and the canary; here every criterion is required and passes or fails (an
evaluation is never inconclusive: a missing number fails). Pure: recording the verdict (run
tags, ``evaluation/verdict.json``, the ``gate_verdict`` event) is
:func:`pipelines.training.evaluate.gate_candidate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipelines.config import GateConfig
from pipelines.core import gates
from pipelines.core.gates import Criterion, Outcome
from pipelines.training import metrics
from pipelines.training.errors import TrainingConfigError


def _criterion(kind: str, name: str, passed: bool, detail: str) -> Criterion:
    """kind: absolute | relative | slice | behavioural | config."""
    return Criterion(kind, name, Outcome.PASS if passed else Outcome.FAIL, detail)


@dataclass(frozen=True)
class Verdict(gates.Verdict):
    """The gate's decision on one candidate, with every criterion and the champion it faced."""

    champion_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict document (``evaluation/verdict.json``); keys and words are what readers parse."""
        return {
            "verdict": "passed" if self.passed else "rejected",
            "passed": self.passed,
            "champion_version": self.champion_version,
            "failed_criteria": self.failed_criteria,
            "failures": self.failures,
            "criteria": [
                {"kind": c.kind, "name": c.name, "passed": c.passed, "detail": c.detail}
                for c in self.criteria
            ],
        }


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _absolute(task: str, gate: GateConfig, cand: dict[str, float]) -> list[Criterion]:
    out = []
    for metric, bound in sorted(gate.for_task(task).absolute.items()):
        spec = metrics.spec(task, metric)
        value = cand.get(metric)
        op = ">=" if spec.higher_is_better else "<="
        if not _finite(value):
            out.append(
                _criterion("absolute", metric, False, f"not computed (value {value!r}); needs {op} {bound}")
            )
            continue
        assert value is not None
        ok = value >= bound if spec.higher_is_better else value <= bound
        out.append(_criterion("absolute", metric, ok, f"{value:.4f} {op} {bound} required"))
    return out


def _relative(
    task: str, gate: GateConfig, primary: str, cand: dict[str, float], champ: dict[str, Any]
) -> Criterion:
    c, p = cand.get(primary), (champ.get("metrics") or {}).get(primary)
    label = f"champion v{champ.get('version')}"
    if not (_finite(c) and _finite(p)):
        return _criterion("relative", primary, False, f"candidate {c!r} vs {label} {p!r}: not comparable")
    assert c is not None and p is not None
    gain = metrics.improvement(task, primary, c, p)
    ok = gain >= -gate.max_regression
    return _criterion(
        "relative",
        primary,
        ok,
        f"candidate {c:.4f} vs {label} {p:.4f} on the same holdout: change {gain:+.4f} "
        f"(may lose at most {gate.max_regression})",
    )


def _slices(task: str, gate: GateConfig, primary: str, slices: list[dict[str, Any]]) -> list[Criterion]:
    out = []
    for s in slices:
        if not s.get("gated"):
            continue
        name = f"{s['column']}={s['value']}"
        c, p = s.get("candidate"), s.get("champion")
        if not (_finite(c) and _finite(p)):
            out.append(
                _criterion(
                    "slice", name, False, f"{primary} candidate {c!r} vs champion {p!r}: not comparable"
                )
            )
            continue
        assert c is not None and p is not None
        gain = metrics.improvement(task, primary, c, p)
        out.append(
            _criterion(
                "slice",
                name,
                gain >= -gate.slice_tolerance,
                f"{primary} {c:.4f} vs champion {p:.4f} ({s['rows']} rows): change {gain:+.4f} "
                f"(may lose at most {gate.slice_tolerance})",
            )
        )
    return out


def _behavioural(gate: GateConfig, results: list[dict[str, Any]]) -> list[Criterion]:
    out = []
    if len(gate.behavioural) < gate.min_behavioural_checks:
        out.append(
            _criterion(
                "config",
                "behavioural_checks",
                False,
                f"{len(gate.behavioural)} behavioural checks configured, "
                f"gate.min_behavioural_checks={gate.min_behavioural_checks}",
            )
        )
    by_name = {r.get("name"): r for r in results}
    for check in gate.behavioural:
        r = by_name.get(check.name)
        what = f"{check.column} {check.op} {check.value}"
        if r is None or not _finite(r.get("mean_shift")) or not _finite(r.get("mean_abs_shift")):
            out.append(
                _criterion("behavioural", check.name, False, f"no result for {what} in the evaluation")
            )
            continue
        shift, abs_shift = float(r["mean_shift"]), float(r["mean_abs_shift"])
        if check.kind == "invariance":
            ok = abs_shift <= check.tolerance
            detail = f"{what}: mean |shift| {abs_shift:.4f} (max {check.tolerance}) on {r.get('rows')} rows"
        elif check.expect == "increase":
            ok = shift >= -check.tolerance
            detail = f"{what}: mean shift {shift:+.4f}, expected increase (tolerance {check.tolerance})"
        else:
            ok = shift <= check.tolerance
            detail = f"{what}: mean shift {shift:+.4f}, expected decrease (tolerance {check.tolerance})"
        out.append(_criterion("behavioural", check.name, ok, detail))
    return out


def decide(evaluation: dict[str, Any], gate: GateConfig, task: str) -> Verdict:
    """The verdict for one evaluation document (see module docstring for the criteria)."""
    primary = gate.for_task(task).primary_metric
    metrics.spec(task, primary)
    if evaluation.get("task") not in (None, task):
        raise TrainingConfigError(f"evaluation is for a {evaluation.get('task')} task, gate for {task}")
    cand = (evaluation.get("candidate") or {}).get("metrics") or {}
    champ = evaluation.get("champion")
    criteria = _absolute(task, gate, cand)
    if champ:
        criteria.append(_relative(task, gate, primary, cand, champ))
        criteria.extend(_slices(task, gate, primary, evaluation.get("slices") or []))
    criteria.extend(_behavioural(gate, evaluation.get("behavioural") or []))
    if not criteria:
        criteria.append(_criterion("config", "criteria", False, "no gate criterion configured"))
    return Verdict(criteria=tuple(criteria), champion_version=str(champ["version"]) if champ else None)
