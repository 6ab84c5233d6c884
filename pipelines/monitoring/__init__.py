"""Monitoring (automation phase III): Evidently drift & performance per window, the retrain policy.

Entry points: :mod:`pipelines.monitoring.steps` (``collect_window`` -> ``run_monitoring`` ->
``decide_retrain``; what the ``automate_drift_monitoring`` DAG and the replay call),
:func:`pipelines.monitoring.policy.decide` (the pure policy), :mod:`pipelines.monitoring.cli`.
Evidently, MLflow and pandas-heavy modules are imported inside the functions that need them.
"""
