"""Any batch frequency, no spurious runs: DAG schedules come from the contract; an empty period skips.

``dags/_common.py`` reads the contract as plain YAML at parse time (no pandas, no settings), so
these tests point ``MLOPS_CONFIG`` at small YAML files and import the helpers directly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pendulum
import pytest

from pipelines.config import load_settings
from pipelines.core.errors import InvalidInputError, NothingToDoError, is_final, is_skip
from pipelines.quality.steps import resolve_batch_id

pytestmark = pytest.mark.template

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def common(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(REPO / "dags"))
    import _common

    return _common


@pytest.mark.parametrize(
    ("frequency", "batches", "cron", "start"),
    [
        ("month", ["2013-01", "2013-02"], "0 0 1 * *", (2013, 1, 1)),
        ("week", ["2021-W03", "2021-W04"], "0 0 * * 1", (2021, 1, 18)),
        ("day", ["2020-02-29"], "0 0 * * *", (2020, 2, 29)),
    ],
)
def test_schedule_and_start_date_follow_the_contract(
    common, frequency: str, batches: list[str], cron: str, start: tuple[int, int, int]
) -> None:
    contract = {"batch_frequency": frequency, "batches": batches, "event_timezone": "America/Chicago"}
    assert common.batch_schedule(contract) == cron
    first = common.first_batch_start(contract)
    assert (first.year, first.month, first.day, first.hour) == (*start, 0)
    assert first.timezone_name == "America/Chicago"


def test_contract_is_read_from_mlops_config_and_env_wins(
    common, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("dataset:\n  batch_frequency: week\n  batches: ['2021-W05']\n")
    monkeypatch.setenv("MLOPS_CONFIG", str(cfg))
    assert common.dataset_contract()["batch_frequency"] == "week"
    monkeypatch.setenv("MLOPS__DATASET__BATCH_FREQUENCY", "day")
    assert common.batch_schedule(common.dataset_contract()) == "0 0 * * *"
    # the shipped config: monthly flights, from the first configured month in New York time
    monkeypatch.delenv("MLOPS_CONFIG")
    monkeypatch.delenv("MLOPS__DATASET__BATCH_FREQUENCY")
    shipped = common.dataset_contract()
    assert common.batch_schedule(shipped) == "0 0 1 * *"
    assert common.first_batch_start(shipped) == pendulum.datetime(2013, 1, 1, tz="America/New_York")


def test_nothing_to_do_is_final_but_a_skip() -> None:
    exc = NothingToDoError("period has no batch")
    assert is_skip(exc) and is_final(exc)
    assert not is_skip(InvalidInputError("bad id"))


def test_call_turns_nothing_to_do_into_an_airflow_skip(common) -> None:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    def empty_period() -> None:
        raise NothingToDoError("skipped: period 2026-11 has no batch")

    def bad_id() -> None:
        raise InvalidInputError("bad id")

    with pytest.raises(AirflowSkipException, match="NothingToDoError: skipped: period 2026-11"):
        common.call(empty_period)
    with pytest.raises(AirflowFailException):
        common.call(bad_id)


def test_scheduled_quality_run_outside_the_batches_skips_and_an_explicit_one_does_not() -> None:
    settings = load_settings()
    now = pd.Timestamp("2026-11-01", tz="UTC").to_pydatetime()
    later = pd.Timestamp("2026-12-01", tz="UTC").to_pydatetime()
    with pytest.raises(NothingToDoError, match=r"'2026-11'.*not among the configured batches"):
        resolve_batch_id(settings, None, now, later)
    # an explicit id is taken as asked (landing then says the source has no such rows)
    assert resolve_batch_id(settings, "2026-11", now, later) == "2026-11"


def test_scheduled_monitoring_run_outside_the_batches_skips() -> None:
    from pipelines.monitoring import steps

    start = pd.Timestamp("2026-10-01", tz="UTC").to_pydatetime()
    end = pd.Timestamp("2026-11-01", tz="UTC").to_pydatetime()
    with pytest.raises(NothingToDoError, match="window '2026-10'"):
        steps.collect(None, None, start, end)
