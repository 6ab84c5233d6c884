"""Hyperparameter tuning within a wall-clock budget; the winner is only ever a *candidate*.

Why it is built this way:

* **No peeking at the gate's holdout.** Trials are scored on the newest batch of the
  training window (trained on the batches before it), never on the holdout batch
  the evaluation gate uses: a configuration picked on the gate's own data would
  arrive at the gate with an optimistic score.
* **The default configuration is trial 0**, so the report always states the gain
  over what training would have done anyway, on the same validation rows.
* **Budget first.** Optuna stops starting trials after ``timeout``; a callback also
  stops when the slowest trial so far would no longer fit in what is left, so the
  study ends inside the budget unless one trial is slower than all before it.
* **Same path as every model.** The best configuration is trained by
  ``pipelines.training.run_training`` with ``training.estimator_params``
  replaced: the same data window, evaluation, gate and registration (``@challenger``
  only if it passes; :mod:`pipelines.optimize.propose`). The canary release then
  decides about ``@champion``.

The trial rows, the MLflow experiment and the report folder are shared with model choice
(:mod:`pipelines.optimize.experiment`).
"""

from __future__ import annotations

import time
from typing import Any

from pipelines.config import SearchDim, Settings
from pipelines.core.observability import get_logger, log_context, record_event, write_json_atomic
from pipelines.core.registry import client_for
from pipelines.optimize.cost import cost_metrics, measure_resources
from pipelines.optimize.errors import TuningError
from pipelines.optimize.experiment import inner_split, optimize_experiment, report_dir
from pipelines.optimize.propose import propose_candidate

log = get_logger(__name__)

TUNING_EVENT = "optimize_tuning"


def suggest(trial: Any, space: dict[str, SearchDim]) -> dict[str, Any]:
    """Draw one configuration from the configured search space."""
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "categorical":
            params[name] = trial.suggest_categorical(name, dim.choices)
        elif dim.type == "int":
            assert dim.low is not None and dim.high is not None
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            assert dim.low is not None and dim.high is not None
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return params


def _estimator_defaults(settings: Settings) -> dict[str, Any]:
    """The parameters training would use today: configured values over the class defaults."""
    from pipelines.training import make_estimator

    est = make_estimator(settings.dataset, settings.training)
    accepted = est.get_params(deep=False)
    unknown = sorted(set(settings.optimize.tuning_search_space) - set(accepted))
    if unknown:
        raise TuningError(
            f"optimize.tuning_search_space names {unknown}, which {type(est).__name__} does not accept "
            f"(it accepts {sorted(accepted)}); fix the search space for training.estimator"
        )
    return {k: accepted[k] for k in settings.optimize.tuning_search_space}


def tune(
    settings: Settings,
    window: list[str] | int | str | None = None,
    holdout: str | None = None,
    *,
    budget_seconds: float | None = None,
    propose: bool = True,
) -> dict[str, Any]:
    """Run the study and (``propose=True``) send its winner through the normal training chain.

    Returns the report (also written as JSON under ``reports/optimize/tuning/``):
    ``status`` is "skipped" (budget 0), "no_improvement" (the default configuration
    won) or "proposed" (the winner was trained, evaluated and gated; ``candidate``
    holds the registration, ``candidate.alias == "challenger"`` only if it passed).
    """
    budget = settings.optimize.tuning_budget_seconds if budget_seconds is None else budget_seconds
    base: dict[str, Any] = {"budget_seconds": budget, "dataset": settings.dataset.name}
    if budget <= 0:
        out = {
            **base,
            "status": "skipped",
            "reason": "skipped because budget is 0 (optimize.tuning_budget_seconds)",
        }
        record_event(settings.paths.events, TUNING_EVENT, "skipped-budget-0", **out)
        log.warning("tuning skipped", reason=out["reason"])
        return out

    import mlflow
    import optuna
    from threadpoolctl import threadpool_limits

    from pipelines import training
    from pipelines.training import build_pipeline, predict_scores, resolve_window

    resolved = resolve_window(settings, window, holdout)
    task = settings.dataset.target.task
    metric = settings.gate.for_task(task).primary_metric
    higher = training.metrics.spec(task, metric).higher_is_better
    defaults = _estimator_defaults(settings)
    train, valid, how = inner_split(settings, resolved.train_batches)
    space = settings.optimize.tuning_search_space
    exp_id = optimize_experiment(settings)
    country = settings.optimize.cost.country_iso_code

    fit_seconds: list[float] = []
    clock: dict[str, float] = {}

    def fit_and_score(name: str, params: dict[str, Any]) -> float:
        """One child run: fit on the trial-training rows, score on the validation batch."""
        cfg = settings.training.model_copy(
            update={"estimator_params": {**settings.training.estimator_params, **params}}
        )
        with mlflow.start_run(run_name=name, nested=True, experiment_id=exp_id):
            mlflow.log_params({f"est.{k}": v for k, v in params.items()})
            mlflow.set_tags({"mlops.kind": "tuning_trial", "trial": name})
            with measure_resources(name, country_iso_code=country, energy=False) as usage:
                model = build_pipeline(settings.dataset, cfg)
                model.fit(train.x, train.y)
                scores = predict_scores(model, valid.x, task)
            value = training.metrics.compute(task, valid.y.to_numpy(), scores, [metric])[metric]
            mlflow.log_metrics({f"valid_{metric}": value, **cost_metrics("trial", usage)})
        fit_seconds.append(usage.wall_seconds)
        return value

    def objective(trial: optuna.Trial) -> float:
        return fit_and_score(f"trial {trial.number}", suggest(trial, space))

    def stop_before_overrun(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if max(fit_seconds) > budget - (time.perf_counter() - clock["start"]):
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=settings.training.seed)
    study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=sampler)
    with (
        mlflow.start_run(run_name=f"tuning {resolved.label}", experiment_id=exp_id) as parent,
        log_context(run_id=parent.info.run_id),
        measure_resources("tuning", country_iso_code=country) as study_usage,
        threadpool_limits(settings.optimize.threads),
    ):
        mlflow.set_tags(
            {
                "mlops.kind": "tuning",
                "mlops.window": resolved.label,
                "tuning.validation": how,
                "tuning.sampler": f"TPE(seed={settings.training.seed})",
            }
        )
        mlflow.log_params({"budget_seconds": budget, "max_trials": settings.optimize.tuning_max_trials})
        clock["start"] = time.perf_counter()
        # The current configuration is scored first, inside the budget: it is the baseline
        # every trial must beat, and its fit time predicts whether a trial still fits.
        default_score = fit_and_score("default", defaults)
        left = budget - (time.perf_counter() - clock["start"])
        if fit_seconds[0] <= left:
            study.optimize(
                objective,
                n_trials=settings.optimize.tuning_max_trials,
                timeout=left,
                callbacks=[stop_before_overrun],
                catch=(ValueError,),
            )
    elapsed = study_usage.wall_seconds
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    best = study.best_trial if done else None
    best_score = float(best.value) if best is not None and best.value is not None else None
    gain = (
        None if best_score is None else training.metrics.improvement(task, metric, best_score, default_score)
    )
    client = client_for(settings)
    summary = {
        f"default_valid_{metric}": default_score,
        "trials_completed": float(len(done)),
        "trials_failed": float(len(failed)),
        "elapsed_seconds": elapsed,
        **cost_metrics("tuning", study_usage),
    }
    if best_score is not None and gain is not None:
        summary[f"best_valid_{metric}"] = best_score
        summary[f"gain_valid_{metric}"] = gain
    for k, v in summary.items():
        client.log_metric(parent.info.run_id, k, v)

    report: dict[str, Any] = {
        **base,
        "parent_run_id": parent.info.run_id,
        "experiment_id": exp_id,
        "window": resolved.to_dict(),
        "validation": how,
        "metric": metric,
        "direction": "maximize" if higher else "minimize",
        "elapsed_seconds": round(elapsed, 3),
        "fit_seconds": [round(x, 3) for x in fit_seconds],
        "max_trial_seconds": round(max(fit_seconds), 3),
        "trials_completed": len(done),
        "trials_failed": len(failed),
        "default_params": defaults,
        "default_score": default_score,
        "best_trial": None if best is None else best.number,
        "best_params": None if best is None else best.params,
        "best_score": best_score,
        "gain": gain,
        "cost": study_usage.to_dict(),
        "candidate": None,
    }
    if best is None:
        report.update(
            status="no_trials",
            reason=f"skipped because the budget ran out after the baseline fit ({fit_seconds[0]:.1f} s of "
            f"{budget:g} s): no trial fitted in what was left; no candidate proposed",
        )
    elif gain is None or gain <= 0:
        report.update(
            status="no_improvement",
            reason=f"no trial beat the current configuration on validation ({how}); no candidate proposed",
        )
    elif not propose:
        report.update(status="found", reason="propose=False: the winner was not trained as a candidate")
    else:
        client.set_tag(parent.info.run_id, "tuning.best_params", str(best.params))
        report.update(
            status="proposed", reason=f"best trial {best.number} sent through the normal training gate"
        )
        report["candidate"] = propose_candidate(settings, best.params, resolved.to_dict(), parent.info.run_id)
        client.set_tag(parent.info.run_id, "tuning.candidate_version", str(report["candidate"]["version"]))
    path = report_dir(settings, "tuning") / f"{parent.info.run_id}.json"
    report["report_path"] = str(path)
    write_json_atomic(path, report)
    record_event(
        settings.paths.events,
        TUNING_EVENT,
        parent.info.run_id,
        **{k: v for k, v in report.items() if k not in {"cost"}},
    )
    log.info(
        "tuning finished",
        status=report["status"],
        trials=len(done),
        elapsed=round(elapsed, 1),
        best=best_score,
        default=default_score,
    )
    return report
