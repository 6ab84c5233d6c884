"""Score the candidate and the current champion on the same fresh holdout; record the gate's verdict.

Everything the gate needs is measured here and stored as one JSON document in
the candidate's MLflow run (``evaluation/evaluation.json``): overall metrics of
both models, per-slice metrics, behavioural test results and permutation
importance, plus ROC / calibration (or residual) plots. The gate itself
(:mod:`pipelines.training.verdict`) is a pure function of that document and config;
:func:`gate_candidate` records its verdict in the same run and as a ``gate_verdict`` event.

Models are scored through ``mlflow.pyfunc`` with signature enforcement: what is
judged is the logged artifact, exactly as serving will load it.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, RunTag
from threadpoolctl import threadpool_limits

from pipelines.config import BehaviouralCheck, Settings
from pipelines.core.observability import get_logger, log_context, record_event
from pipelines.core.registry import MAX_TAG_CHARS, champion_version, client_for, version_location
from pipelines.core.stats import auc_se, bootstrap_se, mean_se, paired_auc_difference, paired_bootstrap_se
from pipelines.training import metrics
from pipelines.training.contracts import EvaluationRef, GateVerdict, TrainedCandidate
from pipelines.training.errors import ChampionUnavailableError, TrainingConfigError, TrainingDataError
from pipelines.training.features import prepare_xy, scores_from_pyfunc
from pipelines.training.plots import evaluation_figures
from pipelines.training.tracking import configure_tracking, evaluation_config_hash
from pipelines.training.verdict import decide, evidence_text
from pipelines.training.window import load_window

log = get_logger(__name__)

EVALUATION_ARTIFACT = "evaluation/evaluation.json"
MISSING_SLICE = "__missing__"
#: Bumped when the document's shape changes: a cached document of another schema is re-evaluated.
EVALUATION_SCHEMA = 2
#: Bootstrap seed: fixed, so the same models on the same rows always get the same verdict.
BOOTSTRAP_SEED = 12


def score(model: Any, x: pd.DataFrame, task: str) -> np.ndarray:
    return scores_from_pyfunc(model.predict(x), task)


class PredictContractError(Exception):
    """The candidate's predict broke its contract on holdout rows (raised, NaN/inf, wrong shape).

    Internal to this module: :func:`evaluate_candidate` turns it into an evaluation document the
    gate rejects with the ``predict_contract`` criterion. A model that cannot predict is a bad
    candidate, not a failed infrastructure: retrying would give the same answer.
    """

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


def checked_score(model: Any, x: pd.DataFrame, task: str, stage: str) -> np.ndarray:
    """Scores of the candidate on ``x``, or :class:`PredictContractError` saying what broke.

    The contract: predict returns, for every input row, one finite score (a probability in
    [0, 1] for a classifier: ``(n, 2)`` or ``(n,)``; a value for a regressor: ``(n,)`` or
    ``(n, 1)``).
    """
    n = len(x)
    try:
        out = model.predict(x)
    except Exception as exc:  # whatever the model raises: it failed its contract on these rows
        raise PredictContractError(
            stage, f"predict raised {type(exc).__name__} on {n} rows: {str(exc)[:300]}"
        ) from exc
    try:
        arr = np.asarray(out, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise PredictContractError(stage, f"predict returned non-numeric output: {exc}") from exc
    ok_shapes = [(n,), (n, 2)] if task == "classification" else [(n,), (n, 1)]
    if arr.shape not in ok_shapes:
        raise PredictContractError(
            stage, f"predict returned shape {arr.shape} for {n} rows; expected one of {ok_shapes}"
        )
    scores = scores_from_pyfunc(arr, task)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise PredictContractError(
            stage,
            f"predict returned {bad.size} non-finite scores (NaN/inf) of {n} rows "
            f"(first at row {int(bad[0])}: {scores[bad[0]]})",
        )
    if task == "classification" and (scores.min() < 0 or scores.max() > 1):
        raise PredictContractError(
            stage, f"probabilities outside [0, 1]: min {scores.min():.4g}, max {scores.max():.4g}"
        )
    return scores


def compare(
    settings: Settings, y: np.ndarray, cand: np.ndarray, champ: np.ndarray, seed: int
) -> dict[str, Any]:
    """The paired comparison of candidate and champion on the same rows (primary metric).

    ``improvement`` is signed so that positive means the candidate is better; ``se`` is the
    standard error of that difference: DeLong's for ROC AUC (closed form, exact for ties), a
    seeded paired bootstrap for any other metric. The gate turns these into a harm test.
    """
    task = settings.dataset.target.task
    primary = settings.gate.for_task(task).primary_metric
    spec = metrics.spec(task, primary)
    if primary == "roc_auc":
        a1, a2, var = paired_auc_difference(y, cand, champ)
        return {
            "method": "delong_paired",
            "rows": int(y.size),
            "candidate": a1,
            "champion": a2,
            "improvement": a1 - a2,
            "se": math.sqrt(var) if math.isfinite(var) else float("nan"),
        }
    c, p = spec.fn(y, cand), spec.fn(y, champ)
    se = paired_bootstrap_se(y, cand, champ, spec.fn, settings.gate.bootstrap_resamples, seed)
    return {
        "method": "paired_bootstrap",
        "rows": int(y.size),
        "candidate": c,
        "champion": p,
        "improvement": metrics.improvement(task, primary, c, p),
        "se": se,
    }


def primary_se(settings: Settings, y: np.ndarray, cand: np.ndarray) -> float:
    """Standard error of the candidate's own primary metric (reported with the absolute bar)."""
    task = settings.dataset.target.task
    primary = settings.gate.for_task(task).primary_metric
    if primary == "roc_auc":
        return auc_se(y, cand)[1]
    spec = metrics.spec(task, primary)
    return bootstrap_se(y, cand, spec.fn, settings.gate.bootstrap_resamples, BOOTSTRAP_SEED)


def measure_latency(candidate: Any, champion: Any, x: pd.DataFrame, settings: Settings) -> dict[str, Any]:
    """Wall time (ms) of batch predict calls of both models on the same rows, interleaved.

    Interleaving puts both models under the same machine load; the gate compares the best call of
    each (the least disturbed by other processes). Through pyfunc, as serving calls the model.
    """
    gate = settings.gate
    rows = x.head(gate.latency_rows)
    task = settings.dataset.target.task
    checked_score(candidate, rows, task, "latency")  # warm-up (lazy imports, caches), checked
    champion.predict(rows)
    cand_ms, champ_ms = [], []
    for _ in range(gate.latency_repeats):
        t0 = time.perf_counter()
        candidate.predict(rows)
        cand_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        champion.predict(rows)
        champ_ms.append((time.perf_counter() - t0) * 1000)
    return {"rows": len(rows), "candidate_ms": cand_ms, "champion_ms": champ_ms}


def _metric_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", text)


def load_champion(settings: Settings) -> tuple[Any | None, Any | None]:
    """(model version, pyfunc model) of ``@champion``, or (None, None) when there is none.

    A champion alias whose artifact cannot be loaded is an error, not "no champion".
    """
    mv = champion_version(settings)
    if mv is None:
        return None, None
    try:
        model = mlflow.pyfunc.load_model(version_location(settings, mv.version))
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
    """Mean prediction shift of each configured perturbation on a seeded holdout sample.

    With the standard errors of the mean shift and of the mean |shift| over the sampled rows, so
    the gate can judge an effect against its own uncertainty. The sample is seeded by the check's
    name, not by the training seed: every candidate is perturbed on the same rows.
    """
    task = settings.dataset.target.task
    results = []
    for check in settings.gate.behavioural:
        # add/multiply leave a missing value missing: sample rows that have one.
        pool = x if check.op == "set" or check.column not in x else x[x[check.column].notna()]
        n = min(check.sample_rows, len(pool))
        if n == 0:
            raise TrainingDataError(
                f"behavioural check {check.name!r}: no holdout row has a value in {check.column!r}"
            )
        sample = pool.sample(n=n, random_state=zlib.crc32(check.name.encode()))
        both = checked_score(
            model,
            pd.concat([sample, perturb(sample, check, settings)], ignore_index=True),
            task,
            f"behavioural/{check.name}",
        )
        delta = both[n:] - both[:n]
        shift, shift_se = mean_se(delta)
        abs_shift, abs_shift_se = mean_se(np.abs(delta))
        results.append(
            {
                "name": check.name,
                "kind": check.kind,
                "column": check.column,
                "op": check.op,
                "value": check.value,
                "expect": check.expect,
                "rows": int(n),
                "mean_shift": shift,
                "mean_shift_se": shift_se,
                "mean_abs_shift": abs_shift,
                "mean_abs_shift_se": abs_shift_se,
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
    """Primary metric per group of each slice column, for candidate and champion, with the paired
    comparison (:func:`compare`) of each gated group."""
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
                    seed = BOOTSTRAP_SEED + zlib.crc32(f"{col}={value}".encode())
                    entry["comparison"] = compare(settings, y[mask], cand[mask], champ[mask], seed)
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
    scores = checked_score(model, pd.concat(copies, ignore_index=True), task, "importance").reshape(
        len(copies), n
    )
    base = spec.fn(ys, scores[0])
    drops: dict[str, list[float]] = {}
    for owner, s in zip(owners[1:], scores[1:], strict=True):
        drops.setdefault(owner, []).append(metrics.improvement(task, primary, base, spec.fn(ys, s)))
    out = {col: float(np.mean(v)) for col, v in drops.items()}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _cached(settings: Settings, run_id: str, champion: str | None, eval_hash: str) -> dict[str, Any] | None:
    """The stored evaluation if it was made against the same champion and gate config."""
    client = client_for(settings)
    names = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    if EVALUATION_ARTIFACT not in names:
        return None
    doc = load_evaluation(f"runs:/{run_id}/{EVALUATION_ARTIFACT}", settings.tracking_uri)
    prev = (doc.get("champion") or {}).get("version")
    if (
        prev == champion
        and doc.get("eval_config_hash") == eval_hash
        and doc.get("schema") == EVALUATION_SCHEMA
    ):
        return doc
    return None


def evaluate_candidate(settings: Settings, trained: TrainedCandidate) -> EvaluationRef:
    """Evaluate the candidate against ``@champion`` on its holdout.

    Returns a reference (the document's URI and headline figures); the full document is the
    run artifact.

    Raises:
        ChampionUnavailableError: a champion exists but cannot be loaded or cannot score.
        TrainingConfigError: a gate metric or behavioural check does not fit the contract.
    """
    configure_tracking(settings)
    run_id = trained.run_id
    contract = settings.dataset
    task = contract.target.task
    primary = settings.gate.for_task(task).primary_metric
    metrics.spec(task, primary)  # unknown metric names fail before any work
    for name in settings.gate.for_task(task).absolute:
        metrics.spec(task, name)
    window = trained.window
    eval_hash = evaluation_config_hash(settings)

    with log_context(run_id=run_id), threadpool_limits(limits=settings.training.threads or None):
        mv, champion = load_champion(settings)
        champion_ver = str(mv.version) if mv is not None else None
        cached = _cached(settings, run_id, champion_ver, eval_hash)
        if cached is not None:
            log.info("evaluation unchanged since last run; reusing", champion_version=champion_ver)
            return _reference(trained, cached, primary, cached=True)

        holdout_df = load_window(settings, (window.holdout_batch,))
        holdout = prepare_xy(contract, holdout_df)
        labelled = holdout_df[holdout_df[contract.target.name].notna()].reset_index(drop=True)
        y = holdout.y.to_numpy()
        candidate = mlflow.pyfunc.load_model(trained.model_uri)
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
        doc: dict[str, Any] = {
            "schema": EVALUATION_SCHEMA,
            "run_id": run_id,
            "model_uri": trained.model_uri,
            "task": task,
            "primary_metric": primary,
            "window": window.to_dict(),
            "holdout_batch": window.holdout_batch,
            "holdout_rows": int(holdout.rows),
            "holdout_dropped_null_target": int(holdout.dropped_null_target),
            "eval_config_hash": eval_hash,
            "champion": champion_doc,
        }
        cand: np.ndarray | None = None
        importance: dict[str, float] = {}
        try:
            cand = checked_score(candidate, holdout.x, task, "holdout")
            if champion_doc is not None and champ is not None:
                champion_doc["comparison"] = compare(settings, y, cand, champ, BOOTSTRAP_SEED)
            importance = permutation_importance(candidate, holdout.x, y, settings)
            doc.update(
                {
                    "predict_contract": {
                        "passed": True,
                        "stage": "holdout",
                        "detail": f"{len(cand)} holdout rows (and every perturbed copy) scored, all finite",
                    },
                    "candidate": {
                        "metrics": metrics.compute(task, y, cand),
                        "primary_se": primary_se(settings, y, cand),
                    },
                    "slices": slice_metrics(settings, labelled[slice_cols], y, cand, champ),
                    "behavioural": run_behavioural(candidate, holdout.x, settings),
                    "latency": (
                        measure_latency(candidate, champion, holdout.x, settings)
                        if champion is not None
                        else None
                    ),
                    "feature_importance": importance,
                }
            )
        except PredictContractError as exc:
            # A verdict, not an error: the gate rejects it with the predict_contract criterion and
            # registration records the rejection like any other.
            log.warning("candidate broke the predict contract", stage=exc.stage, detail=exc.detail)
            doc.update(
                {
                    "predict_contract": {"passed": False, "stage": exc.stage, "detail": exc.detail},
                    "candidate": {"metrics": {}},
                    "slices": [],
                    "behavioural": [],
                    "latency": None,
                    "feature_importance": {},
                }
            )
            cand = None
        figs = (
            evaluation_figures(
                settings, y, cand, champ, f"champion v{champion_ver}" if champion_ver else "", importance
            )
            if cand is not None
            else {}
        )
        # Logged through the client into the finished training run: no run is resumed, so its
        # status never flips, and a caller's own active run (e.g. a tuning parent) is untouched.
        client = client_for(settings)
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
            predict_contract="kept" if cand is not None else "broken",
        )
        return _reference(trained, doc, primary, cached=False)


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


def _reference(trained: TrainedCandidate, doc: dict[str, Any], primary: str, cached: bool) -> EvaluationRef:
    champion = doc.get("champion") or {}
    return EvaluationRef(
        candidate=trained,
        evaluation_uri=f"runs:/{trained.run_id}/{EVALUATION_ARTIFACT}",
        primary_metric=primary,
        candidate_primary=doc["candidate"]["metrics"].get(primary),
        champion_version=champion.get("version"),
        champion_primary=(champion.get("metrics") or {}).get(primary),
        cached=cached,
    )


def load_evaluation(evaluation_uri: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Read a run's evaluation document; a ``runs:/`` URI resolves against ``tracking_uri``.

    Without it MLflow would fall back to its process-global tracking URI (whichever store was
    configured last in this process, or ``sqlite:///mlflow.db`` in the working directory), i.e.
    the wrong store. The URI is passed to this one download, never set globally, so reading a
    document does not re-point MLflow for the rest of the process either.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-evaluation-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=evaluation_uri, dst_path=tmp, tracking_uri=tracking_uri
        )
        doc: dict[str, Any] = json.loads(Path(local).read_text(encoding="utf-8"))
    return doc


def criterion_tags(verdict: Any) -> dict[str, str]:
    """One run tag per criterion, ``gate.criterion.<kind>.<name>``: outcome and its evidence.

    E.g. ``fail est=-0.0412 ci=[-0.0581,-0.0243] margin=0.03 p=1.2e-05 p_adj=0.00021``, so the
    MLflow UI shows why without opening ``evaluation/verdict.json`` (each value within MLflow's
    tag limit).
    """
    out: dict[str, str] = {}
    for c in verdict.criteria:
        key = _metric_key(f"gate.criterion.{c.kind}.{c.name}").replace(" ", "_")[:250]
        out[key] = f"{c.outcome.value} {evidence_text(c.figures)}".strip()
    return out


def gate_candidate(settings: Settings, evaluation: EvaluationRef, document: dict[str, Any]) -> GateVerdict:
    """Decide (:func:`pipelines.training.verdict.decide`), log the verdict to the candidate's run
    and record a ``gate_verdict`` event.

    ``document`` is the evaluation document ``evaluation`` points to (the caller has read it,
    and registration needs it too).
    """
    task = settings.dataset.target.task
    verdict = decide(document, settings.gate, task)
    record = verdict.to_dict()
    run_id = str(document["run_id"])
    client = configure_tracking(settings)  # into the finished training run, without resuming it
    with log_context(run_id=run_id):
        tags = {
            "gate.verdict": record["verdict"],
            "gate.failed_criteria": ",".join(record["failed_criteria"]) or "none",
            **criterion_tags(verdict),
        }
        client.log_batch(
            run_id, tags=[RunTag(k, v[:MAX_TAG_CHARS]) for k, v in tags.items()], synchronous=True
        )
        client.log_dict(run_id, record, "evaluation/verdict.json")
        level = log.info if verdict.passed else log.warning
        level(
            f"gate {record['verdict']}",
            champion_version=verdict.champion_version,
            failures=record["failures"],
        )
    record_event(
        settings.paths.events,
        "gate_verdict",
        run_id,
        model_name=settings.mlflow.registered_model,
        run_id=run_id,
        verdict=record["verdict"],
        champion_version=verdict.champion_version,
        failed_criteria=record["failed_criteria"],
        failures=record["failures"],
        holdout_batch=document.get("holdout_batch"),
        metrics=(document.get("candidate") or {}).get("metrics"),
    )
    return GateVerdict(
        candidate=evaluation.candidate,
        evaluation_uri=evaluation.evaluation_uri,
        passed=verdict.passed,
        champion_version=verdict.champion_version,
        failed_criteria=tuple(verdict.failed_criteria),
        failures=tuple(verdict.failures),
    )
