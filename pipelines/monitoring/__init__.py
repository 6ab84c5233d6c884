"""Monitoring (automation phase III): Evidently drift & performance per window, the retrain policy.

Anatomy:

* :mod:`~pipelines.monitoring.policy` — the retrain policy, pure (``decide``), over the measured
  evidence of :mod:`~pipelines.monitoring.evidence`;
* effect modules — :mod:`~pipelines.monitoring.inputs` (the prediction log → parquet),
  :mod:`~pipelines.monitoring.reference` (MLflow: what a window is compared with),
  :mod:`~pipelines.monitoring.reports` and :mod:`~pipelines.monitoring.workspace` (Evidently),
  :mod:`~pipelines.monitoring.monitor` (one window judged), :mod:`~pipelines.monitoring.retrain`
  (decision, lock, alert) and :mod:`~pipelines.monitoring.records` (files and events);
* :mod:`~pipelines.monitoring.contracts` — what the ``automate_drift_monitoring`` tasks pass;
* :mod:`~pipelines.monitoring.steps` — those tasks' entry points; :mod:`~pipelines.monitoring.cli`.

The public API below is what other code needs (the replay's summary); it is imported lazily,
so importing the package costs neither pandas nor Evidently.
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.monitoring.records import history_table

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "history_table": "records",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "history_table",
]
