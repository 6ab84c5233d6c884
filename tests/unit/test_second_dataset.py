"""The second dataset (a non-flights regression contract), the parts that read no data.

Its contract differs from the flights one, and pipelines/ holds no flights column literal.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


FLIGHTS_ONLY = {
    "flight_id", "time_hour", "is_late", "sched_dep_time", "sched_arr_time", "arr_delay",
    "dep_delay", "carrier", "tailnum", "wind_gust", "dest",
}  # fmt: skip


def test_second_dataset_is_a_different_regression_contract(second_dataset_settings, settings) -> None:
    contract = second_dataset_settings.dataset
    assert contract.name != settings.dataset.name
    assert contract.target.task == "regression"
    assert not set(contract.landed_columns) & set(settings.dataset.landed_columns)
    assert second_dataset_settings.resolve(contract.expectation_suite).parent == (
        REPO / "tests" / "data" / "second_dataset"
    )


def test_no_flights_column_name_is_hard_coded_in_pipelines() -> None:
    offenders = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FLIGHTS_ONLY:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert offenders == [], "column names must come from settings.dataset, not literals"
