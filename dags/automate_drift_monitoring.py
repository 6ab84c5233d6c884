"""
### automate_drift_monitoring — Evidently drift & performance per window, retrain policy

**Per window** (a batch id, e.g. `2013-05`; default: the month that just closed):

1. `collect` — served features/predictions of the window and the labels matured by `as_of`,
   read from the prediction log into `<monitoring>/windows/<window>/*.parquet` (refs only in XCom).
2. `monitor` — Evidently (current API) against the reference = the serving model's training
   window (registry tag `data.train_batches`; fallback: the `reference` param, then
   `monitoring.reference_batches`): per-column drift of the important features and of the
   prediction, drifted share of all features, data quality, and model performance on matured
   labels. HTML + snapshots per window, and the Evidently workspace (`evidently ui`).
3. `decide` — the retrain policy (important-feature drift, prediction drift, performance drop vs
   the holdout figure, N-of-M hysteresis, min samples, cooldown, max per period, one retrain in
   flight). Every decision — `retrain`, `no_retrain`, `no_decision` — is recorded in
   `events/retrain_decision/<window>.json` with reasons and figures, and alerted.
4. `choose` maps the decision's action: `retrain` → `trigger_training` (`automate_training` with
   the decision's training request `{reason, window, holdout}` as conf; run id
   `drift_retrain__<window>`, so a re-run never starts a second training), else `no_retrain`.

A malformed `window` fails `collect` at once (no retries: `InvalidInputError`). Scheduled once per
`dataset.batch_frequency` period; a scheduled period with no configured batch is skipped with its
reason (`NothingToDoError`): no `no_decision` record, no alert.

Bad evidence (no predictions, labels that never arrive, corrupted log rows, an Evidently
failure) yields a recorded `no_decision` with the reason — never a retrain, never a silent pass.
Failures of any task alert through `pipelines.core.alerts.AlertNotifier` (imported on failure only).
"""

from __future__ import annotations

from typing import Any

from _common import BATCH_SCHEDULE, DEFAULT_ARGS, START_DATE, call
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

from pipelines.core.period_ids import PARAM_PATTERN

TRAINING_DAG = "automate_training"


def _alert_on_failure(context: Any) -> None:
    """Alert through ``pipelines.core.alerts.AlertNotifier``, imported only when a task fails.

    A module-level notifier imported the alerting stack (pydantic settings, ~0.09 s) on every
    parse. This file's remaining ~0.5 s of own parse time is the standard provider's
    ``TriggerDagRunOperator`` import, which the retrain hand-off needs.
    """
    from pipelines.core.alerts import AlertNotifier

    AlertNotifier(kind="task_failure")(context)


@dag(
    dag_id="automate_drift_monitoring",
    schedule=BATCH_SCHEDULE,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "on_failure_callback": _alert_on_failure},
    tags=["automation", "monitoring", "evidently"],
    doc_md=__doc__,
    params={
        "window": Param(
            "",
            type="string",
            pattern=PARAM_PATTERN,
            description="Window (batch id) to monitor. Empty: the period that closed at the run's date.",
        ),
        "as_of": Param(
            "",
            type="string",
            description="ISO time labels must be available by (business time). Empty: the window's end.",
        ),
        "reference": Param(
            "",
            type="string",
            description="Reference batch ids (comma-separated), used only when the serving model "
            "has no training-window tag.",
        ),
    },
)
def automate_drift_monitoring() -> None:
    @task
    def collect(params: Any = None, data_interval_start: Any = None, data_interval_end: Any = None) -> Any:
        from pipelines.monitoring import steps

        p = params or {}
        return call(steps.collect, p.get("window"), p.get("as_of"), data_interval_start, data_interval_end)

    @task
    def monitor(collected: Any, params: Any = None) -> Any:
        from pipelines.monitoring import steps

        return call(steps.monitor, collected, (params or {}).get("reference"))

    @task(multiple_outputs=True)
    def decide(monitored: Any) -> Any:
        from pipelines.monitoring import steps

        return call(steps.decide, monitored, trigger_dag_id=TRAINING_DAG)

    @task.branch
    def choose(decision: Any) -> str:
        from pipelines.monitoring import steps
        from pipelines.monitoring.contracts import RetrainAction

        action = RetrainAction(call(steps.branch, decision))
        return "trigger_training" if action is RetrainAction.RETRAIN else "no_retrain"

    decision = decide(monitor(collect()))
    trigger_training = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id=TRAINING_DAG,
        # One training run per window: a re-run of the window finds it and skips.
        trigger_run_id="drift_retrain__{{ ti.xcom_pull(task_ids='decide', key='window') }}",
        # The decision's training request {reason, window, holdout}: with multiple_outputs each
        # key of the decision is an XCom of its own (the SDK's XComArg type does not say so).
        conf=decision["request"],  # type: ignore[index]
        skip_when_already_exists=True,
        wait_for_completion=False,
    )
    no_retrain = EmptyOperator(task_id="no_retrain")

    choose(decision) >> [trigger_training, no_retrain]


automate_drift_monitoring()
