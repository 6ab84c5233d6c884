"""Train one candidate on a window of published batches and track it in MLflow.

Idempotent by construction: the candidate's *dedupe key* hashes the training and
holdout data, the model code and the model configuration. If a finished run with
that key exists, its model is reused instead of training a duplicate, so a
re-run task (Airflow retry, a person clicking "clear") produces the same run.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from threadpoolctl import threadpool_limits

from pipelines.config import Settings, TrainingConfig
from pipelines.core.contracts import to_xcom
from pipelines.core.observability import get_logger, log_context, record_event
from pipelines.core.redact import redact
from pipelines.core.registry import client_for
from pipelines.training import metrics
from pipelines.training.contracts import TrainedCandidate, TrainingWindow
from pipelines.training.errors import TrainingDataError
from pipelines.training.features import PreparedData, build_pipeline, predict_scores, prepare_xy
from pipelines.training.tracking import (
    code_version,
    config_hash,
    configure_tracking,
    experiment_id,
    stable_hash,
)
from pipelines.training.window import batch_sources, data_fingerprint, load_window, recency_weights

log = get_logger(__name__)

DEDUPE_TAG = "dedupe_key"
MODEL_URI_TAG = "mlops.model_uri"


def pip_requirements() -> list[str]:
    """Pinned from the running environment: inferring them costs ~15 s per log_model."""
    from importlib.metadata import version

    pkgs = ["scikit-learn", "pandas", "numpy", "scipy", "mlflow"]
    return [f"{p}=={version(p)}" for p in pkgs] + [f"skops=={version('skops')}"]


def check_trainable(
    settings: Settings, train: PreparedData, holdout: PreparedData, window: TrainingWindow
) -> None:
    """Refuse windows that cannot produce a meaningful model or a meaningful evaluation."""
    cfg = settings.training
    where = f"window {window.label} (batches {list(window.train_batches)})"
    if train.rows < cfg.min_rows:
        raise TrainingDataError(
            f"training window too small: {train.rows} labelled rows < training.min_rows={cfg.min_rows} "
            f"in {where}; {train.dropped_null_target} rows had no label"
        )
    if holdout.rows < cfg.min_holdout_rows:
        raise TrainingDataError(
            f"holdout {window.holdout_batch} too small: {holdout.rows} labelled rows < "
            f"training.min_holdout_rows={cfg.min_holdout_rows}"
        )
    if settings.dataset.target.task == "classification":
        counts = train.y.value_counts().sort_index()
        if len(counts) < 2:
            raise TrainingDataError(
                f"single-class training window: every labelled row of {where} has "
                f"{settings.dataset.target.name}={counts.index.tolist()}; a classifier needs both classes"
            )
        if len(counts) > 2:
            raise TrainingDataError(
                f"{settings.dataset.target.name} has {len(counts)} classes in {where}; "
                "the pipeline serves P(positive class) and supports binary targets only"
            )
        if counts.min() < cfg.min_class_rows:
            raise TrainingDataError(
                f"class {counts.idxmin()} has only {counts.min()} rows in {where} "
                f"(< training.min_class_rows={cfg.min_class_rows})"
            )
        if holdout.y.nunique() < 2:
            raise TrainingDataError(
                f"holdout {window.holdout_batch} has a single class: the candidate cannot be evaluated"
            )


def _find_finished_run(settings: Settings, key: str) -> Any | None:
    client = client_for(settings)
    runs = client.search_runs(
        [experiment_id(client, settings)],
        filter_string=f"tags.{DEDUPE_TAG} = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    for run in runs:
        if MODEL_URI_TAG in run.data.tags:
            return run
    return None


def representative_sample(df: pd.DataFrame, rows: int = 1000) -> pd.DataFrame:
    """The first rows plus, per column, one row where it is missing.

    MLflow infers a schema value by value (seconds on 100k rows); on this sample it
    infers the same types and the same optional/required flag in milliseconds.
    """
    picks = set(range(min(rows, len(df))))
    for col in df.columns:
        missing = np.flatnonzero(df[col].isna().to_numpy())
        if missing.size:
            picks.add(int(missing[0]))
    return df.iloc[sorted(picks)]


def _log_dataset(df: pd.DataFrame, settings: Settings, batches: list[str], fp: str, context: str) -> None:
    """MLflow dataset = batch ids + content fingerprint, so the UI shows exactly what was used."""
    contract = settings.dataset
    span = batches[0] if len(batches) == 1 else f"{batches[0]}..{batches[-1]}"
    with warnings.catch_warnings():
        # MLflow hints about int columns (the landed schema, not the model's signature) and
        # about two equivalent local source classes: noise in every task log.
        warnings.simplefilter("ignore", UserWarning)
        ds = from_pandas(
            df,
            source=(settings.paths.validated / contract.name).as_uri(),
            targets=contract.target.name,
            name=f"{contract.name}:{span}",
            digest=fp[:32],
        )
        # Prime the dataset's lazily inferred schema from a representative sample (13 s -> 0.1 s
        # for two 80k-row frames); profile (row count) and digest still describe the full frame.
        ds.__dict__["schema"] = infer_signature(representative_sample(df)).inputs
    mlflow.log_input(ds, context=context, tags={"batches": ",".join(batches), "fingerprint": fp})


def _flat_params(settings: Settings, window: TrainingWindow) -> dict[str, Any]:
    cfg = settings.training
    from pipelines.training.features import DEFAULT_ESTIMATORS

    params: dict[str, Any] = {
        "estimator": cfg.estimator or DEFAULT_ESTIMATORS[settings.dataset.target.task],
        "seed": cfg.seed,
        "categorical_encoding": cfg.categorical_encoding,
        "max_categories": cfg.max_categories,
        "threads": cfg.threads,
        "window_strategy": cfg.window_strategy,
        "recency_half_life": cfg.recency_half_life,
        "window_batches": ",".join(window.train_batches),
        "holdout_batch": window.holdout_batch,
        "task": settings.dataset.target.task,
        "target": settings.dataset.target.name,
        "n_numeric_features": len(settings.dataset.features.numeric),
        "n_categorical_features": len(settings.dataset.features.categorical),
    }
    params.update({f"est.{k}": v for k, v in sorted(cfg.estimator_params.items())})
    return params


def fit_model(model: Any, train: PreparedData, cfg: TrainingConfig, row_batches: pd.Series) -> Any:
    """Fit ``model`` on the prepared rows with the window strategy's sample weights, if any.

    ``row_batches`` is the batch id of each labelled training row, in ``train``'s order
    (recency weights depend on it; see :func:`pipelines.training.window.recency_weights`).
    """
    weights = recency_weights(cfg, row_batches.reset_index(drop=True))
    if weights is None:
        return model.fit(train.x, train.y)
    return model.fit(train.x, train.y, model__sample_weight=weights)


def train_candidate(settings: Settings, window: TrainingWindow, reason: str = "") -> TrainedCandidate:
    """Train (or reuse) the candidate for ``window``; returns references only (run, model URI,
    dedupe key, fingerprints, row counts).

    Raises:
        TrackingUnavailableError, WindowError, TrainingDataError, TrainingConfigError: before
        any model is logged or registered.
    """
    client = configure_tracking(settings)
    contract = settings.dataset
    task = contract.target.task
    train_df = load_window(settings, window.train_batches)
    holdout_df = load_window(settings, (window.holdout_batch,))
    if train_df.empty:
        raise TrainingDataError(f"training window {window.label} has no rows")
    train = prepare_xy(contract, train_df)
    holdout = prepare_xy(contract, holdout_df)
    check_trainable(settings, train, holdout, window)

    cols = contract.landed_columns
    train_fp = data_fingerprint(train_df, cols)
    holdout_fp = data_fingerprint(holdout_df, cols)
    code = code_version()
    cfg_hash = config_hash(settings)
    key = stable_hash(
        {"train": train_fp, "holdout": holdout_fp, "code": code.source_hash, "config": cfg_hash}, 24
    )

    def candidate(run_id: str, model_uri: str, model_id: str | None, reused: bool) -> TrainedCandidate:
        return TrainedCandidate(
            window=window,
            dedupe_key=key,
            train_fingerprint=train_fp,
            holdout_fingerprint=holdout_fp,
            train_rows=train.rows,
            dropped_null_target=train.dropped_null_target,
            reason=reason,
            code=code,
            config_hash=cfg_hash,
            run_id=run_id,
            model_uri=model_uri,
            model_id=model_id,
            reused=reused,
        )

    existing = _find_finished_run(settings, key)
    if existing is not None:
        result = candidate(
            existing.info.run_id,
            existing.data.tags[MODEL_URI_TAG],
            existing.data.tags.get("mlops.model_id", ""),
            reused=True,
        )
        log.info("candidate already trained; reusing run", run_id=existing.info.run_id, dedupe_key=key)
        _record(settings, result)
        return result

    model = build_pipeline(contract, settings.training)
    # nested: a caller's active run (a tuning parent) becomes the parent instead of an error.
    # The experiment is explicit: MLflow's active experiment is process-global and another
    # settings' configure_tracking (a test, another DAG) may have changed it since.
    with (
        mlflow.start_run(
            run_name=f"train {window.label}", nested=True, experiment_id=experiment_id(client, settings)
        ) as run,
        log_context(run_id=run.info.run_id),
    ):
        mlflow.set_tags(
            {
                DEDUPE_TAG: key,
                "mlops.reason": reason or "unspecified",
                "mlops.window": window.label,
                "data.train_batches": ",".join(window.train_batches),
                "data.holdout_batch": window.holdout_batch,
                "data.train_fingerprint": train_fp,
                "data.holdout_fingerprint": holdout_fp,
                "data.sources": redact(
                    str(batch_sources(settings, [*window.train_batches, window.holdout_batch]))
                ),
                "code.git_sha": code.git_sha,
                "code.source_hash": code.source_hash,
                "config_hash": cfg_hash,
                "mlflow.source.git.commit": code.git_sha.removesuffix("-dirty"),
            }
        )
        mlflow.log_params(redact(_flat_params(settings, window)))
        _log_dataset(
            train_df.drop(columns="__batch_id"), settings, list(window.train_batches), train_fp, "training"
        )
        _log_dataset(
            holdout_df.drop(columns="__batch_id"), settings, [window.holdout_batch], holdout_fp, "evaluation"
        )

        with threadpool_limits(limits=settings.training.threads or None):
            t0 = time.perf_counter()
            labelled_batches = train_df.loc[train_df[contract.target.name].notna(), "__batch_id"]
            fit_model(model, train, settings.training, labelled_batches)
            fit_seconds = time.perf_counter() - t0
            train_scores = predict_scores(model, train.x, task)
        train_metrics = metrics.compute(task, train.y.to_numpy(), train_scores)
        per_batch = train_df.groupby("__batch_id").size().to_dict()
        mlflow.log_metrics(
            {
                "fit_seconds": fit_seconds,
                "train_rows": float(train.rows),
                "train_dropped_null_target": float(train.dropped_null_target),
                "holdout_rows": float(holdout.rows),
                **{f"train_{k}": v for k, v in train_metrics.items()},
                **{f"rows_{b}": float(n) for b, n in per_batch.items()},
            }
        )
        if task == "classification":
            mlflow.log_metric("train_positive_rate", float(np.mean(train.y)))

        info = _log_model(settings, model, train.x)
        with threadpool_limits(limits=settings.training.threads or None):
            _log_compiled(settings, model, train.x.head(5), holdout.x, info.model_id)
        mlflow.set_tags({MODEL_URI_TAG: info.model_uri, "mlops.model_id": info.model_id or ""})
        result = candidate(run.info.run_id, info.model_uri, info.model_id, reused=False)
        log.info(
            "candidate trained",
            window=window.label,
            rows=train.rows,
            fit_seconds=round(fit_seconds, 2),
            model_uri=info.model_uri,
        )
    _record(settings, result)
    return result


def _log_model(settings: Settings, model: Any, x: pd.DataFrame) -> Any:
    task = settings.dataset.target.task
    example = x.head(5)
    predict_fn = "predict_proba" if task == "classification" else "predict"
    # A column with any missing training value is "optional" (the sample keeps one such row).
    signature = infer_signature(representative_sample(x), getattr(model, predict_fn)(example))
    kwargs: dict[str, Any] = {}
    if settings.mlflow.serialization == "skops":
        import skops.io

        # Trust exactly the types of the model trained in this process (recorded in MLmodel).
        kwargs["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn=predict_fn,
        serialization_format=settings.mlflow.serialization,
        **kwargs,
    )


def _log_compiled(
    settings: Settings, model: Any, example: pd.DataFrame, holdout_x: pd.DataFrame, model_id: str | None
) -> None:
    """Log the compiled predictor and its parity record into the logged model's ``compiled/`` folder.

    The compiled copy travels with the model version, so every loader (gateway, pre-rollout
    instance, canary evidence) finds the same artefact; the gateway re-checks parity at load. A
    pipeline that cannot be compiled still trains and registers: ``parity.json`` then holds the
    reason, which the gateway reports as its fallback reason. The evaluation gate never reads it.
    """
    import tempfile
    from pathlib import Path

    from pipelines.core import compiled

    contract = settings.dataset
    task = contract.target.task
    record: dict[str, Any] = {"engine": compiled.ENGINE, "atol": compiled.PARITY_ATOL}
    with tempfile.TemporaryDirectory(prefix="mlops-compiled-") as tmp:
        folder = Path(tmp)
        try:
            predictor = compiled.compile_pipeline(model, task)
            rows = compiled.parity_rows(
                holdout_x,
                list(contract.features.numeric),
                list(contract.features.categorical),
                seed=settings.training.seed,
            )
            diffs = compiled.parity(
                predictor.predict,
                lambda frame: predict_scores(model, frame, task),
                {"input_example": example, "holdout_sample": rows},
            )
            worst = max(diffs.values())
            passed = worst <= compiled.PARITY_ATOL
            record.update(
                compiled=passed,
                max_abs_diff=diffs,
                rows={"input_example": len(example), "holdout_sample": len(rows)},
                conversion_seconds=round(predictor.conversion_seconds, 4),
                reason=None if passed else f"max abs diff {worst:.3g} > {compiled.PARITY_ATOL:g} at training",
            )
            if passed:
                predictor.save(folder)
                rows.to_parquet(folder / compiled.ROWS_FILE, index=False)
            mlflow.log_metrics(
                {
                    "compiled_parity_max_abs_diff": worst if np.isfinite(worst) else 1e300,
                    "compiled_conversion_seconds": predictor.conversion_seconds,
                }
            )
        except compiled.CompileError as exc:
            record.update(compiled=False, reason=f"not compiled: {exc}")
        except Exception as exc:  # compiling is an optimisation: it never fails a training run
            record.update(compiled=False, reason=f"compiling failed: {type(exc).__name__}: {exc}")
        compiled.write_parity(folder, record)
        mlflow.set_tag("mlops.predictor", compiled.ENGINE if record["compiled"] else "sklearn")
        if not record["compiled"]:
            log.warning("model not compiled; the gateway will serve the pipeline", reason=record["reason"])
        if model_id:
            client_for(settings).log_model_artifacts(model_id, str(folder), compiled.ARTIFACT_DIR)
        else:
            mlflow.log_artifacts(str(folder), compiled.ARTIFACT_DIR)


def _record(settings: Settings, result: TrainedCandidate) -> None:
    """A ``training_run`` event: the candidate's fields, with the code as ``git_sha`` alone."""
    fields = to_xcom(result)
    del fields["code"]
    record_event(
        settings.paths.events,
        "training_run",
        result.run_id,
        model_name=settings.mlflow.registered_model,
        **fields,
        git_sha=result.code.git_sha,
    )
