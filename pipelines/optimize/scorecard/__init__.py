"""The operations scorecard: DORA-style delivery figures, gate pass rates, automation coverage
and the measurable readiness points, each with its evidence, from the pipeline's own records.

Modules, one job each:

* :mod:`.records` — every read (events, landing manifests, registry, prediction log, checkout);
* :mod:`.airflow_db` — the read-only queries on Airflow's metadata DB;
* :mod:`.metrics` — the KPI maths (pure);
* :mod:`.readiness` — the readiness points, per phase (pure);
* :mod:`.card` — the card: records in, one JSON-ready dict out;
* :mod:`.render` — text, plots and the HTML page;
* :mod:`.dag_files` — for the drivers: which DAG files define each stage's DAG.
"""

from pipelines.optimize.scorecard.card import build_scorecard, card_from_records
from pipelines.optimize.scorecard.dag_files import checkout_stage_dags, declared_stages, stage_dags
from pipelines.optimize.scorecard.render import render_html, render_text, write_scorecard_html

__all__ = [
    "build_scorecard",
    "card_from_records",
    "checkout_stage_dags",
    "declared_stages",
    "render_html",
    "render_text",
    "stage_dags",
    "write_scorecard_html",
]
