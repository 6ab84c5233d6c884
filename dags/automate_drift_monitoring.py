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
4. `choose` → `trigger_training` (`automate_training` with conf `{reason, window, holdout}`;
   run id `drift_retrain__<window>`, so a re-run never starts a second training) or `no_retrain`.

Bad evidence (no predictions, labels that never arrive, corrupted log rows, an Evidently
failure) yields a recorded `no_decision` with the reason — never a retrain, never a silent pass.
Failures of any task alert through `pipelines.core.alerts.AlertNotifier` (imported on failure only).
"""

from __future__ import annotations

from typing import Any

from _common import DEFAULT_ARGS, START_DATE
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task


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
    schedule="@monthly",
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
            pattern=r"^$|^\d{4}-(\d{2}|W\d{2}|\d{2}-\d{2})$",
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
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.monitoring.steps import collect_task

        try:
            return collect_task(dict(params or {}), data_interval_start, data_interval_end)
        except ValueError as exc:  # a malformed window id: retrying cannot fix it
            raise AirflowFailException(str(exc)) from exc

    @task
    def monitor(collected: Any, params: Any = None) -> Any:
        from pipelines.monitoring.steps import monitor_task

        return monitor_task(collected, dict(params or {}))

    @task
    def decide(monitored: Any) -> Any:
        from pipelines.monitoring.steps import decide_task

        return decide_task(monitored)

    @task.branch
    def choose(decision: Any) -> str:
        from pipelines.monitoring.steps import branch_task

        return branch_task(decision)

    trigger_training = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id="automate_training",
        trigger_run_id="drift_retrain__{{ ti.xcom_pull(task_ids='decide')['window'] }}",
        # Rendered to JSON text, which the operator parses back into the dict (templated field).
        conf="{{ ti.xcom_pull(task_ids='decide')['trigger_conf'] | tojson }}",  # type: ignore[arg-type]
        skip_when_already_exists=True,
        wait_for_completion=False,
    )
    no_retrain = EmptyOperator(task_id="no_retrain")

    decision = decide(monitor(collect()))
    choose(decision) >> [trigger_training, no_retrain]


automate_drift_monitoring()
