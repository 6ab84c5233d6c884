"""The evaluation gate: a pure decision over an evaluation document and the gate config.

Criteria, all of which must pass (fail closed: a missing number is a failure):

* **predict_contract** — the candidate scored every holdout row (and every perturbed copy) with
  one finite score of the right shape; if not, this is the only criterion judged: the candidate is
  rejected, never retried (a broken model is not a broken infrastructure);
* **absolute** — each ``gate.<task>.absolute`` metric meets its bound (a fixed floor on the
  measured value; its interval is reported);
* **relative** — the primary metric is not *significantly* worse than ``@champion``'s on the same
  holdout rows by more than ``gate.max_regression`` (paired test: DeLong for ROC AUC, a seeded
  paired bootstrap otherwise); skipped only when there is no champion yet (first model);
* **slice** — the same harm test in every slice group big enough to judge, margin
  ``gate.slice_tolerance`` (champion-only);
* **behavioural** — each invariance / directional check is not *significantly* beyond its
  tolerance (prediction units) in the wrong direction, judged against the standard error of the
  mean shift over its rows; at least ``gate.min_behavioural_checks`` are configured;
* **latency** — the candidate's best predict time per request (``gate.latency_rows`` rows, best
  of interleaved repeats) is at most ``gate.max_latency_ratio`` times the champion's (or slower by
  less than ``gate.latency_min_delta_ms``), champion-only.

Relative, slice and behavioural criteria are one family of one-sided harm tests (see
:class:`pipelines.core.stats.HarmTest`) whose p-values are Holm-adjusted together (why Holm:
:class:`pipelines.config.GateConfig`); one fails when its adjusted p < ``gate.alpha``. Every
criterion carries ``estimate``, ``interval``, ``margin`` and ``p_value`` in its figures, in the
verdict document and in the run's tags.

The criteria and the rule that combines them are the kernel's (:mod:`pipelines.core.gates`),
shared with the data gate and the canary. Pure: recording the verdict (run tags,
``evaluation/verdict.json``, the ``gate_verdict`` event) is
:func:`pipelines.training.evaluate.gate_candidate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.config import GateConfig
from pipelines.core import gates
from pipelines.core.gates import Criterion, Outcome
from pipelines.core.stats import HarmTest, harm_test, holm, normal_quantile
from pipelines.training import metrics
from pipelines.training.errors import TrainingConfigError


def _criterion(
    kind: str, name: str, passed: bool, detail: str, figures: Mapping[str, Any] | None = None
) -> Criterion:
    """kind: predict_contract | absolute | relative | slice | behavioural | latency | config.

    Every criterion carries ``estimate``, ``interval``, ``margin`` and ``p_value`` (None where the
    criterion has no such number), so readers of verdicts and tags meet one shape.
    """
    evidence = {"estimate": None, "interval": None, "margin": None, "p_value": None, **(figures or {})}
    return Criterion(kind, name, Outcome.PASS if passed else Outcome.FAIL, detail, evidence)


def _num(x: Any) -> float | None:
    """JSON-safe number: NaN/inf become None (a verdict document is JSON)."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def evidence_text(figures: Mapping[str, Any]) -> str:
    """``est=... ci=[..] margin=... p=... p_adj=...``: a criterion's evidence on one line."""
    parts = []

    def fmt(v: Any) -> str:
        return "nan" if v is None else f"{v:+.4g}" if isinstance(v, float) else str(v)

    if "estimate" in figures:
        parts.append(f"est={fmt(figures['estimate'])}")
    interval = figures.get("interval")
    if interval:
        parts.append(f"ci=[{fmt(interval[0])},{fmt(interval[1])}]")
    if "margin" in figures:
        parts.append(f"margin={figures['margin']}")
    if "p_value" in figures:
        p = figures["p_value"]
        parts.append(f"p={'n/a' if p is None else f'{p:.3g}'}")
    if figures.get("p_adjusted") is not None:
        parts.append(f"p_adj={figures['p_adjusted']:.3g}")
    return " ".join(parts)


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
                {
                    "kind": c.kind,
                    "name": c.name,
                    "passed": c.passed,
                    "detail": c.detail,
                    "figures": dict(c.figures),
                }
                for c in self.criteria
            ],
        }


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _absolute(task: str, gate: GateConfig, cand: dict[str, float], primary_se: Any) -> list[Criterion]:
    out = []
    z = normal_quantile(1 - gate.alpha)
    primary = gate.for_task(task).primary_metric
    for metric, bound in sorted(gate.for_task(task).absolute.items()):
        spec = metrics.spec(task, metric)
        value = cand.get(metric)
        op = ">=" if spec.higher_is_better else "<="
        if not _finite(value):
            out.append(
                _criterion(
                    "absolute",
                    metric,
                    False,
                    f"not computed (value {value!r}); needs {op} {bound}",
                    {"estimate": None, "interval": None, "margin": bound, "p_value": None},
                )
            )
            continue
        assert value is not None
        ok = value >= bound if spec.higher_is_better else value <= bound
        se = primary_se if metric == primary and _finite(primary_se) else None
        # Informational p, read like every other criterion's: one-sided evidence that the *true*
        # value is on the wrong side of the bar (small p = it surely is). The decision stays the
        # measured value against the bar: a fixed floor, and all a first model is judged by.
        p = None
        interval = None
        if se is not None:
            headroom = value - bound if spec.higher_is_better else bound - value
            p = harm_test(headroom, se, 0.0, gate.alpha).p_value
            interval = [value - z * se, value + z * se]
        figures = {
            "estimate": value,
            "interval": interval,
            "margin": bound,
            "p_value": _num(p),
            "test": "measured value vs fixed bar",
        }
        out.append(
            _criterion(
                "absolute",
                metric,
                ok,
                f"{value:.4f} {op} {bound} required ({evidence_text(figures)})",
                figures,
            )
        )
    return out


@dataclass
class _Pending:
    """A harm test waiting for the family's Holm adjustment."""

    kind: str
    name: str
    test: HarmTest | None
    what: str
    extra: dict[str, Any]


def _comparison(kind: str, name: str, comp: Any, margin: float, alpha: float, what: str) -> _Pending:
    if not isinstance(comp, Mapping) or not (_finite(comp.get("improvement")) and _finite(comp.get("se"))):
        return _Pending(kind, name, None, f"{what}: not comparable (no paired comparison: {comp!r})", {})
    test = harm_test(float(comp["improvement"]), float(comp["se"]), margin, alpha)
    c, p = comp.get("candidate"), comp.get("champion")
    text = (
        f"{what}: candidate {c:.4f} vs champion {p:.4f} on the same {comp.get('rows')} rows, "
        f"change {test.estimate:+.4f} ± {test.se:.4f} ({comp.get('method')})"
        if _finite(c) and _finite(p)
        else what
    )
    return _Pending(kind, name, test, text, {"method": comp.get("method"), "rows": comp.get("rows")})


def _behaviour_tests(
    gate: GateConfig, results: list[dict[str, Any]]
) -> tuple[list[Criterion], list[_Pending]]:
    config: list[Criterion] = []
    if len(gate.behavioural) < gate.min_behavioural_checks:
        config.append(
            _criterion(
                "config",
                "behavioural_checks",
                False,
                f"{len(gate.behavioural)} behavioural checks configured, "
                f"gate.min_behavioural_checks={gate.min_behavioural_checks}",
            )
        )
    pending = []
    by_name = {r.get("name"): r for r in results}
    for check in gate.behavioural:
        r = by_name.get(check.name) or {}
        what = f"{check.column} {check.op} {check.value}"
        if check.kind == "invariance":
            est, se = r.get("mean_abs_shift"), r.get("mean_abs_shift_se")
            # headroom below the tolerance: harm = mean |shift| significantly above tolerance
            signed = -float(est) if est is not None and _finite(est) else None
            desc = (
                f"{what}: mean |shift| {est if est is None else f'{est:.4f}'} (tolerance {check.tolerance})"
            )
        else:
            est, se = r.get("mean_shift"), r.get("mean_shift_se")
            sign = 1.0 if check.expect == "increase" else -1.0
            signed = sign * float(est) if est is not None and _finite(est) else None
            desc = (
                f"{what}: mean shift {est if est is None else f'{est:+.4f}'}, expected {check.expect} "
                f"(tolerance {check.tolerance} against it)"
            )
        if signed is None or not _finite(se):
            pending.append(
                _Pending("behavioural", check.name, None, f"no result for {what} in the evaluation", {})
            )
            continue
        assert se is not None
        # invariance: harm when -|shift| < -tolerance; directional: when signed shift < -tolerance
        test = harm_test(signed, float(se), check.tolerance, gate.alpha)
        pending.append(
            _Pending(
                "behavioural",
                check.name,
                test,
                f"{desc} ± {float(se):.4f} on {r.get('rows')} rows",
                {"shift": est, "units": "prediction", "check": check.kind},
            )
        )
    return config, pending


def _judge(pending: list[_Pending], alpha: float) -> list[Criterion]:
    """Holm over the family; NaN / missing evidence fails closed."""
    raw = [p.test.p_value if p.test is not None else float("nan") for p in pending]
    adjusted = holm(raw)
    out = []
    for p, adj in zip(pending, adjusted, strict=True):
        if p.test is None or math.isnan(adj):
            figures = {"estimate": None, "interval": None, "margin": None, "p_value": None, **p.extra}
            out.append(_criterion(p.kind, p.name, False, p.what, figures))
            continue
        t = p.test
        figures = {
            "estimate": t.estimate,
            "se": t.se,
            "interval": [t.interval[0], t.interval[1]],
            "margin": t.margin,
            "p_value": t.p_value,
            "p_adjusted": adj,
            "alpha": alpha,
            "test": "one-sided harm beyond margin, Holm-adjusted",
            **p.extra,
        }
        failed = adj < alpha
        verdict = (
            f"significantly worse than -{t.margin} (p_adj {adj:.3g} < {alpha})"
            if failed
            else f"no evidence of harm beyond -{t.margin} (p_adj {adj:.3g})"
        )
        out.append(
            _criterion(p.kind, p.name, not failed, f"{p.what}: {verdict}; {evidence_text(figures)}", figures)
        )
    return out


def _latency(gate: GateConfig, latency: Any) -> Criterion:
    ok_doc = isinstance(latency, Mapping) and latency.get("candidate_ms") and latency.get("champion_ms")
    if not ok_doc:
        return _criterion("latency", "predict_time", False, f"no latency measurement ({latency!r})")
    assert isinstance(latency, Mapping)
    cand, champ = [float(v) for v in latency["candidate_ms"]], [float(v) for v in latency["champion_ms"]]
    best_c, best_p = min(cand), max(min(champ), 1e-6)
    ratio = best_c / best_p
    ratios = [c / max(p, 1e-6) for c, p in zip(cand, champ, strict=True)]
    failed = ratio > gate.max_latency_ratio and best_c - best_p > gate.latency_min_delta_ms
    figures = {
        "estimate": ratio,
        "interval": [min(ratios), max(ratios)],
        "margin": gate.max_latency_ratio,
        "p_value": None,
        "candidate_best_ms": best_c,
        "champion_best_ms": best_p,
        "rows": latency.get("rows"),
        "test": "best of interleaved repeats (not a significance test: timing noise only slows)",
    }
    return _criterion(
        "latency",
        "predict_time",
        not failed,
        f"best predict of {latency.get('rows')} rows: candidate {best_c:.1f} ms vs champion {best_p:.1f} ms "
        f"(x{ratio:.2f}; may be at most x{gate.max_latency_ratio} or +{gate.latency_min_delta_ms} ms)",
        figures,
    )


def decide(evaluation: dict[str, Any], gate: GateConfig, task: str) -> Verdict:
    """The verdict for one evaluation document (see module docstring for the criteria)."""
    primary = gate.for_task(task).primary_metric
    metrics.spec(task, primary)
    for name in gate.for_task(task).absolute:
        metrics.spec(task, name)
    if evaluation.get("task") not in (None, task):
        raise TrainingConfigError(f"evaluation is for a {evaluation.get('task')} task, gate for {task}")
    champ = evaluation.get("champion")
    champion_version = str(champ["version"]) if champ else None
    contract = evaluation.get("predict_contract")
    if not isinstance(contract, Mapping) or contract.get("passed") is not True:
        stage = contract.get("stage", "holdout") if isinstance(contract, Mapping) else "holdout"
        detail = (
            str(contract.get("detail"))
            if isinstance(contract, Mapping)
            else "no predict-contract record in the evaluation (fail closed)"
        )
        figures = {"estimate": None, "interval": None, "margin": None, "p_value": None, "stage": stage}
        crit = _criterion("predict_contract", stage, False, detail, figures)
        return Verdict(criteria=(crit,), champion_version=champion_version)

    cand_doc = evaluation.get("candidate") or {}
    cand = cand_doc.get("metrics") or {}
    criteria = [_criterion("predict_contract", "holdout", True, str(contract.get("detail", "")), {})]
    criteria.extend(_absolute(task, gate, cand, cand_doc.get("primary_se")))
    pending: list[_Pending] = []
    if champ:
        label = f"{primary} vs champion v{champ.get('version')}"
        pending.append(
            _comparison("relative", primary, champ.get("comparison"), gate.max_regression, gate.alpha, label)
        )
        for s in evaluation.get("slices") or []:
            if not s.get("gated"):
                continue
            name = f"{s['column']}={s['value']}"
            pending.append(
                _comparison(
                    "slice",
                    name,
                    s.get("comparison"),
                    gate.slice_tolerance,
                    gate.alpha,
                    f"{primary} on {name}",
                )
            )
    config, behaviour = _behaviour_tests(gate, evaluation.get("behavioural") or [])
    criteria.extend(config)
    criteria.extend(_judge(pending + behaviour, gate.alpha))
    if champ:
        criteria.append(_latency(gate, evaluation.get("latency")))
    return Verdict(criteria=tuple(criteria), champion_version=champion_version)
