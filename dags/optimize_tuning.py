"""
### optimize_tuning — hyperparameter search within a time budget; the winner is only a candidate

**Trigger.** Manual (tuning costs minutes of CPU; run it when there is budget for it).

**Params.** `budget_seconds` (-1 = `optimize.tuning_budget_seconds`; 0 = skip, reported as
"skipped because budget is 0"), `window` / `holdout` (as in `automate_training`), `propose`
(train the winner as a candidate; default true).

**Flow.** tune — an Optuna study (TPE, seeded) under one MLflow parent run in the
`<experiment>-optimize` experiment, one child run per trial; trials are scored on the newest
batch of the training window, never on the gate's holdout; the current configuration is the
baseline trial. If a trial beats it, the winner is trained by the *normal* training chain
(evaluation against `@champion`, the evaluation gate, registration; `@challenger` only if it
passes) → has_new_challenger → emit_challenger (`challenger_model` asset event, so
`automate_canary_release` rolls it out like any other candidate). Tuning never moves an alias.
"""

from __future__ import annotations

from typing import Any

from _common import CHALLENGER_MODEL, DEFAULT_ARGS, START_DATE, call
from airflow.sdk import Param, dag, task


@dag(
    dag_id="optimize_tuning",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    doc_md=__doc__,
    tags=["optimization", "tuning", "mlflow"],
    params={
        "budget_seconds": Param(-1, type="number", description="-1 = config; 0 = skip tuning."),
        "window": Param(None, type=["null", "integer", "string", "array"], description="Training batches."),
        "holdout": Param(None, type=["null", "string"], description="Holdout batch id."),
        "propose": Param(True, type="boolean", description="Train the winner through the training gate."),
    },
)
def optimize_tuning() -> None:
    @task
    def tune(params: Any = None) -> Any:
        from pipelines.optimize import steps

        return call(steps.tune, params)

    @task.short_circuit
    def has_new_challenger(result: Any) -> Any:
        from pipelines.optimize import steps

        return call(steps.has_new_challenger, result)

    @task(outlets=[CHALLENGER_MODEL])
    def emit_challenger(result: Any, outlet_events: Any = None) -> Any:
        from pipelines.optimize import steps

        extra = call(steps.challenger_event_extra, result, source="optimize_tuning")
        outlet_events[CHALLENGER_MODEL].extra = extra
        return extra

    result = tune()
    has_new_challenger(result) >> emit_challenger(result)


optimize_tuning()
