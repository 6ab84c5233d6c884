"""Training: contract-driven sklearn pipelines, MLflow tracking, registry aliases, evaluation gate.

Anatomy (follow the training DAG through ``steps`` and the four effect modules it calls):

* ``contracts`` — what the DAG's tasks hand each other: ``TrainingWindow``, ``TrainingRequest``,
  ``TrainedCandidate``, ``EvaluationRef``, ``GateVerdict``, ``Registration`` (references only).
* ``steps`` — one function per DAG task; ``run_training(settings, window, holdout, reason)`` is
  the whole chain in-process (CLI, demo, optimization) and returns the registration as a dict.
* pure decisions: ``policy.decide_should_train`` (does an asset event train?) and
  ``verdict.decide(evaluation, gate_cfg, task) -> Verdict`` (the evaluation gate, on the kernel's
  ``Criterion``/``Verdict``).
* effects: ``window`` (which published batches; ``should_train`` gathers the policy's facts),
  ``train`` (``train_candidate`` trains or reuses, by dedupe key, one MLflow run), ``evaluate``
  (candidate vs ``@champion`` on the same holdout, the document ``evaluation/evaluation.json``;
  ``gate_candidate`` records the verdict), ``registry`` (``register_candidate``: version + tags,
  ``@challenger`` only if passed; ``@champion`` is never touched here), ``tracking`` (MLflow
  connection, provenance).
* helpers: ``features`` (the sklearn pipeline from the contract's feature roles), ``metrics``
  (the metric catalogue), ``plots``, ``errors``; ``cli``.

Public API (this package import stays light; each name is imported on first use):

* ``build_pipeline(contract, training_cfg) -> sklearn.Pipeline`` — preprocessing from the
  contract's feature roles + the configured estimator (default HistGradientBoosting by task),
  seeded. ``coerce_features(contract, df)`` gives the model's input dtypes (numeric float64,
  categorical str/None): **MLflow refuses int64 for a double column**, so callers that build
  frames from JSON cast through it before ``pyfunc.predict``. ``scores_from_pyfunc(output,
  task)``: classifiers are logged with ``pyfunc_predict_fn="predict_proba"``, so
  ``pyfunc.predict`` returns (n, 2); column 1 is P(positive class), the served prediction.
* ``resolve_window(settings, window=None|[ids]|N, holdout=None) -> TrainingWindow`` — holdout =
  newest published batch not used in training; window = the N batches before it.
* ``fit_window`` / ``gate_models`` — train and gate in memory (the replay's backtest): the same
  pipeline, sample weights, gate measurements and decision, without MLflow.
* ``run_training``, ``has_new_challenger(Registration)``, ``challenger_event_extra(Registration)``,
  ``load_evaluation(uri, tracking_uri)``.

Registry look-ups (aliases, versions, the client) are the kernel's: :mod:`pipelines.core.registry`.
Serving loads ``models:/<settings.mlflow.registered_model>@<alias>``. Tuned parameters go
through the same gate: build a ``Settings`` whose ``training.estimator_params`` hold them and
call ``run_training``.
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.training import metrics
    from pipelines.training.contracts import (
        CodeVersion,
        EvaluationRef,
        GateVerdict,
        Registration,
        TrainedCandidate,
        TrainingRequest,
        TrainingWindow,
    )
    from pipelines.training.errors import TrainingError, WindowError
    from pipelines.training.evaluate import load_evaluation
    from pipelines.training.features import (
        build_pipeline,
        coerce_features,
        make_estimator,
        predict_scores,
        prepare_xy,
        scores_from_pyfunc,
    )
    from pipelines.training.offline import FittedModel, fit_window, gate_models
    from pipelines.training.steps import challenger_event_extra, has_new_challenger, run_training
    from pipelines.training.tracking import artifact_root, configure_tracking
    from pipelines.training.window import load_window, resolve_window, retrain_window

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "CodeVersion": "contracts",
    "EvaluationRef": "contracts",
    "FittedModel": "offline",
    "GateVerdict": "contracts",
    "Registration": "contracts",
    "TrainedCandidate": "contracts",
    "TrainingError": "errors",
    "TrainingRequest": "contracts",
    "TrainingWindow": "contracts",
    "WindowError": "errors",
    "artifact_root": "tracking",
    "build_pipeline": "features",
    "challenger_event_extra": "steps",
    "coerce_features": "features",
    "configure_tracking": "tracking",
    "fit_window": "offline",
    "gate_models": "offline",
    "has_new_challenger": "steps",
    "load_evaluation": "evaluate",
    "load_window": "window",
    "make_estimator": "features",
    "metrics": "metrics",
    "predict_scores": "features",
    "prepare_xy": "features",
    "resolve_window": "window",
    "retrain_window": "window",
    "run_training": "steps",
    "scores_from_pyfunc": "features",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "CodeVersion",
    "EvaluationRef",
    "FittedModel",
    "GateVerdict",
    "Registration",
    "TrainedCandidate",
    "TrainingError",
    "TrainingRequest",
    "TrainingWindow",
    "WindowError",
    "artifact_root",
    "build_pipeline",
    "challenger_event_extra",
    "coerce_features",
    "configure_tracking",
    "fit_window",
    "gate_models",
    "has_new_challenger",
    "load_evaluation",
    "load_window",
    "make_estimator",
    "metrics",
    "predict_scores",
    "prepare_xy",
    "resolve_window",
    "retrain_window",
    "run_training",
    "scores_from_pyfunc",
]
