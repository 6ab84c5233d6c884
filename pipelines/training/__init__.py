"""Training: contract-driven sklearn pipelines, MLflow tracking, registry aliases, evaluation gate.

Public functions (import from the submodules; this package import stays light):

* ``features.build_pipeline(contract, training_cfg) -> sklearn.Pipeline`` — preprocessing from
  the contract's feature roles + the configured estimator (default HistGradientBoosting by task),
  seeded. ``features.coerce_features(contract, df)`` gives the model's input dtypes (numeric
  float64, categorical str/None): **MLflow refuses int64 for a double column**, so callers that
  build frames from JSON cast through it before ``pyfunc.predict``.
  ``features.scores_from_pyfunc(output, task)``: classifiers are logged with
  ``pyfunc_predict_fn="predict_proba"``, so ``pyfunc.predict`` returns (n, 2); column 1 is
  P(positive class), the served prediction.
* ``window.resolve_window(settings, window=None|[ids]|N, holdout=None) -> TrainingWindow`` —
  holdout = newest published batch not used in training; window = the N batches before it.
* ``train.train_candidate(settings, window, reason) -> dict`` — trains (or reuses, by dedupe
  key) and logs one MLflow run; returns ``{run_id, model_uri, dedupe_key, ...}``.
* ``evaluate.evaluate_candidate(settings, train_result) -> dict`` — candidate vs ``@champion``
  on the same holdout: metrics, slices, behavioural checks, importance, plots; the document
  is the run artifact ``evaluation/evaluation.json`` (``evaluate.load_evaluation(uri)``).
* ``gate.decide(evaluation, gate_cfg, task) -> Verdict`` (pure) and
  ``gate.gate_candidate(settings, evaluation) -> dict`` (also logs and records the event).
* ``registry.register_candidate(settings, train_result, evaluation, verdict) -> dict`` —
  version + tags (+ ``@challenger`` if passed; ``@champion`` is never touched here).
  ``registry.champion_version(settings)``, ``registry.challenger_version(settings)``,
  ``registry.list_versions(settings)``.
* ``steps.run_training(settings, window, holdout, reason) -> dict`` — the whole chain
  (what the DAG does task by task); ``policy.should_train`` — when an asset event trains.

Serving loads ``models:/<settings.mlflow.registered_model>@<alias>``. Tuned parameters go
through the same gate: build a ``Settings`` whose ``training.estimator_params`` hold them and
call ``run_training``.
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.training import metrics
    from pipelines.training.errors import TrainingError, WindowError
    from pipelines.training.features import (
        build_pipeline,
        coerce_features,
        make_estimator,
        predict_scores,
        prepare_xy,
        scores_from_pyfunc,
    )
    from pipelines.training.steps import challenger_event_extra, has_new_challenger, run_training
    from pipelines.training.tracking import artifact_root, configure_tracking
    from pipelines.training.window import TrainingWindow, load_window, resolve_window

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "TrainingError": "errors",
    "TrainingWindow": "window",
    "WindowError": "errors",
    "artifact_root": "tracking",
    "build_pipeline": "features",
    "challenger_event_extra": "steps",
    "coerce_features": "features",
    "configure_tracking": "tracking",
    "has_new_challenger": "steps",
    "load_window": "window",
    "make_estimator": "features",
    "metrics": "metrics",
    "predict_scores": "features",
    "prepare_xy": "features",
    "resolve_window": "window",
    "run_training": "steps",
    "scores_from_pyfunc": "features",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "TrainingError",
    "TrainingWindow",
    "WindowError",
    "artifact_root",
    "build_pipeline",
    "challenger_event_extra",
    "coerce_features",
    "configure_tracking",
    "has_new_challenger",
    "load_window",
    "make_estimator",
    "metrics",
    "predict_scores",
    "prepare_xy",
    "resolve_window",
    "run_training",
    "scores_from_pyfunc",
]
