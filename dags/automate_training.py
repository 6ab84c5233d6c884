"""
### automate_training — train, evaluate against `@champion`, gate, register (+ `@challenger`)

**Triggers.** The `validated_batch` asset (a batch passed the quality gate) and manual /
monitoring runs with params. An asset-triggered run trains only to *bootstrap* (no champion,
no challenger, enough batches for a window + holdout) or when
`training.retrain_on_every_batch` is on; a run with a `reason` (the drift monitor, a person)
always trains. The `should_train` task logs why.

**Params.** `reason` (text), `window` (training batch ids — a list or `"2013-01,2013-02"` — or
a count; empty = `training.window_batches`), `holdout` (batch id; empty = newest published
batch not used in training).

**Flow.** should_train → resolve_window → train (MLflow run; reused when the same data, code
and config were already trained) → evaluate (candidate and champion on the same holdout) →
gate (verdict logged to the run and to `events/gate_verdict/`) → register (model version with
tags; `@challenger` only if passed) → has_new_challenger → emit_challenger (`challenger_model`
asset event, extra `{model_name, version, run_id}`).

A rejected candidate is registered with `gate.verdict=rejected` and every failed criterion
in its tags; the run then ends with `emit_challenger` skipped and no alias moved.
"""

from __future__ import annotations

from typing import Any

from _common import CHALLENGER_MODEL, DEFAULT_ARGS, START_DATE, VALIDATED_BATCH, call, event_extras
from airflow.sdk import Param, dag, task

# Each task is one call into pipelines/training/steps.py (imported inside the task, so nothing from
# pipelines/ runs at parse time); the hand-offs are pipelines/training/contracts.py.


@dag(
    dag_id="automate_training",
    schedule=[VALIDATED_BATCH],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["automation", "training", "mlflow"],
    params={
        "reason": Param("", type="string", description="Why this run trains (empty on asset events)."),
        "window": Param(
            None,
            type=["null", "integer", "string", "array"],
            description="Training batches: list / comma-separated ids, or a count.",
        ),
        "holdout": Param(None, type=["null", "string"], description="Holdout batch id."),
    },
)
def automate_training() -> None:
    @task.short_circuit
    def should_train(params: Any = None, triggering_asset_events: Any = None) -> Any:
        from pipelines.training import steps

        return call(steps.should_train, params, event_extras(triggering_asset_events))

    @task
    def resolve_window(params: Any = None, triggering_asset_events: Any = None) -> Any:
        from pipelines.training import steps

        return call(steps.resolve_window, params, event_extras(triggering_asset_events))

    @task
    def train(request: Any) -> Any:
        from pipelines.training import steps

        return call(steps.train, request)

    @task
    def evaluate(candidate: Any) -> Any:
        from pipelines.training import steps

        return call(steps.evaluate, candidate)

    @task
    def gate(evaluation: Any) -> Any:
        from pipelines.training import steps

        return call(steps.gate, evaluation)

    @task
    def register(verdict: Any) -> Any:
        from pipelines.training import steps

        return call(steps.register, verdict)

    @task.short_circuit
    def has_new_challenger(registration: Any) -> Any:
        from pipelines.training import steps

        return call(steps.has_new_challenger, registration)

    @task(outlets=[CHALLENGER_MODEL])
    def emit_challenger(registration: Any, outlet_events: Any = None) -> Any:
        from pipelines.training import steps

        extra = call(steps.challenger_event_extra, registration)
        outlet_events[CHALLENGER_MODEL].extra = extra
        return extra

    request = resolve_window()
    should_train() >> request
    registration = register(gate(evaluate(train(request))))
    has_new_challenger(registration) >> emit_challenger(registration)


automate_training()
