"""What a window is compared against: the champion's training window, scored by the champion.

The reference is the data the serving model learnt from (its ``data.train_batches``
registry tag, set by training), because "has the world moved away from what the model
knows?" is the question drift answers. The champion's scores on that data are the
reference for prediction drift, and its holdout figure (``metric.<name>`` tag) is the
baseline for performance. Without a champion (or without its tags) the caller's batch
ids, then ``monitoring.reference_batches``, are used, and what could not be known
(baseline, reference scores) is reported as not evaluated rather than guessed.

The sampled, scored reference is cached per (batches, model version, sampling) so only
the first window after a release pays for loading the model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.core.errors import PipelineError
from pipelines.core.observability import get_logger
from pipelines.data.validated import load_batches, published

log = get_logger(__name__)

Scorer = Callable[[pd.DataFrame], np.ndarray]

# Registry tags written by pipelines/training/registry.py::version_tags.
TRAIN_BATCHES_TAG = "data.train_batches"
HOLDOUT_BATCH_TAG = "data.holdout_batch"
METRIC_TAG_PREFIX = "metric."
IMPORTANCE_ARTIFACT = "evaluation/feature_importance.json"


class NoReferenceError(PipelineError):
    """No usable reference: no champion tags, no batch ids given, none configured."""


@dataclass(frozen=True)
class Reference:
    batches: list[str]
    source: str
    model_version: str | None = None
    holdout_batch: str | None = None
    baseline: dict[str, float] = field(default_factory=dict)
    importance: dict[str, float] | None = None
    run_id: str | None = None

    @property
    def key(self) -> str:
        """Identity for hysteresis: evidence only accumulates against the same reference."""
        return f"v{self.model_version or '-'}|{','.join(self.batches)}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tracking_store_exists(settings: Settings) -> bool:
    """False for an embedded SQLite store never created: nothing was ever registered."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True


def champion_reference(settings: Settings, model_version: str | None = None) -> Reference | None:
    """Training window, holdout figures and importance of a registered version, or None.

    ``model_version`` is the version that served the window (it may already have been
    replaced as ``@champion`` when the window is monitored); without it, ``@champion``.
    """
    if not tracking_store_exists(settings):
        return None
    from mlflow.exceptions import MlflowException

    from pipelines.core.registry import champion_version, client_for

    client = client_for(settings)
    if model_version is not None:
        try:
            mv = client.get_model_version(settings.mlflow.registered_model, str(model_version))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            log.warning("serving version not in the registry", version=model_version)
            mv = None
    else:
        mv = champion_version(settings, client)
    if mv is None:
        return None
    tags = dict(mv.tags or {})
    batches = [b for b in tags.get(TRAIN_BATCHES_TAG, "").split(",") if b]
    baseline: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                baseline[key.removeprefix(METRIC_TAG_PREFIX)] = float(value)
            except ValueError:
                continue
    importance = None
    if mv.run_id and not settings.monitoring.important_features:  # only read when it decides
        try:
            from pipelines.training import load_evaluation

            # The store passed explicitly: never MLflow's process-global tracking URI.
            importance = {
                str(k): float(v)
                for k, v in load_evaluation(
                    f"runs:/{mv.run_id}/{IMPORTANCE_ARTIFACT}", settings.tracking_uri
                ).items()
            }
        except Exception as exc:  # an artifact is optional evidence: say so, carry on
            log.warning(
                "champion has no readable feature importance", version=mv.version, error=str(exc)[:200]
            )
    return Reference(
        batches=batches,
        source=f"champion v{mv.version} registry tags",
        model_version=str(mv.version),
        holdout_batch=tags.get(HOLDOUT_BATCH_TAG),
        baseline=baseline,
        importance=importance,
        run_id=mv.run_id,
    )


def resolve_reference(
    settings: Settings, reference_batches: list[str] | None = None, model_version: str | None = None
) -> Reference:
    """The serving version's reference; its batches fall back to the given ids, then to the config.

    Raises:
        NoReferenceError: no batch ids from any source, or some are not published.
    """
    champ = champion_reference(settings, model_version)
    if champ is not None and champ.batches:
        ref = champ
    else:
        given = [b for b in (reference_batches or []) if b]
        batches, source = (
            (given, "batch ids passed in")
            if given
            else (list(settings.monitoring.reference_batches), "monitoring.reference_batches")
        )
        if not batches:
            raise NoReferenceError(
                "no reference: the champion has no data.train_batches tag"
                + ("" if champ else " (no champion registered)")
                + ", no reference batch ids were passed and monitoring.reference_batches is empty"
            )
        ref = Reference(
            batches=batches,
            source=source + (f" (champion v{champ.model_version} has no window tag)" if champ else ""),
            model_version=champ.model_version if champ else None,
            holdout_batch=champ.holdout_batch if champ else None,
            baseline=champ.baseline if champ else {},
            importance=champ.importance if champ else None,
            run_id=champ.run_id if champ else None,
        )
    missing = [b for b in ref.batches if published(settings, b) is None]
    if missing:
        raise NoReferenceError(
            f"reference batches {missing} (from {ref.source}) are not published in "
            f"{settings.paths.validated / settings.dataset.name}"
        )
    return ref


def important_features(settings: Settings, ref: Reference) -> tuple[list[str], str]:
    """Features whose drift can trigger a retrain, and where the list came from."""
    cfg, features = settings.monitoring, settings.dataset.features.all
    if cfg.important_features:
        unknown = [c for c in cfg.important_features if c not in features]
        if unknown:
            raise ValueError(
                f"monitoring.important_features {unknown} are not features of dataset "
                f"{settings.dataset.name!r} ({features})"
            )
        return list(cfg.important_features), "monitoring.important_features"
    if ref.importance:
        ranked = sorted(
            ((c, v) for c, v in ref.importance.items() if c in features and v > 0), key=lambda cv: -cv[1]
        )
        if ranked:
            return [c for c, _ in ranked[: cfg.important_top_k]], f"champion v{ref.model_version} importance"
    return list(features), "all features (no importance known)"


def mlflow_scorer(settings: Settings, model_version: str) -> Scorer:
    """The served score of a registered version (P(positive) / predicted value)."""
    import mlflow

    from pipelines.core.registry import version_location
    from pipelines.training import scores_from_pyfunc

    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(version_location(settings, model_version))
    task = settings.dataset.target.task
    return lambda features: scores_from_pyfunc(model.predict(features), task)


def prediction_source(settings: Settings, ref: Reference) -> list[str]:
    """Batches whose scores are the prediction reference: the holdout when known, else the window.

    Scores on the training window are in-sample (a boosted model is more confident on rows it
    fit), so comparing fresh scores with them mixes overfitting into "drift"; the holdout is
    what the model was validated on, out of sample.
    """
    if ref.holdout_batch and published(settings, ref.holdout_batch) is not None:
        return [ref.holdout_batch]
    return list(ref.batches)


def reference_frame(settings: Settings, ref: Reference, scorer: Scorer | None = None) -> pd.DataFrame:
    """Sampled reference features, plus the model's ``prediction`` on :func:`prediction_source`.

    The columns are compared one at a time (univariate drift), so the prediction column may
    come from other rows than the features. Cached under ``<monitoring>/reference/``; the key
    includes each batch's source hash, so a re-published batch never meets a stale cache.
    """
    cfg, contract = settings.monitoring, settings.dataset
    pred_batches = prediction_source(settings, ref)
    found = {b: published(settings, b) for b in {*ref.batches, *pred_batches}}
    sources = {b: (v.source_sha256 if v is not None else "") for b, v in sorted(found.items())}
    key_doc = {
        "batches": ref.batches,
        "prediction_batches": pred_batches,
        "sources": sources,
        "version": ref.model_version,
        "scored": scorer is not None or ref.model_version is not None,
        "rows": cfg.reference_sample_rows,
        "seed": cfg.sample_seed,
        "features": contract.features.all,
    }
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:16]
    cache = settings.paths.monitoring / "reference" / f"{key}.parquet"
    if cache.exists() and scorer is None:
        return pd.read_parquet(cache)
    n, seed = cfg.reference_sample_rows, cfg.sample_seed
    df = load_batches(settings, ref.batches)[contract.features.all]
    df = (df.sample(n, random_state=seed) if len(df) > n else df).reset_index(drop=True)
    if scorer is None and ref.model_version is not None:
        scorer = mlflow_scorer(settings, ref.model_version)
    if scorer is not None:
        rows = load_batches(settings, pred_batches)[contract.features.all]
        rows = (rows.sample(len(df), random_state=seed) if len(rows) > len(df) else rows).reset_index(
            drop=True
        )
        scores = np.full(len(df), np.nan)  # a smaller holdout leaves the tail empty (dropped by the test)
        scores[: len(rows)] = np.asarray(scorer(rows), dtype="float64")[: len(df)]
        df["prediction"] = scores
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(cache)
    log.info(
        "reference prepared",
        batches=ref.batches,
        prediction_batches=pred_batches if "prediction" in df else None,
        rows=len(df),
        cache=str(cache),
    )
    return df
