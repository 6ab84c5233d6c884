"""Equal retrains and a corpus of bad challengers, judged by the real evaluation gate (issue 12).

Shared by ``tests/integration/test_gate_decisions.py`` and ``benchmarks/decisions_gate.py`` (one
builder, no copy). Everything goes through the code the DAG runs: ``train_candidate`` (real fits
on real months), ``evaluate_candidate``, ``gate_candidate``, ``register_candidate``; the champion
gets ``@champion`` as the canary release would give it.

A bad challenger is either trained by the real pipeline on broken data (shuffled labels) or the
champion's own fitted pipeline wrapped in an MLflow pyfunc model that breaks one thing (a slice,
a behaviour, the predict contract, speed). Wrapping the champion makes the defect the *only*
difference from the champion, so each kind must be caught by the criterion named in
:data:`EXPECTED`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from pipelines.config import PathsConfig, Settings
from pipelines.core.registry import CHAMPION, client_for
from pipelines.data.validated import MARKER, load_batches, validated_dir
from pipelines.training.contracts import GateVerdict, Registration, TrainedCandidate, TrainingWindow
from pipelines.training.evaluate import evaluate_candidate, gate_candidate, load_evaluation
from pipelines.training.registry import register_candidate
from pipelines.training.tracking import configure_tracking, stable_hash
from pipelines.training.train import train_candidate

#: kind -> prefix of the criterion (``kind:name``) that must reject it.
EXPECTED: dict[str, str] = {
    "slice_broken": "slice:carrier=",  # scores shuffled inside one mid-sized carrier
    "leaky_slice_broken": "slice:carrier=",  # memorised holdout labels, one carrier reversed
    "behaviour_inverted": "behavioural:",  # rain and low visibility make it predict *less* delay
    "constant": "absolute:roc_auc",  # the same probability for every flight
    "shuffled_labels": "absolute:roc_auc",  # trained by the pipeline on permuted labels
    "noisy_worse": "relative:roc_auc",  # champion + heavy row noise: clearly worse overall
    "nan_emitting": "predict_contract:",  # NaN on ~1 % of rows
    "raising": "predict_contract:",  # raises when a batch holds one of ~1 % of rows
    "wrong_shape": "predict_contract:",  # one score fewer than rows
    "slow": "latency:predict_time",  # +250 ms per predict call
}
SLOW_SECONDS = 0.25


def with_seed(settings: Settings, seed: int) -> Settings:
    return settings.model_copy(update={"training": settings.training.model_copy(update={"seed": seed})})


def publish(settings: Settings, batches: list[str]) -> None:
    """Land and validate (real GX gate) the months not yet published in ``settings``' root."""
    from pipelines.data.landing import land_batch
    from pipelines.data.validated import published
    from pipelines.quality import validate_batch

    for b in batches:
        if published(settings, b) is None:
            land_batch(settings, b)
            validate_batch(settings, b)
            assert published(settings, b) is not None, f"quality gate did not publish {b}"


def judge(settings: Settings, trained: TrainedCandidate) -> tuple[GateVerdict, Registration, dict[str, Any]]:
    """Evaluate, gate and register one candidate; returns the verdict, the registration and the
    verdict document (``evaluation/verdict.json``)."""
    evaluation = evaluate_candidate(settings, trained)
    document = load_evaluation(evaluation.evaluation_uri, settings.tracking_uri)
    verdict = gate_candidate(settings, evaluation, document)
    registration = register_candidate(settings, verdict, document)
    record = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/evaluation/verdict.json")
    return verdict, registration, record


def make_champion(settings: Settings, window: TrainingWindow) -> tuple[TrainedCandidate, float]:
    """Train (seed from settings), gate and register a model, then give it ``@champion``.

    Returns the candidate and the seconds ``train_candidate`` took.
    """
    t0 = time.perf_counter()
    trained = train_candidate(settings, window, "issue 12: champion")
    seconds = time.perf_counter() - t0
    _, registration, _ = judge(settings, trained)
    client_for(settings).set_registered_model_alias(
        settings.mlflow.registered_model, CHAMPION, registration.version
    )
    return trained, seconds


# --------------------------------------------------------------------------- the bad challengers
def _row_keys(x: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(x[columns].astype(str), index=False).to_numpy()


class BadModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """The champion's fitted pipeline with one defect (``kind``); P(positive) as a 1-D array."""

    def __init__(self, base: Any, kind: str, params: dict[str, Any]) -> None:
        self.base = base
        self.kind = kind
        self.params = params

    def _slice_broken(self, x: pd.DataFrame, p: np.ndarray, reverse: bool) -> np.ndarray:
        """Scores of the slice's rows shuffled among themselves (AUC ~0.5 there) or reversed."""
        mask = (x["carrier"].astype(str) == self.params["carrier"]).to_numpy()
        out = p.copy()
        if reverse:
            out[mask] = out[mask].min() + out[mask].max() - out[mask] if mask.any() else out[mask]
        else:
            out[mask] = out[mask][np.random.default_rng(7).permutation(int(mask.sum()))]
        return out

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        x = model_input
        p = np.asarray(self.base.predict_proba(x)[:, 1], dtype="float64")
        kind = self.kind
        keys = _row_keys(x, self.params["key_columns"])
        if kind == "slice_broken":
            return self._slice_broken(x, p, reverse=False)
        if kind == "leaky_slice_broken":
            known = self.params["labels"]
            label = np.array([known.get(int(k), np.nan) for k in keys])
            leaky = np.where(np.isnan(label), p, 0.15 * p + 0.85 * np.nan_to_num(label))
            return self._slice_broken(x, leaky, reverse=True)
        if kind == "behaviour_inverted":
            precip = np.nan_to_num(x["precip"].to_numpy(dtype="float64"), nan=0.0)
            visib = np.nan_to_num(x["visib"].to_numpy(dtype="float64"), nan=10.0)
            return np.clip(p - 0.5 * precip + 0.015 * (visib - 10.0), 0.0, 1.0)
        if kind == "constant":
            return np.full(len(x), 0.2)
        if kind == "noisy_worse":
            noise = (keys % 10_000) / 10_000.0 - 0.5  # deterministic per row, uniform(-0.5, 0.5)
            return np.clip(p + self.params["noise"] * noise, 0.0, 1.0)
        if kind == "nan_emitting":
            return np.where(keys % 100 == 0, np.nan, p)
        if kind == "raising":
            if np.any(keys % 100 == 0):
                raise ValueError("feature combination not supported by this model")
            return p
        if kind == "wrong_shape":
            return p[:-1]
        if kind == "slow":
            time.sleep(SLOW_SECONDS)
            return p
        raise ValueError(f"unknown bad challenger kind {kind!r}")


def _copy_store(settings: Settings, dst_root: Path, batches: list[str], shuffle: set[str]) -> Settings:
    """Another validated store with copies of ``batches``; labels permuted in ``shuffle`` batches."""
    dst = settings.model_copy(
        update={
            "paths": PathsConfig(root=dst_root),
            "mlflow": settings.mlflow.model_copy(update={"tracking_uri": settings.tracking_uri}),
        }
    )
    target = settings.dataset.target.name
    for b in batches:
        df = load_batches(settings, [b])
        if b in shuffle:
            df[target] = df[target].to_numpy()[np.random.default_rng(3).permutation(len(df))]
        folder = validated_dir(dst, b)
        folder.mkdir(parents=True, exist_ok=True)
        df.to_parquet(folder / "accepted.parquet", index=False)
        marker = json.loads((validated_dir(settings, b) / MARKER).read_text())
        marker["uri"] = f"file://{folder / 'accepted.parquet'}"
        (folder / MARKER).write_text(json.dumps(marker))
    return dst


def _pick_carrier(settings: Settings, base: Any, holdout: pd.DataFrame) -> str:
    """The carrier to break: a mid-sized slice (>= 1.2 x slice_min_rows, <= 7 % of the holdout,
    so the overall figure stays good) on which the champion ranks best (so breaking it is a
    clear loss, not noise around an already poor slice)."""
    from sklearn.metrics import roc_auc_score

    from pipelines.training.features import prepare_xy

    data = prepare_xy(settings.dataset, holdout)
    carriers = data.x["carrier"].astype(str).to_numpy()
    y = data.y.to_numpy()
    p = base.predict_proba(data.x)[:, 1]
    best: tuple[float, str] | None = None
    for c in np.unique(carriers):
        m = carriers == c
        if 1.2 * settings.gate.slice_min_rows <= m.sum() <= 0.07 * len(y) and len(np.unique(y[m])) == 2:
            auc = float(roc_auc_score(y[m], p[m]))
            best = max(best or (auc, str(c)), (auc, str(c)))
    if best is None:
        raise AssertionError("no mid-sized carrier slice in the holdout to break")
    return best[1]


def build_bad(
    settings: Settings, champion: TrainedCandidate, kind: str, scratch: Path
) -> tuple[Settings, TrainedCandidate]:
    """The bad challenger ``kind`` for ``champion``'s window; returns the settings to judge it with
    (the shuffled-label one lives in its own validated store) and the candidate."""
    window = champion.window
    if kind == "shuffled_labels":
        store = _copy_store(
            settings, scratch / kind, [*window.train_batches, window.holdout_batch], set(window.train_batches)
        )
        return store, train_candidate(store, window, "issue 12: bad challenger shuffled_labels")

    configure_tracking(settings)
    base = mlflow.sklearn.load_model(champion.model_uri)
    holdout = load_batches(settings, [window.holdout_batch])
    perturbed = {c.column for c in settings.gate.behavioural}
    key_columns = [c for c in settings.dataset.features.all if c not in perturbed]
    params: dict[str, Any] = {"key_columns": key_columns, "noise": 0.6}
    if kind in ("slice_broken", "leaky_slice_broken"):
        params["carrier"] = _pick_carrier(settings, base, holdout)
    if kind == "leaky_slice_broken":
        from pipelines.training.features import prepare_xy

        data = prepare_xy(settings.dataset, holdout)
        params["labels"] = dict(
            zip((int(k) for k in _row_keys(data.x, key_columns)), data.y.astype(float), strict=True)
        )
    info = mlflow.models.get_model_info(champion.model_uri)
    with mlflow.start_run(run_name=f"bad challenger {kind}") as run:
        logged = mlflow.pyfunc.log_model(
            name="model",
            python_model=BadModel(base, kind, params),
            signature=info.signature,
            pip_requirements=[],
        )
        mlflow.set_tags({"issue12.bad_challenger": kind})
    trained = TrainedCandidate(
        window=window,
        dedupe_key=stable_hash({"bad": kind, "champion": champion.run_id, "run": run.info.run_id}, 24),
        train_fingerprint=champion.train_fingerprint,
        holdout_fingerprint=champion.holdout_fingerprint,
        train_rows=champion.train_rows,
        dropped_null_target=champion.dropped_null_target,
        reason=f"issue 12: bad challenger {kind}",
        code=champion.code,
        config_hash=champion.config_hash,
        run_id=run.info.run_id,
        model_uri=logged.model_uri,
        model_id=logged.model_id,
        reused=False,
    )
    return settings, trained


def caught(kind: str, failed_criteria: list[str] | tuple[str, ...]) -> bool:
    """Whether the rejection names the criterion expected for ``kind``."""
    return any(c.startswith(EXPECTED[kind]) for c in failed_criteria)
