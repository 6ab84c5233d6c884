"""
### optimize_scorecard — unit costs per model version and the operations scorecard

**Trigger.** Daily, or manual.

**Params.** `measure_cost` (default true), `versions` (comma-separated; empty = all),
`remeasure_training` (re-fit versions that carry no training-cost metrics; default true).

**Flow.** cost — per model version: CPU-seconds, energy and CO2 (CodeCarbon offline tracker)
per 1,000 single-row predictions through the gateway's request path, and per training run;
logged as metrics on each version's MLflow run → scorecard — deployment frequency, lead time
(batch arrival → promotion), change-failure rate, time to recover (drift decision → new
champion serving), gate pass rates, automation coverage and the measurable readiness points,
each with its evidence, computed from the event records, the registry, the landing manifests
and Airflow's DAG runs; HTML with trend plots at `reports/scorecard/index.html`. Which DAG
automates which lifecycle stage is declared here (`LIFECYCLE_STAGES`) and judged on the DAG
files of this folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import DEFAULT_ARGS, START_DATE, call
from airflow.sdk import Param, TriggerRule, dag, task

# Lifecycle stage -> the DAG that automates it (the team's DAG ids). The CLI and the replay read
# this literal from this file too (pipelines.optimize.scorecard.dag_files), so it stays a literal.
LIFECYCLE_STAGES: dict[str, str] = {
    "ingest + data quality gate": "standardize_data_quality",
    "train + evaluation gate + register": "automate_training",
    "canary release / promotion / rollback": "automate_canary_release",
    "drift monitoring + retrain trigger": "automate_drift_monitoring",
    "tuning": "optimize_tuning",
    "model choice": "optimize_model_choice",
    "capacity planning": "optimize_capacity",
    "scorecard": "optimize_scorecard",
}
DAGS_FOLDER = str(Path(__file__).resolve().parent)


@dag(
    dag_id="optimize_scorecard",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["optimization", "scorecard", "cost"],
    params={
        "measure_cost": Param(True, type="boolean"),
        "versions": Param("", type="string", description="Comma-separated versions; empty = all."),
        "remeasure_training": Param(True, type="boolean"),
    },
)
def optimize_scorecard() -> None:
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def wants_cost(params: Any = None) -> Any:
        from pipelines.optimize import steps

        return call(steps.wants_cost, params)

    @task
    def cost(params: Any = None) -> Any:
        from pipelines.optimize import steps

        return call(steps.cost, params)

    @task(trigger_rule=TriggerRule.ALL_DONE)  # the card is still written when costing failed
    def scorecard() -> Any:
        from pipelines.optimize import steps

        return call(steps.scorecard, LIFECYCLE_STAGES, DAGS_FOLDER)

    wants_cost() >> cost() >> scorecard()


optimize_scorecard()
