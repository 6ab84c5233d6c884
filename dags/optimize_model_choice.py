"""
### optimize_model_choice — latency- and cost-aware choice among model families

**Trigger.** Manual.

**Params.** `window` / `holdout` (as in `automate_training`), `propose` (train the pick
through the normal training chain; default false: switching families is a decision for a
person reading the comparison).

**Flow.** compare — every family of `optimize.model_choice.families` for the dataset's task
is fitted on the training window minus its newest batch and measured: validation quality
(the gate's primary metric), p50/p99 single-row latency through the gateway's request path
(parse → validate → predict, families interleaved), CPU ms per request, fit time and model
size. Pareto front + the configured policy (e.g. best quality within the p99 budget); the
table and the plot go to MLflow (`<experiment>-optimize`) and `reports/optimize/model_choice/`.
A family that fails to fit is a "skipped because ..." row. With `propose`, a pick that passes
the evaluation gate gets `@challenger` and the asset event, like any candidate.
"""

from __future__ import annotations

from typing import Any

from _common import CHALLENGER_MODEL, DEFAULT_ARGS, START_DATE, call
from airflow.sdk import Param, dag, task


@dag(
    dag_id="optimize_model_choice",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    doc_md=__doc__,
    tags=["optimization", "model-choice", "mlflow"],
    params={
        "window": Param(None, type=["null", "integer", "string", "array"], description="Training batches."),
        "holdout": Param(None, type=["null", "string"], description="Holdout batch id."),
        "propose": Param(False, type="boolean", description="Train the pick through the training gate."),
    },
)
def optimize_model_choice() -> None:
    @task
    def compare(params: Any = None) -> Any:
        from pipelines.optimize import steps

        return call(steps.compare, params)

    @task.short_circuit
    def has_new_challenger(result: Any) -> Any:
        from pipelines.optimize import steps

        return call(steps.has_new_challenger, result)

    @task(outlets=[CHALLENGER_MODEL])
    def emit_challenger(result: Any, outlet_events: Any = None) -> Any:
        from pipelines.optimize import steps

        extra = call(steps.challenger_event_extra, result, source="optimize_model_choice")
        outlet_events[CHALLENGER_MODEL].extra = extra
        return extra

    result = compare()
    has_new_challenger(result) >> emit_challenger(result)


optimize_model_choice()
