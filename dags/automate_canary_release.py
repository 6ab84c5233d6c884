"""
### automate_canary_release — pre-rollout check, canary steps with analysis, promotion or rollback

**Triggers.** The `challenger_model` asset (training registered a candidate that passed its
gate and holds `@challenger`), or a manual run.

**Params.** `version` (`@challenger` or a version number; an asset event's version wins),
`steps` (canary percentages, e.g. `[10, 50, 100]`; empty = `canary.steps`), `rollback`
(true = do nothing but roll back: abort a running canary, or return `@champion` and the
gateway to the last good champion), `reason` (text recorded with a rollback).

**Flow.** plan_release → choose_path → either `rollback`, or
pre_rollout_check (the candidate in a *fresh* serving instance — the Docker image when
`serving.docker_image` is set, else a subprocess — queried with the newest validated batch)
→ traffic_steps (canary weight per step, each held ≥ `canary.step_window_s` and
≥ `canary.min_requests` canary requests, judged on errors, p99 latency and paired labelled
quality, a prediction shift being a warning; failed → weight 0 at once; inconclusive → hold;
quality still undecided when no more labels come → `canary.quality_undecided`; anything else
fails safe at `canary.step_timeout_s`) → promote (`@champion` moved with audit tags, then the served
version is asserted on the live gateway).

With no champion yet (bootstrap) the candidate is promoted after the pre-rollout check alone.
A rejected canary fails the run (no retries): the champion keeps serving, `@challenger` is
removed, and `events/rollback/` + `events/canary_step/` hold the reason and the figures.
"""

from __future__ import annotations

from typing import Any

from _common import CHALLENGER_MODEL, DEFAULT_ARGS, START_DATE, call, event_extras
from airflow.sdk import Param, dag, task

DAG_ID = "automate_canary_release"


@dag(
    dag_id=DAG_ID,
    schedule=[CHALLENGER_MODEL],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["automation", "serving", "canary"],
    params={
        "version": Param("@challenger", type="string", description="Version number or @alias to release."),
        "steps": Param(
            None,
            type=["null", "array"],
            items={"type": "integer", "minimum": 1, "maximum": 100},
            description="Canary percentages in order; empty = canary.steps.",
        ),
        "rollback": Param(False, type="boolean", description="Only roll back to the last good champion."),
        "reason": Param("", type="string", description="Recorded with a rollback."),
    },
)
def automate_canary_release() -> None:
    @task
    def plan_release(params: Any = None, triggering_asset_events: Any = None) -> Any:
        from pipelines.canary import steps

        return call(
            steps.plan,
            version=params["version"],
            steps=params["steps"],
            rollback=params["rollback"],
            events=event_extras(triggering_asset_events),
        )

    @task.branch
    def choose_path(plan: Any) -> str:
        from pipelines.canary import steps
        from pipelines.canary.contracts import ReleasePath

        path = ReleasePath(call(steps.route, plan))
        return {ReleasePath.ROLLBACK: "rollback", ReleasePath.RELEASE: "pre_rollout_check"}[path]

    @task
    def rollback(params: Any = None) -> Any:
        from pipelines.canary import steps

        # `version_to` is not a declared param; a run's conf may still carry it.
        return call(steps.rollback, params["reason"], params.get("version_to"), requested_by=DAG_ID)

    @task
    def pre_rollout_check(plan: Any) -> Any:
        from pipelines.canary import steps

        return call(steps.pre_rollout_check, plan)

    @task
    def traffic_steps(checked: Any) -> Any:
        from pipelines.canary import steps

        return call(steps.traffic_steps, checked)

    @task
    def promote(stepped: Any) -> Any:
        from pipelines.canary import steps

        return call(steps.promote, stepped)

    plan = plan_release()
    checked = pre_rollout_check(plan)
    choose_path(plan) >> [rollback(), checked]
    promote(traffic_steps(checked))


automate_canary_release()
