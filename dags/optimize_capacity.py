"""
### optimize_capacity — traffic forecast, measured replica throughput, replica recommendation

**Trigger.** Weekly, or manual.

**Params.** `source` (`prediction_log`, or `validated_batches` for a what-if when the log
does not cover enough time yet), `version` (model version to load-test; empty = champion),
`load_test` (default true), `apply` (default **false** = dry run: the scaling plan is
reported, nothing changes; true scales the compose `gateway` service through the Docker SDK
and fails if no engine answers).

**Flow.** plan — hourly requests from the prediction log by business time (`event_time`),
Holt-Winters (weekly season) back-tested beside the naive seasonal baseline (MAE, WAPE, MAPE
on the last week), forecast of the next period; a bounded load test of a fresh gateway
instance (`capacity.load_test_seconds`, `capacity.load_test_concurrency`); replicas =
ceil(peak × (1 + headroom) / measured per-replica throughput), with the arithmetic in the
report (`reports/optimize/capacity/`). Too little log gives "not enough data", not a number.
"""

from __future__ import annotations

from typing import Any

from _common import DEFAULT_ARGS, START_DATE, call
from airflow.sdk import Param, dag, task


@dag(
    dag_id="optimize_capacity",
    schedule="@weekly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["optimization", "capacity", "serving"],
    params={
        "source": Param("prediction_log", enum=["prediction_log", "validated_batches"]),
        "version": Param("", type="string", description="Version to load-test; empty = champion."),
        "load_test": Param(True, type="boolean"),
        "apply": Param(False, type="boolean", description="Really scale (default: dry run)."),
    },
)
def optimize_capacity() -> None:
    @task
    def plan(params: Any = None) -> Any:
        from pipelines.optimize import steps

        return call(steps.plan, params)

    plan()


optimize_capacity()
