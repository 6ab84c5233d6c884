"""Wiring shared by every DAG: asset definitions and default task arguments.

Only Airflow's light Task SDK is imported here; nothing from pipelines/ runs at
parse time. The ``_`` prefix keeps this file from being read as a DAG file
(it holds no DAG), and Airflow puts the dags folder on ``sys.path`` so DAG files
can import it as ``_common``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset

# A batch passed the quality gate; the event's extra carries {"batch_id", "uri", "rows", ...}.
VALIDATED_BATCH = Asset(name="validated_batch", uri="mlops://validated-batch")
# A candidate passed the evaluation gate and holds the @challenger alias; extra: {"version", ...}.
CHALLENGER_MODEL = Asset(name="challenger_model", uri="mlops://challenger-model")

START_DATE = pendulum.datetime(2013, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
}
