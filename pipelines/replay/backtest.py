"""Did the loop pay for itself? Three retrain strategies replayed on the same served months.

For every served month (the replay's: each batch after the bootstrap's ``window_batches``
training batches and its holdout) the backtest scores the model each strategy would have
been serving, on the whole month's labelled rows:

* ``never`` — the bootstrap model (trained like the demo's v1), never replaced;
* ``monthly`` — after every served month a candidate is trained (holdout: that month) and
  replaces the champion from the next month on **only if the evaluation gate passes it**
  against the champion of the moment: blind, but gated;
* ``policy`` — the project's loop: after every served month the monitoring package's retrain
  policy (:func:`pipelines.monitoring.policy.decide`, hysteresis, cooldown and caps included)
  judges the champion's window; only when it says ``retrain`` is the same candidate trained
  and gated.

Why the policy is **simulated**, not read from the demo's records: the recorded decisions
depend on what the demo's canary promoted and on the configuration it ran with, so they
cannot be replayed under another window strategy or cap (choosing defaults needs that), and
a standalone run has no records. The simulation feeds the real policy function with evidence
measured the way the monitoring step measures it: Evidently drift of the important features
and of the prediction against the champion's training window (same tests, thresholds and
sample sizes from ``monitoring``), and the champion's quality on the labels matured
``monitoring.label_delay_days`` before the month's end against its holdout figure.
What the simulation leaves out, on purpose: the canary (a gate-passed candidate is promoted
at the next month; the canary's own decisions are measured by ``benchmarks/bench_decisions``).

Models are trained in memory with the training pipeline's code
(:func:`pipelines.training.fit_window`) and judged by the evaluation gate's measurements and
decision (:func:`pipelines.training.gate_models`), seeded from ``training.seed``. A candidate
needed by both ``monthly`` and ``policy`` is trained once and its fit's CPU-seconds are
charged to each strategy that asked for it.

Output: ``<paths.root>/reports/demo/backtest.json`` (``--out`` to change): one row per served
month and strategy, a per-strategy summary, and the issue's payoff check for ``policy``.
``python -m pipelines.replay.backtest [--config FILE] [--months N] [--out FILE]``; ``make
demo`` runs it after the replay and the summary HTML shows its table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings, load_settings

STRATEGIES = ("never", "monthly", "policy")


# --------------------------------------------------------------------------- pure arithmetic
@dataclass(frozen=True)
class Goal:
    """The issue's Done-when: mean gain over ``never`` >= 0.01 (AUC), no month worse by more than
    0.02, at most half the retrains of ``monthly``. For a lower-is-better metric (MAE) the
    gains are relative to ``never``'s value (1 % and 2 %), since MAE has the target's units."""

    min_mean_gain: float = 0.01
    max_month_loss: float = 0.02
    max_retrain_ratio: float = 0.5


def gain(value: float, baseline: float, higher_is_better: bool) -> float:
    """Positive = better than the baseline: AUC points, or the relative MAE reduction."""
    if higher_is_better:
        return value - baseline
    return (baseline - value) / abs(baseline) if baseline else 0.0


def summarize(rows: Sequence[Mapping[str, Any]], higher_is_better: bool) -> list[dict[str, Any]]:
    """Per strategy: mean metric, mean and worst monthly gain over ``never``, retrains, CPU-seconds."""
    base = {r["month"]: r["value"] for r in rows if r["strategy"] == "never"}
    out = []
    for strategy in STRATEGIES:
        mine = sorted((r for r in rows if r["strategy"] == strategy), key=lambda r: r["month"])
        if not mine:
            continue
        values = [r["value"] for r in mine if _finite(r["value"])]
        gains = [
            gain(r["value"], base[r["month"]], higher_is_better)
            for r in mine
            if _finite(r["value"]) and _finite(base.get(r["month"]))
        ]
        out.append(
            {
                "strategy": strategy,
                "months": len(mine),
                "mean": sum(values) / len(values) if values else None,
                "mean_gain": sum(gains) / len(gains) if gains else None,
                "worst_month_gain": min(gains) if gains else None,
                "retrains": mine[-1]["retrains"],
                "promotions": mine[-1]["promotions"],
                "train_cpu_seconds": mine[-1]["train_cpu_seconds"],
            }
        )
    return out


def payoff(summary: Sequence[Mapping[str, Any]], goal: Goal | None = None) -> dict[str, Any]:
    """The Done-when verdict for ``policy``, each condition with its figure."""
    goal = goal or Goal()
    by = {s["strategy"]: s for s in summary}
    pol, monthly = by.get("policy"), by.get("monthly")
    if pol is None or pol["mean_gain"] is None or monthly is None:
        return {"met": False, "reason": "no policy or monthly rows scored against never-retraining"}
    allowed = goal.max_retrain_ratio * monthly["retrains"]
    checks = {
        "mean_gain": {
            "value": pol["mean_gain"],
            "goal": f">= {goal.min_mean_gain}",
            "met": pol["mean_gain"] >= goal.min_mean_gain,
        },
        "worst_month_gain": {
            "value": pol["worst_month_gain"],
            "goal": f">= -{goal.max_month_loss}",
            "met": pol["worst_month_gain"] >= -goal.max_month_loss,
        },
        "retrains": {
            "value": pol["retrains"],
            "goal": f"<= {allowed:g} (half of monthly's {monthly['retrains']})",
            "met": pol["retrains"] <= allowed,
        },
    }
    return {"met": all(c["met"] for c in checks.values()), "checks": checks}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


# --------------------------------------------------------------------------- data
def load_months(settings: Settings, months: Sequence[str]) -> tuple[dict[str, pd.DataFrame], str]:
    """Landed-schema rows per month: the validated store's when every month is published (after
    the demo), else cut from the configured source (a standalone run: no quality gate ran, so
    rows the gate would quarantine are included; the JSON says which)."""
    from pipelines.core.periods import batch_ids
    from pipelines.data.validated import list_published, load_batches

    published = set(list_published(settings))
    if all(m in published for m in months):
        return {m: load_batches(settings, [m]) for m in months}, "validated store"
    from pipelines.data.source import load_source

    contract = settings.dataset
    df = load_source(contract, base=settings.config_file.parent)
    ids = batch_ids(df[contract.event_time], contract.batch_frequency, contract.event_timezone)
    frames = {m: df[ids == m].reset_index(drop=True) for m in months}
    empty = [m for m, f in frames.items() if f.empty]
    if empty:
        raise SystemExit(f"the source {contract.source.path} has no rows for batches {empty}")
    return frames, f"source {contract.source.path} (not validated: standalone run)"


# --------------------------------------------------------------------------- the replay
@dataclass
class _Strategy:
    name: str
    champion: Any  # FittedModel
    retrains: int = 0
    promotions: int = 0
    cpu: float = 0.0
    history: list[Any] = field(default_factory=list)  # monitoring policy Decisions (policy only)


class Backtest:
    """One backtest over ``months`` (the first ``window_batches`` + 1 bootstrap the champion)."""

    def __init__(self, settings: Settings, frames: Mapping[str, pd.DataFrame], months: Sequence[str]):
        from pipelines.training import metrics

        self.settings, self.frames, self.months = settings, frames, list(months)
        self.task = settings.dataset.target.task
        # The quality measure of the table: AUC for classification, MAE for regression.
        self.metric = "roc_auc" if self.task == "classification" else "mae"
        self.higher_is_better = metrics.spec(self.task, self.metric).higher_is_better
        self.candidates: dict[tuple[tuple[str, ...], str], Any] = {}
        self.gate_log: list[dict[str, Any]] = []

    # -- models
    def candidate(self, holdout: str) -> Any:
        """The candidate a retrain after ``holdout`` trains: window by ``training.window_strategy``."""
        from pipelines.training import fit_window
        from pipelines.training.window import select_batches

        before = [m for m in self.months if m < holdout]
        batches = tuple(select_batches(self.settings.training, before))
        key = (batches, holdout)
        if key not in self.candidates:
            self.candidates[key] = fit_window(
                self.settings, self.frames, batches, holdout, name=f"{batches[0]}..{batches[-1]}"
            )
        return self.candidates[key]

    def score(self, model: Any, month: str) -> float:
        from pipelines.training import metrics, predict_scores, prepare_xy

        data = prepare_xy(self.settings.dataset, self.frames[month])
        scores = predict_scores(model.model, data.x, self.task)
        return metrics.compute(self.task, data.y.to_numpy(), scores, [self.metric])[self.metric]

    def gate(self, strategy: _Strategy, cand: Any, month: str) -> bool:
        from pipelines.training import gate_models

        verdict = gate_models(self.settings, cand, strategy.champion, self.frames[month])
        self.gate_log.append(
            {
                "strategy": strategy.name,
                "after_month": month,
                "candidate": cand.name,
                "champion": strategy.champion.name,
                "passed": verdict.passed,
                "failed_criteria": list(verdict.failed_criteria),
            }
        )
        return verdict.passed

    # -- the policy's evidence for one window, measured like the monitoring step
    def policy_decision(self, strategy: _Strategy, month: str, ordinal: int) -> Any:
        from pipelines.core.periods import parse_window
        from pipelines.monitoring import reports
        from pipelines.monitoring.evidence import Performance, WindowResult
        from pipelines.monitoring.policy import PolicyHistory, decide
        from pipelines.training import coerce_features, metrics, predict_scores, prepare_xy

        settings, cfg, contract = self.settings, self.settings.monitoring, self.settings.dataset
        champ = strategy.champion
        history = PolicyHistory(windows=tuple(d.as_past() for d in strategy.history))
        rows = len(self.frames[month])
        if rows < cfg.min_window_rows:  # as the monitoring step: too few predictions to judge
            result = WindowResult(
                window=month,
                ordinal=ordinal,
                as_of="",
                status="insufficient_data",
                reason=f"only {rows} served predictions in window {month} "
                f"(monitoring.min_window_rows={cfg.min_window_rows})",
                model_version=champ.name,
                reference_key=champ.name,
                n_predictions=rows,
            )
            decision = decide(history, result, cfg)
            strategy.history.append(decision)
            return decision
        feats = contract.features.all
        ref_df = pd.concat([self.frames[b] for b in champ.train_batches], ignore_index=True)
        reference = reports.sample(ref_df, cfg.reference_sample_rows, cfg.sample_seed)
        current = reports.sample(self.frames[month], cfg.current_sample_rows, cfg.sample_seed)
        ref_x, cur_x = coerce_features(contract, reference), coerce_features(contract, current)
        ref_frame, cur_frame = ref_x[feats].copy(), cur_x[feats].copy()
        ref_frame[reports.PREDICTION] = predict_scores(champ.model, ref_x, self.task)
        cur_frame[reports.PREDICTION] = predict_scores(champ.model, cur_x, self.task)
        important = self.important_features(champ)
        plan = reports.drift_plan(settings, cur_frame, ref_frame, important)
        snap = reports.run_drift_report(cur_frame, ref_frame, plan, quality=False)
        figures = reports.drift_figures(snap, plan)

        window = parse_window(month, contract.batch_frequency, contract.event_timezone)
        cutoff = window.end_ts - pd.Timedelta(days=cfg.label_delay_days)
        month_df = self.frames[month]
        event = pd.to_datetime(month_df[contract.event_time], utc=True)
        mature = prepare_xy(contract, month_df[(event < cutoff).to_numpy()])
        metric = cfg.performance_metric or settings.gate.for_task(self.task).primary_metric
        spec = metrics.spec(self.task, metric)
        value = None
        if mature.rows >= cfg.min_mature_labels:
            value = spec.fn(mature.y.to_numpy(), predict_scores(champ.model, mature.x, self.task))
        result = WindowResult(
            window=month,
            ordinal=ordinal,
            as_of=str(window.end_ts),
            status="ok",
            model_version=champ.name,
            reference_key=champ.name,
            reference_batches=list(champ.train_batches),
            n_predictions=len(month_df),
            important_features=plan.important,
            feature_drift={c: d for c, d in figures["columns"].items() if c != reports.PREDICTION},
            drift_share=figures["drift_share"],
            prediction_drift=figures["columns"].get(reports.PREDICTION),
            performance=Performance(
                metric,
                spec.higher_is_better,
                value,
                champ.holdout_metrics.get(metric),
                mature.rows,
                len(month_df) - mature.rows,
            ),
        )
        decision = decide(history, result, cfg)
        strategy.history.append(decision)
        return decision

    def important_features(self, champ: Any) -> list[str]:
        """``monitoring.important_features``, else the champion's top-k permutation importance on
        its holdout (what the monitoring step reads from the champion's evaluation)."""
        from pipelines.training import prepare_xy
        from pipelines.training.evaluate import permutation_importance
        from pipelines.training.offline import _ServedScores

        cfg = self.settings.monitoring
        if cfg.important_features:
            return list(cfg.important_features)
        holdout = prepare_xy(self.settings.dataset, self.frames[champ.holdout_batch])
        ranked = permutation_importance(
            _ServedScores(champ.model, self.task), holdout.x, holdout.y.to_numpy(), self.settings
        )
        top = [c for c, v in ranked.items() if v > 0][: cfg.important_top_k]
        return top or list(self.settings.dataset.features.all)

    # -- the replay
    def run(self) -> dict[str, Any]:
        from pipelines.monitoring.contracts import RetrainAction

        n = self.settings.training.window_batches
        if len(self.months) < n + 2:
            raise SystemExit(
                f"the backtest needs at least {n + 2} batches (training.window_batches={n} to train, "
                f"1 holdout, 1 to serve); got {self.months}"
            )
        t0 = time.perf_counter()
        boot_months, holdout = self.months[:n], self.months[n]
        from pipelines.training import fit_window, gate_models

        v1 = fit_window(self.settings, self.frames, boot_months, holdout, name="v1")
        boot = gate_models(self.settings, v1, None, self.frames[holdout])
        if not boot.passed:
            raise SystemExit(f"the bootstrap model failed the gate: {boot.failures}")
        strategies = {s: _Strategy(s, v1) for s in STRATEGIES}
        served = self.months[n + 1 :]
        rows: list[dict[str, Any]] = []
        for i, month in enumerate(served):
            for s in strategies.values():
                rows.append(
                    {
                        "month": month,
                        "strategy": s.name,
                        "metric": self.metric,
                        "value": self.score(s.champion, month),
                        "model": s.champion.name,
                        "retrains": s.retrains,
                        "promotions": s.promotions,
                        "train_cpu_seconds": round(s.cpu, 2),
                        "after_month": "",
                    }
                )
            print(
                f"  backtest {month}: "
                + ", ".join(f"{r['strategy']} {r['value']:.4f} ({r['model']})" for r in rows[-3:]),
                file=sys.stderr,
                flush=True,
            )
            if i == len(served) - 1:
                break  # a model trained after the last month would serve nothing
            ordinal = n + 1 + i
            monthly = strategies["monthly"]
            self._retrain(monthly, month, rows[-2])
            policy = strategies["policy"]
            decision = self.policy_decision(policy, month, ordinal)
            rows[-1]["after_month"] = f"policy: {decision.action.value}"
            if decision.action == RetrainAction.RETRAIN:
                self._retrain(policy, month, rows[-1])
        summary = summarize(rows, self.higher_is_better)
        mon = self.settings.monitoring
        return {
            "dataset": self.settings.dataset.name,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "bootstrap": {
                "train": list(boot_months),
                "holdout": holdout,
                "cpu_seconds": round(v1.cpu_seconds, 2),
            },
            "served_months": served,
            "config": {
                "window_strategy": self.settings.training.window_strategy,
                "window_batches": n,
                "recency_half_life": self.settings.training.recency_half_life,
                "features": self.settings.dataset.features.all,
                "max_retrains_per_period": self.settings.monitoring.max_retrains_per_period,
                "period_windows": self.settings.monitoring.period_windows,
                "cooldown_windows": self.settings.monitoring.cooldown_windows,
                "hysteresis": f"{mon.hysteresis_n} of {mon.hysteresis_m}",
                "seed": self.settings.training.seed,
            },
            "rows": rows,
            "summary": summary,
            "payoff": payoff(summary),
            "gates": self.gate_log,
            "policy_decisions": [
                {
                    "window": d.window,
                    "action": d.action.value,
                    "reasons": d.reasons,
                    "blocked_by": d.blocked_by,
                }
                for d in strategies["policy"].history
            ],
            "wall_seconds": round(time.perf_counter() - t0, 1),
        }

    def _retrain(self, strategy: _Strategy, month: str, row: dict[str, Any]) -> None:
        cand = self.candidate(month)
        strategy.retrains += 1
        strategy.cpu += cand.cpu_seconds
        passed = self.gate(strategy, cand, month)
        if passed:
            strategy.champion, strategy.promotions = cand, strategy.promotions + 1
        verdict = "promoted" if passed else "rejected by gate"
        prefix = row["after_month"] + "; " if row["after_month"] else ""
        row["after_month"] = f"{prefix}retrained {cand.name}: {verdict}"


def run_backtest(settings: Settings, months: Sequence[str] | None = None) -> dict[str, Any]:
    """The backtest document (rows, summary, payoff) over ``months`` (default: the dataset's batches)."""
    from pipelines.data.landing import available_batches

    chosen = list(months) if months else available_batches(settings)
    frames, source = load_months(settings, chosen)
    doc = Backtest(settings, frames, chosen).run()
    doc["data"] = source
    return doc


def default_path(settings: Settings) -> Path:
    return settings.paths.reports / "demo" / "backtest.json"


def write(doc: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(path)
    return path


def format_table(doc: Mapping[str, Any]) -> str:
    """The month x strategy table and the summary, as text (printed by the CLI)."""
    by: dict[str, dict[str, Any]] = {}
    for r in doc["rows"]:
        by.setdefault(r["month"], {})[r["strategy"]] = r
    lines = [
        f"{doc['dataset']}: {doc['metric']} per served month ({doc['config']['window_strategy']} window)"
    ]
    lines.append(f"{'month':<9}" + "".join(f"{s:>10}" for s in STRATEGIES) + "  policy after month")
    for month, cells in by.items():
        vals = "".join(f"{cells[s]['value']:>10.4f}" if s in cells else f"{'':>10}" for s in STRATEGIES)
        lines.append(f"{month:<9}{vals}  {cells.get('policy', {}).get('after_month', '')}")
    for s in doc["summary"]:
        lines.append(
            f"{s['strategy']:<8} mean {s['mean']:.4f} gain {s['mean_gain']:+.4f} "
            f"worst {s['worst_month_gain']:+.4f} "
            f"retrains {s['retrains']} promotions {s['promotions']} cpu {s['train_cpu_seconds']:.1f}s"
        )
    p = doc["payoff"]
    lines.append(f"payoff met: {p['met']}  " + json.dumps(p.get("checks", p.get("reason")), default=str))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.replay.backtest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--config", type=Path, help="pipeline YAML (default: MLOPS_CONFIG or config/pipeline.yaml)"
    )
    parser.add_argument("--months", type=int, default=0, help="only the first N batches (default: all)")
    parser.add_argument(
        "--out", type=Path, help="output JSON (default: <paths.root>/reports/demo/backtest.json)"
    )
    args = parser.parse_args(argv)
    settings = load_settings(args.config) if args.config else load_settings()
    from pipelines.data.landing import available_batches

    months = available_batches(settings)
    if args.months:
        months = months[: args.months]
    doc = run_backtest(settings, months)
    path = write(doc, args.out or default_path(settings))
    print(format_table(doc))
    print(f"\nbacktest: {path} ({doc['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
