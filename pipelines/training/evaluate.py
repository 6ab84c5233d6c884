"""Score the candidate and the current champion on the same fresh holdout.

Everything the gate needs is measured here and stored as one JSON document in
the candidate's MLflow run (``evaluation/evaluation.json``): overall metrics of
both models, per-slice metrics, behavioural test results and permutation
importance, plus ROC / calibration (or residual) plots. The gate itself
(:mod:`pipelines.training.gate`) is a pure function of that document and config.

Models are scored through ``mlflow.pyfunc`` with signature enforcement: what is
judged is the logged artifact, exactly as serving will load it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from threadpoolctl import threadpool_limits

from pipelines.config import BehaviouralCheck, Settings
from pipelines.core.observability import get_logger, log_context
from pipelines.training import metrics
from pipelines.training.errors import ChampionUnavailableError, TrainingConfigError, TrainingDataError
from pipelines.training.features import prepare_xy, scores_from_pyfunc
from pipelines.training.registry import champion_version
from pipelines.training.tracking import configure_tracking, evaluation_config_hash
from pipelines.training.window import TrainingWindow, load_window

log = get_logger(__name__)

EVALUATION_ARTIFACT = "evaluation/evaluation.json"
MISSING_SLICE = "__missing__"


def score(model: Any, x: pd.DataFrame, task: str) -> np.ndarray:
    return scores_from_pyfunc(model.predict(x), task)


def _metric_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", text)


def load_champion(settings: Settings) -> tuple[Any | None, Any | None]:
    """(model version, pyfunc model) of ``@champion``, or (None, None) when there is none.

    A champion alias whose artifact cannot be loaded is an error, not "no champion".
    """
    mv = champion_version(settings)
    if mv is None:
        return None, None
    uri = f"models:/{settings.mlflow.registered_model}/{mv.version}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise ChampionUnavailableError(
            f"champion {settings.mlflow.registered_model} v{mv.version} cannot be loaded "
            f"(source {mv.source}, run {mv.run_id}): {type(exc).__name__}: {str(exc)[:400]}. "
            "The candidate cannot be compared; nothing was registered and no alias moved."
        ) from exc
    return mv, model


def perturb(x: pd.DataFrame, check: BehaviouralCheck, settings: Settings) -> pd.DataFrame:
    """A copy of x with the check's perturbation applied to its column."""
    features = settings.dataset.features
    if check.column not in features.all:
        raise TrainingConfigError(
            f"behavioural check {check.name!r}: column {check.column!r} is not a feature of the "
            f"dataset contract ({features.all})"
        )
    out = x.copy()
    if check.op == "set":
        if check.column in features.numeric:
            out[check.column] = float(check.value)
        else:
            out[check.column] = str(check.value)
        return out
    if check.column not in features.numeric or isinstance(check.value, str):
        raise TrainingConfigError(
            f"behavioural check {check.name!r}: op {check.op!r} needs a numeric column and value "
            f"(column {check.column!r}, value {check.value!r})"
        )
    value = float(check.value)
    out[check.column] = out[check.column] + value if check.op == "add" else out[check.column] * value
    return out


def run_behavioural(model: Any, x: pd.DataFrame, settings: Settings) -> list[dict[str, Any]]:
    """Mean prediction shift of each configured perturbation on a seeded holdout sample."""
    task = settings.dataset.target.task
    results = []
    for i, check in enumerate(settings.gate.behavioural):
        # add/multiply leave a missing value missing: sample rows that have one.
        pool = x if check.op == "set" or check.column not in x else x[x[check.column].notna()]
        n = min(check.sample_rows, len(pool))
        if n == 0:
            raise TrainingDataError(
                f"behavioural check {check.name!r}: no holdout row has a value in {check.column!r}"
            )
        sample = pool.sample(n=n, random_state=settings.training.seed + i)
        both = score(model, pd.concat([sample, perturb(sample, check, settings)], ignore_index=True), task)
        delta = both[n:] - both[:n]
        results.append(
            {
                "name": check.name,
                "kind": check.kind,
                "column": check.column,
                "op": check.op,
                "value": check.value,
                "expect": check.expect,
                "rows": int(n),
                "mean_shift": float(np.mean(delta)),
                "mean_abs_shift": float(np.mean(np.abs(delta))),
            }
        )
    return results


def slice_metrics(
    settings: Settings,
    slices: pd.DataFrame,
    y: np.ndarray,
    cand: np.ndarray,
    champ: np.ndarray | None,
) -> list[dict[str, Any]]:
    """Primary metric per group of each slice column, for candidate and champion."""
    task = settings.dataset.target.task
    primary = settings.gate.for_task(task).primary_metric
    spec = metrics.spec(task, primary)
    out: list[dict[str, Any]] = []
    for col in slices.columns:
        values = slices[col].astype(object).where(slices[col].notna(), MISSING_SLICE).astype(str)
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            rows = int(mask.sum())
            entry: dict[str, Any] = {"column": col, "value": value, "rows": rows, "gated": False}
            if rows < settings.gate.slice_min_rows:
                entry["note"] = f"fewer than gate.slice_min_rows={settings.gate.slice_min_rows} rows"
            elif spec.needs_both_classes and len(np.unique(y[mask])) < 2:
                entry["note"] = "single class in this slice"
            else:
                entry["gated"] = True
                entry["candidate"] = spec.fn(y[mask], cand[mask])
                if champ is not None:
                    entry["champion"] = spec.fn(y[mask], champ[mask])
            out.append(entry)
    return out


def permutation_importance(
    model: Any, x: pd.DataFrame, y: np.ndarray, settings: Settings
) -> dict[str, float]:
    """Mean loss of the primary metric when one feature is shuffled (seeded, on a sample)."""
    task = settings.dataset.target.task
    primary = settings.gate.for_task(task).primary_metric
    spec = metrics.spec(task, primary)
    n = min(settings.training.importance_rows, len(x))
    rng = np.random.default_rng(settings.training.seed)
    idx = rng.choice(len(x), size=n, replace=False)
    xs, ys = x.iloc[idx].reset_index(drop=True), y[idx]
    # One predict call over every shuffled copy: per-call overhead (schema checks, thread
    # start-up per tree) dominates on small frames.
    copies, owners = [xs], ["__base__"]
    for col in x.columns:
        for _ in range(settings.training.importance_repeats):
            shuffled = xs.copy()
            shuffled[col] = shuffled[col].to_numpy()[rng.permutation(n)]
            copies.append(shuffled)
            owners.append(col)
    scores = score(model, pd.concat(copies, ignore_index=True), task).reshape(len(copies), n)
    base = spec.fn(ys, scores[0])
    drops: dict[str, list[float]] = {}
    for owner, s in zip(owners[1:], scores[1:], strict=True):
        drops.setdefault(owner, []).append(metrics.improvement(task, primary, base, spec.fn(ys, s)))
    out = {col: float(np.mean(v)) for col, v in drops.items()}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _plots(
    settings: Settings,
    y: np.ndarray,
    cand: np.ndarray,
    champ: np.ndarray | None,
    champ_label: str,
    importance: dict[str, float],
) -> dict[str, Any]:
    """Figures keyed by artifact path (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    task = settings.dataset.target.task
    series = [("candidate", cand)] + ([(champ_label, champ)] if champ is not None else [])
    if task == "classification":
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import roc_curve

        fig, ax = plt.subplots(figsize=(5, 5))
        for label, s in series:
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{label} (AUC {metrics.CLASSIFICATION['roc_auc'].fn(y, s):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on holdout")
        ax.legend(loc="lower right")
        figs["evaluation/roc.png"] = fig
        fig, ax = plt.subplots(figsize=(5, 5))
        for label, s in series:
            frac, mean_pred = calibration_curve(y, s, n_bins=10, strategy="quantile")
            ax.plot(mean_pred, frac, "o-", label=label)
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Calibration")
        ax.legend(loc="upper left")
        figs["evaluation/calibration.png"] = fig
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(cand, y - cand, s=4, alpha=0.4)
        ax.axhline(0, color="k", lw=1)
        ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals on holdout")
        figs["evaluation/residuals.png"] = fig
    top = list(importance.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set(xlabel="mean loss of the primary metric when shuffled", title="Permutation importance")
    fig.tight_layout()
    figs["evaluation/feature_importance.png"] = fig
    return figs


def _cached(run_id: str, champion: str | None, eval_hash: str) -> dict[str, Any] | None:
    """The stored evaluation if it was made against the same champion and gate config."""
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    if EVALUATION_ARTIFACT not in names:
        return None
    doc = mlflow.artifacts.load_dict(f"runs:/{run_id}/{EVALUATION_ARTIFACT}")
    prev = (doc.get("champion") or {}).get("version")
    if prev == champion and doc.get("eval_config_hash") == eval_hash:
        return doc
    return None


def evaluate_candidate(settings: Settings, train_result: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the candidate of ``train_result`` against ``@champion`` on its holdout.

    Returns a reference: ``{run_id, evaluation_uri, champion_version, candidate_primary,
    champion_primary, primary_metric, cached}``; the full document is the run artifact.

    Raises:
        ChampionUnavailableError: a champion exists but cannot be loaded or cannot score.
        TrainingConfigError: a gate metric or behavioural check does not fit the contract.
    """
    configure_tracking(settings)
    run_id = str(train_result["run_id"])
    contract = settings.dataset
    task = contract.target.task
    primary = settings.gate.for_task(task).primary_metric
    metrics.spec(task, primary)  # unknown metric names fail before any work
    for name in settings.gate.for_task(task).absolute:
        metrics.spec(task, name)
    window = TrainingWindow.from_dict(train_result["window"])
    eval_hash = evaluation_config_hash(settings)

    with log_context(run_id=run_id), threadpool_limits(limits=settings.training.threads or None):
        mv, champion = load_champion(settings)
        champion_ver = str(mv.version) if mv is not None else None
        cached = _cached(run_id, champion_ver, eval_hash)
        if cached is not None:
            log.info("evaluation unchanged since last run; reusing", champion_version=champion_ver)
            return _reference(run_id, cached, primary, cached=True)

        holdout_df = load_window(settings, (window.holdout_batch,))
        holdout = prepare_xy(contract, holdout_df)
        labelled = holdout_df[holdout_df[contract.target.name].notna()].reset_index(drop=True)
        y = holdout.y.to_numpy()
        candidate = mlflow.pyfunc.load_model(str(train_result["model_uri"]))
        cand = score(candidate, holdout.x, task)
        champ: np.ndarray | None = None
        champion_doc: dict[str, Any] | None = None
        if champion is not None:
            try:
                champ = score(champion, holdout.x, task)
            except Exception as exc:  # schema mismatch, sklearn error: either way no fair comparison
                raise ChampionUnavailableError(
                    f"champion {settings.mlflow.registered_model} v{champion_ver} cannot score holdout "
                    f"{window.holdout_batch} with the current contract: {str(exc)[:400]}"
                ) from exc
            champion_doc = {
                "version": champion_ver,
                "run_id": getattr(mv, "run_id", None),
                "metrics": metrics.compute(task, y, champ),
            }
        slice_cols = [c for c in contract.slice_columns if c in labelled.columns]
        missing_slices = sorted(set(contract.slice_columns) - set(slice_cols))
        if missing_slices:
            raise TrainingConfigError(f"dataset.slice_columns {missing_slices} are not in the holdout")
        importance = permutation_importance(candidate, holdout.x, y, settings)
        doc: dict[str, Any] = {
            "run_id": run_id,
            "model_uri": train_result["model_uri"],
            "task": task,
            "primary_metric": primary,
            "window": window.to_dict(),
            "holdout_batch": window.holdout_batch,
            "holdout_rows": int(holdout.rows),
            "holdout_dropped_null_target": int(holdout.dropped_null_target),
            "eval_config_hash": eval_hash,
            "candidate": {"metrics": metrics.compute(task, y, cand)},
            "champion": champion_doc,
            "slices": slice_metrics(settings, labelled[slice_cols], y, cand, champ),
            "behavioural": run_behavioural(candidate, holdout.x, settings),
            "feature_importance": importance,
        }
        figs = _plots(
            settings, y, cand, champ, f"champion v{champion_ver}" if champion_ver else "", importance
        )
        # Logged through the client into the finished training run: no run is resumed, so its
        # status never flips, and a caller's own active run (e.g. a tuning parent) is untouched.
        client = mlflow.MlflowClient()
        now = int(time.time() * 1000)
        client.log_batch(
            run_id, metrics=[Metric(k, v, now, 0) for k, v in _flat_metrics(doc).items()], synchronous=True
        )
        for path, fig in figs.items():
            client.log_figure(run_id, fig, path)
        client.log_dict(run_id, importance, "evaluation/feature_importance.json")
        client.log_dict(run_id, doc, EVALUATION_ARTIFACT)  # written last: its presence = complete
        client.set_tag(run_id, "gate.champion_version", champion_ver or "none")
        import matplotlib.pyplot as plt

        for fig in figs.values():
            plt.close(fig)
        log.info(
            "candidate evaluated",
            holdout=window.holdout_batch,
            primary=primary,
            candidate=round(doc["candidate"]["metrics"].get(primary, float("nan")), 4),
            champion_version=champion_ver,
        )
        return _reference(run_id, doc, primary, cached=False)


def _flat_metrics(doc: dict[str, Any]) -> dict[str, float]:
    out = {f"holdout_{k}": v for k, v in doc["candidate"]["metrics"].items()}
    if doc["champion"]:
        out.update({f"champion_holdout_{k}": v for k, v in doc["champion"]["metrics"].items()})
    for s in doc["slices"]:
        if s["gated"]:
            out[_metric_key(f"slice_{s['column']}_{s['value']}_{doc['primary_metric']}")] = s["candidate"]
    for b in doc["behavioural"]:
        out[_metric_key(f"behaviour_{b['name']}_mean_shift")] = b["mean_shift"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _reference(run_id: str, doc: dict[str, Any], primary: str, cached: bool) -> dict[str, Any]:
    champion = doc.get("champion") or {}
    return {
        "run_id": run_id,
        "evaluation_uri": f"runs:/{run_id}/{EVALUATION_ARTIFACT}",
        "primary_metric": primary,
        "candidate_primary": doc["candidate"]["metrics"].get(primary),
        "champion_version": champion.get("version"),
        "champion_primary": (champion.get("metrics") or {}).get(primary),
        "cached": cached,
    }


def load_evaluation(evaluation_uri: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Read a run's evaluation document; a ``runs:/`` URI resolves against ``tracking_uri``.

    Without it MLflow would fall back to ``sqlite:///mlflow.db`` in the working directory,
    i.e. the wrong store (or a read-only folder in the container).
    """
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.artifacts.load_dict(evaluation_uri)
