"""Backtest building blocks (issue 12): window strategies, calendar features, payoff arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.config import TrainingConfig, load_settings
from pipelines.data.source import calendar_part, load_source
from pipelines.data.validated import MARKER, validated_dir
from pipelines.replay.backtest import Goal, gain, payoff, summarize
from pipelines.training.window import (
    recency_weights,
    resolve_window,
    retrain_window,
    select_batches,
    window_count,
)

pytestmark = pytest.mark.decisions

MONTHS = [f"2013-{m:02d}" for m in range(1, 9)]


# --------------------------------------------------------------------------- window strategies
@pytest.mark.parametrize(
    ("strategy", "before", "expected"),
    [
        ("sliding", MONTHS[:6], MONTHS[3:6]),
        ("sliding", MONTHS[:2], MONTHS[:2]),  # young history: what exists
        ("expanding", MONTHS[:6], MONTHS[:6]),
        ("recency_weighted", MONTHS[:6], MONTHS[:6]),
        ("expanding", MONTHS[:1], MONTHS[:1]),
    ],
)
def test_window_strategy_selects_the_right_batches(
    strategy: str, before: list[str], expected: list[str]
) -> None:
    cfg = TrainingConfig(window_batches=3, window_strategy=strategy)  # type: ignore[arg-type]
    assert select_batches(cfg, before) == expected


def test_window_count_refuses_short_histories_outside_retrains() -> None:
    sliding = TrainingConfig(window_batches=3, window_strategy="sliding")
    expanding = TrainingConfig(window_batches=3, window_strategy="expanding")
    # A default (non-young) window asks for window_batches at least, so resolve_window refuses
    # a history that is too short instead of silently training on less.
    assert window_count(sliding, 2) == 3
    assert window_count(expanding, 2) == 3
    assert window_count(expanding, 7) == 7
    assert window_count(sliding, 7) == 3


def test_recency_weights_halve_every_half_life_and_ignore_labels() -> None:
    cfg = TrainingConfig(window_strategy="recency_weighted", recency_half_life=2.0)
    rows = pd.Series(["2013-01", "2013-03", "2013-02", "2013-03", "2013-01"])
    w = recency_weights(cfg, rows)
    assert w is not None
    # newest batch weighs 1, one batch older 0.5**(1/2), two older 0.5
    np.testing.assert_allclose(w, [0.5, 1.0, 0.5**0.5, 1.0, 0.5])
    assert recency_weights(TrainingConfig(window_strategy="expanding"), rows) is None
    assert recency_weights(TrainingConfig(window_strategy="sliding"), rows) is None


def _publish(settings, batch_id: str) -> None:  # type: ignore[no-untyped-def]
    folder = validated_dir(settings, batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": [1]}).to_parquet(folder / "accepted.parquet", index=False)
    marker = {
        "dataset": settings.dataset.name,
        "batch_id": batch_id,
        "uri": f"file://{folder / 'accepted.parquet'}",
        "rows": 1,
        "source_sha256": "test",
        "status": "passed",
    }
    (folder / MARKER).write_text(json.dumps(marker))


@pytest.mark.parametrize(
    ("strategy", "expected_train"), [("sliding", MONTHS[3:6]), ("expanding", MONTHS[:6])]
)
def test_resolve_and_retrain_windows_follow_the_strategy(
    tmp_path, monkeypatch, strategy: str, expected_train: list[str]
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS__TRAINING__WINDOW_STRATEGY", strategy)
    monkeypatch.setenv("MLOPS__TRAINING__WINDOW_BATCHES", "3")
    settings = load_settings()
    for m in MONTHS[:7]:
        _publish(settings, m)
    resolved = resolve_window(settings, None, MONTHS[6])
    assert list(resolved.train_batches) == expected_train
    assert resolved.holdout_batch == MONTHS[6]
    retrain = retrain_window(settings, MONTHS[6])
    assert retrain is not None
    assert list(retrain.train_batches) == expected_train
    # An explicit count or list always wins over the strategy.
    assert list(resolve_window(settings, 2, MONTHS[6]).train_batches) == MONTHS[4:6]


# --------------------------------------------------------------------------- calendar features
def test_calendar_parts_are_computed_from_the_local_event_time() -> None:
    ts = pd.Series(
        pd.to_datetime(["2013-11-28 10:00", "2013-12-20 08:00", "2013-07-01 05:00", "2013-01-01 00:30", None])
    ).dt.tz_localize("America/New_York")
    assert calendar_part(ts, "dayofyear").tolist()[:4] == [332, 354, 182, 1]
    assert calendar_part(ts, "weekofyear").tolist()[:4] == [48, 51, 27, 1]
    # Thanksgiving 2013-11-28 and New Year's Day are holidays; 2013-12-20 is 5 days from Christmas,
    # 2013-07-01 3 days from Independence Day.
    assert calendar_part(ts, "days_to_holiday").tolist()[:4] == [0, 5, 3, 0]
    assert all(pd.isna(calendar_part(ts, p).iloc[4]) for p in ("dayofyear", "weekofyear", "days_to_holiday"))


def test_days_to_holiday_is_capped() -> None:
    ts = pd.Series(pd.to_datetime(["2013-08-15 12:00"])).dt.tz_localize("UTC")
    assert calendar_part(ts, "days_to_holiday").tolist() == [18.0]  # Labor Day 2013-09-02
    far = pd.Series(pd.to_datetime(["2013-03-31 12:00"])).dt.tz_localize("UTC")
    assert calendar_part(far, "days_to_holiday").tolist() == [30.0]  # > 30 days from any holiday


def test_calendar_features_do_not_depend_on_the_outcome(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Leakage check: the landed calendar columns are a function of the event time only."""
    from pipelines.config import DatasetContract

    contract = DatasetContract.model_validate(
        {
            "name": "t",
            "source": {"path": str(tmp_path / "src.csv")},
            "id": {"column": "id"},
            "event_time": "ts",
            "event_timezone": "America/New_York",
            "target": {
                "name": "late",
                "task": "classification",
                "derive_from": "delay",
                "derive_op": "gt",
                "derive_threshold": 15,
            },
            "features": {"numeric": ["doy", "woy", "hol"], "categorical": []},
            "derived_time_features": {"doy": "dayofyear", "woy": "weekofyear", "hol": "days_to_holiday"},
            "drop_columns": ["delay", "actual_arrival"],
            "expectation_suite": "x.json",
        }
    )
    times = ["2013-11-28T15:00:00Z", "2013-12-24T02:00:00Z", "2013-07-04T12:00:00Z"]
    frames = []
    for delay, arrival in ((0, "2013-11-28T18:00:00Z"), (90, "2013-11-29T23:00:00Z")):
        pd.DataFrame(
            {"id": ["a", "b", "c"], "ts": times, "delay": [delay] * 3, "actual_arrival": [arrival] * 3}
        ).to_csv(tmp_path / "src.csv", index=False)
        frames.append(load_source(contract))
    cols = ["doy", "woy", "hol"]
    pd.testing.assert_frame_equal(frames[0][cols], frames[1][cols])
    assert frames[0]["late"].tolist() != frames[1]["late"].tolist()  # the outcome did change
    # 2013-12-24T02:00Z is 2013-12-23 21:00 in New York: the local calendar day is used.
    assert sorted(frames[0]["doy"].tolist()) == [185, 332, 357]  # (rows come sorted by time)


# --------------------------------------------------------------------------- payoff arithmetic
def _rows(values: dict[str, list[float]], retrains: dict[str, int]) -> list[dict]:
    months = [f"2013-{m:02d}" for m in range(5, 5 + len(values["never"]))]
    return [
        {
            "month": m,
            "strategy": s,
            "value": values[s][i],
            "retrains": retrains[s],
            "promotions": 0,
            "train_cpu_seconds": 1.5 * retrains[s],
        }
        for s in values
        for i, m in enumerate(months)
    ]


def test_payoff_met_only_when_all_three_conditions_hold() -> None:
    good = _rows(
        {"never": [0.70, 0.68, 0.66], "monthly": [0.70, 0.70, 0.70], "policy": [0.70, 0.70, 0.69]},
        {"never": 0, "monthly": 4, "policy": 2},
    )
    summary = {s["strategy"]: s for s in summarize(good, higher_is_better=True)}
    assert summary["policy"]["mean_gain"] == pytest.approx((0 + 0.02 + 0.03) / 3)
    assert summary["policy"]["worst_month_gain"] == pytest.approx(0.0)
    assert summary["never"]["mean_gain"] == 0
    assert payoff(list(summary.values()))["met"] is True

    too_many = _rows(
        {"never": [0.70, 0.68, 0.66], "monthly": [0.70, 0.70, 0.70], "policy": [0.70, 0.70, 0.69]},
        {"never": 0, "monthly": 4, "policy": 3},
    )
    verdict = payoff(summarize(too_many, higher_is_better=True))
    assert verdict["met"] is False and verdict["checks"]["retrains"]["met"] is False

    one_bad_month = _rows(
        {"never": [0.70, 0.68, 0.66], "monthly": [0.70, 0.70, 0.70], "policy": [0.675, 0.75, 0.72]},
        {"never": 0, "monthly": 4, "policy": 1},
    )
    verdict = payoff(summarize(one_bad_month, higher_is_better=True))
    assert verdict["checks"]["mean_gain"]["met"] is True
    assert verdict["checks"]["worst_month_gain"]["met"] is False
    assert verdict["met"] is False


def test_lower_is_better_gains_are_relative_reductions() -> None:
    assert gain(45.0, 50.0, higher_is_better=False) == pytest.approx(0.1)
    assert gain(55.0, 50.0, higher_is_better=False) == pytest.approx(-0.1)
    assert gain(0.72, 0.70, higher_is_better=True) == pytest.approx(0.02)
    assert Goal().max_retrain_ratio == 0.5
