"""
### Standardize data quality (one batch)

**land → validate → publish.** A month of flights is landed as an immutable, content-addressed
file; the Great Expectations suite named by the dataset contract validates it:

* *critical* failures reject the batch: every row goes to quarantine with a report naming the
  failed expectations, the `validate` task fails (no retries: the data will not change by
  itself) and nothing downstream runs;
* *row-level* failures quarantine only the offending rows; the clean rows are published with
  status `passed_with_warnings`.

`publish` emits a `validated_batch` asset event whose extra carries
`{batch_id, uri, rows, rows_quarantined, status}`; `automate_training` is scheduled on it.

Trigger with `{"batch_id": "2013-03"}`; without it the batch is derived from the data interval.
Scheduled once per `dataset.batch_frequency` period from the first configured batch; a scheduled
period with no configured batch is skipped with its reason (`NothingToDoError`), not failed.
Replay a corrected file with `python -m pipelines.cli quality replay --batch-id ... --file ...`.
"""

from __future__ import annotations

from typing import Any

from _common import BATCH_SCHEDULE, DEFAULT_ARGS, START_DATE, VALIDATED_BATCH, call
from airflow.sdk import Param, dag, task

from pipelines.core.period_ids import PARAM_PATTERN


@dag(
    dag_id="standardize_data_quality",
    schedule=BATCH_SCHEDULE,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["standardization", "data-quality"],
    doc_md=__doc__,
    params={
        "batch_id": Param(
            "",
            type="string",
            pattern=PARAM_PATTERN,
            description="Batch to process (e.g. 2013-03). Empty: the batch of the data interval.",
        ),
    },
)
def standardize_data_quality() -> None:
    @task
    def land(
        params: Any = None, data_interval_start: Any = None, data_interval_end: Any = None, run_id: Any = None
    ) -> Any:
        from pipelines.quality import steps

        # no such batch in the source is final (InvalidInputError): retrying cannot make one appear
        return call(steps.land, params["batch_id"], data_interval_start, data_interval_end, run_id)

    @task
    def validate(landed: Any, run_id: Any = None) -> Any:
        from pipelines.quality import steps

        # a rejected batch is final (BatchRejected): quarantined already, retrying cannot change the data
        return call(steps.validate, landed, run_id)

    @task(outlets=[VALIDATED_BATCH])
    def publish(verdict: Any, run_id: Any = None, outlet_events: Any = None) -> Any:
        from pipelines.quality import steps

        extra = call(steps.publish, verdict, run_id)
        outlet_events[VALIDATED_BATCH].extra = extra
        return extra

    publish(validate(land()))


standardize_data_quality()
