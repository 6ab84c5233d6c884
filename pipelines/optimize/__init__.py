"""Optimization phase: tuning, latency/cost-aware model choice, capacity, cost & energy, scorecard.

Every figure these steps report is measured on the pipeline's own data and
records (validated batches, the prediction log, MLflow runs, event records, the
Airflow metadata DB). When a figure cannot be measured the report says why
("skipped because ...", "not enough data") instead of printing a number.

Anatomy: pure modules (:mod:`.pareto`, :mod:`.forecast`, ``scorecard.metrics``,
``scorecard.readiness``), effect modules (:mod:`.tuning`, :mod:`.model_choice`,
:mod:`.capacity`, :mod:`.loadtest`, :mod:`.scaling`, :mod:`.unit_cost`, :mod:`.cost`,
:mod:`.experiment`, :mod:`.propose`, :mod:`.serving_path`, ``scorecard.records``,
``scorecard.airflow_db``), :mod:`.contracts` (what the ``optimize_*`` tasks hand each other),
:mod:`.steps` (one function per task) and :mod:`.cli`. The public API below is imported lazily
(see :mod:`pipelines.core.lazy`).
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.optimize.capacity import plan_capacity
    from pipelines.optimize.contracts import StageDag
    from pipelines.optimize.errors import LoadTestError, ScalingError, TuningError
    from pipelines.optimize.loadtest import run_load_test
    from pipelines.optimize.model_choice import choose_model
    from pipelines.optimize.scorecard import (
        build_scorecard,
        checkout_stage_dags,
        render_text,
        write_scorecard_html,
    )
    from pipelines.optimize.tuning import tune
    from pipelines.optimize.unit_cost import version_costs

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "LoadTestError": "errors",
    "ScalingError": "errors",
    "StageDag": "contracts",
    "TuningError": "errors",
    "build_scorecard": "scorecard",
    "checkout_stage_dags": "scorecard",
    "choose_model": "model_choice",
    "plan_capacity": "capacity",
    "render_text": "scorecard",
    "run_load_test": "loadtest",
    "tune": "tuning",
    "version_costs": "unit_cost",
    "write_scorecard_html": "scorecard",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "LoadTestError",
    "ScalingError",
    "StageDag",
    "TuningError",
    "build_scorecard",
    "checkout_stage_dags",
    "choose_model",
    "plan_capacity",
    "render_text",
    "run_load_test",
    "tune",
    "version_costs",
    "write_scorecard_html",
]
