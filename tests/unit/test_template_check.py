"""``mlops config check`` names every inert stage and fails on contradictions (the issue's situations).

The data is what the issue's new user had: an hourly regression dataset (~720 rows a month), event
times without a zone. Each test writes that dataset and a config with the situation in question,
then reads the check's one line per stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.cli import main as mlops
from pipelines.config import load_settings
from pipelines.template import check, exit_code, stage_lines

pytestmark = pytest.mark.template

MONTHS = ["2011-01", "2011-02", "2011-03", "2011-04", "2011-05", "2011-06"]


def _write(
    folder: Path, overrides: dict[str, Any] | None = None, dataset: dict[str, Any] | None = None
) -> Path:
    rng = np.random.default_rng(7)
    times = pd.date_range("2011-01-01 00:00", "2011-06-30 23:00", freq="h")
    temp = 10 + 10 * np.sin(np.arange(len(times)) / 24 * 2 * np.pi) + rng.normal(0, 2, len(times))
    df = pd.DataFrame(
        {
            "reading_id": [f"R{i:05d}" for i in range(len(times))],
            "measured_at": times.strftime("%Y-%m-%d %H:%M:%S"),
            "temp": temp.round(2),
            "site": rng.choice(["north", "south", "east"], len(times)),
            "load_kw": (300 + 8 * temp + rng.normal(0, 30, len(times))).round(1),
        }
    )
    df.to_csv(folder / "load.csv", index=False)
    suite = {
        "name": "load",
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "temp"},
                "meta": {"severity": "row", "why": "a reading without temperature is unusable"},
            }
        ],
    }
    (folder / "expectations.json").write_text(json.dumps(suite))
    contract: dict[str, Any] = {
        "name": "load",
        "source": {"path": "load.csv"},
        "id": {"column": "reading_id"},
        "event_time": "measured_at",
        "event_timezone": "UTC",
        "target": {"name": "load_kw", "task": "regression"},
        "features": {"numeric": ["temp"], "categorical": ["site"]},
        "batches": MONTHS,
        "slice_columns": ["site"],
        "expectation_suite": "expectations.json",
    }
    contract.update(dataset or {})
    # a config that fits the data: every stage can act
    cfg: dict[str, Any] = {
        "dataset": contract,
        "training": {"min_rows": 500, "min_holdout_rows": 200},
        "gate": {
            "slice_min_rows": 100,
            "behavioural": [
                {"name": "warmer_more_load", "kind": "directional", "column": "temp", "op": "add",
                 "value": 5.0, "expect": "increase", "tolerance": 5.0},
                {"name": "site_invariance", "kind": "invariance", "column": "site", "op": "set",
                 "value": "north", "tolerance": 50.0},
            ],
        },
        "serving": {"prediction_buckets": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]},
        "canary": {"quality_min_labels": 100},
        "monitoring": {"min_window_rows": 300, "min_mature_labels": 200, "hysteresis_m": 2},
    }  # fmt: skip
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> dict[str, tuple[str, str]]:
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    findings = check(load_settings(_write(tmp_path, **kw)))
    lines: dict[str, tuple[str, str]] = {
        stage: (level, reason) for stage, level, reason in stage_lines(findings)
    }
    lines["_exit"] = (str(exit_code(findings)), "")
    return lines


def test_a_config_that_fits_the_data_passes_every_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(tmp_path, monkeypatch)
    assert {stage: level for stage, (level, _) in lines.items()} == {
        "data": "ok", "quality": "ok", "training": "ok", "gate": "ok", "serving": "ok",
        "canary": "ok", "monitoring": "ok", "retrain": "ok", "schedule": "ok", "_exit": "0",
    }  # fmt: skip


def test_monitoring_windows_smaller_than_min_window_rows_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(tmp_path, monkeypatch, overrides={"monitoring": {"min_window_rows": 1000}})
    assert lines["monitoring"] == (
        "warn",
        "monitoring can never decide: min_window_rows 1000 > largest batch 744",
    )
    assert lines["retrain"][0] == "warn" and "never fires" in lines["retrain"][1]
    assert lines["_exit"][0] == "0"  # inert is a warning; only a contradiction fails


def test_too_few_mature_labels_means_performance_is_never_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(tmp_path, monkeypatch, overrides={"monitoring": {"min_mature_labels": 600}})
    level, reason = lines["monitoring"]
    assert level == "warn" and "performance is never judged" in reason
    assert "min_mature_labels 600 > ~572 labels matured by a window's end" in reason


def test_daily_batches_with_a_week_of_label_delay_never_judge_performance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = [f"2011-01-{d:02d}" for d in range(1, 15)]
    lines = _lines(
        tmp_path,
        monkeypatch,
        dataset={"batch_frequency": "day", "batches": days},
        overrides={
            "training": {"min_rows": 24, "min_holdout_rows": 24},
            "gate": {"slice_min_rows": 5},
            "canary": {"quality_min_labels": 10},
            "monitoring": {"min_window_rows": 24, "min_mature_labels": 10},
        },
    )
    assert lines["monitoring"] == (
        "warn",
        "performance is never judged (drift only): label_delay_days 7 >= one day",
    )


def test_slices_smaller_than_slice_min_rows_are_never_gated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(tmp_path, monkeypatch, overrides={"gate": {"slice_min_rows": 1000}})
    level, reason = lines["gate"]
    assert level == "warn" and reason.startswith(
        "no slice is ever gated: slice_min_rows 1000 > largest slice group"
    )


def test_auc_sized_margins_on_an_mae_metric_are_a_contradiction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(
        tmp_path,
        monkeypatch,
        overrides={
            "gate": {
                "regression": {"primary_metric": "mae", "absolute": {"mae": 60.0}},
                "max_regression": 0.01,
            },
            "monitoring": {"max_performance_drop": 0.05},
        },
    )
    assert lines["gate"][0] == "error" and "gate.max_regression 0.01 is in mae units" in lines["gate"][1]
    assert "gate.slice_tolerance 0.03 is in mae units" in lines["gate"][1]
    assert (
        lines["monitoring"][0] == "error"
        and "max_performance_drop 0.05 is in mae units" in lines["monitoring"][1]
    )
    assert lines["_exit"][0] == "1"


def test_probability_sized_behavioural_tolerance_on_a_regression_target_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = [
        {"name": "a", "kind": "invariance", "column": "temp", "op": "add", "value": 1.0, "tolerance": 0.02},
        {
            "name": "b",
            "kind": "invariance",
            "column": "site",
            "op": "set",
            "value": "north",
            "tolerance": 50.0,
        },
    ]
    lines = _lines(tmp_path, monkeypatch, overrides={"gate": {"behavioural": checks}})
    assert lines["gate"][0] == "warn" and "tolerance 0.02 is in target units" in lines["gate"][1]


def test_probability_buckets_for_a_regression_target_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default_buckets = [round(0.05 * i, 2) for i in range(1, 20)]
    lines = _lines(tmp_path, monkeypatch, overrides={"serving": {"prediction_buckets": default_buckets}})
    assert lines["serving"][0] == "warn" and "prediction_buckets end at 0.95" in lines["serving"][1]


def test_naive_times_read_as_utc_in_another_zone_are_named_with_the_rows_they_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(tmp_path, monkeypatch, dataset={"event_timezone": "America/New_York"})
    level, reason = lines["data"]
    assert level == "warn"
    assert "5 source rows outside every configured batch (2010-12: 5)" in reason
    assert "read as UTC" in reason and "naive_timestamps" in reason
    # stating the convention clears it: local wall-clock times all fall in configured batches
    (tmp_path / "fixed").mkdir()
    fixed = _lines(
        tmp_path / "fixed",
        monkeypatch,
        dataset={"event_timezone": "America/New_York", "naive_timestamps": "local"},
    )
    assert fixed["data"][0] == "ok"


def test_training_that_can_never_act_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines(tmp_path, monkeypatch, overrides={"training": {"min_holdout_rows": 1000}})
    assert lines["training"] == (
        "warn",
        "training can never act: min_holdout_rows 1000 > largest labelled batch 744",
    )


def test_a_gate_no_candidate_can_pass_and_unknown_columns_are_contradictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines(
        tmp_path,
        monkeypatch,
        overrides={
            "gate": {"behavioural": [], "min_behavioural_checks": 2},
            "monitoring": {"important_features": ["humidity"]},
            "serving": {"non_null_features": ["temp", "pressure"]},
        },
    )
    assert (
        lines["gate"][0] == "error"
        and "0 behavioural checks configured < gate.min_behavioural_checks 2" in lines["gate"][1]
    )
    assert lines["monitoring"][0] == "error" and "['humidity'] are not features" in lines["monitoring"][1]
    assert lines["serving"][0] == "error" and "['pressure'] are not features" in lines["serving"][1]
    assert lines["_exit"][0] == "1"


def test_mlops_config_check_prints_one_line_per_stage_and_exits_by_the_worst(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    cfg = _write(tmp_path, overrides={"monitoring": {"min_window_rows": 1000}})
    monkeypatch.setenv("MLOPS_CONFIG", str(cfg))
    assert mlops(["config", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    stages = [line.split(":")[0] for line in out if not line.startswith("#")]
    assert stages == [
        "data",
        "quality",
        "training",
        "gate",
        "serving",
        "canary",
        "monitoring",
        "retrain",
        "schedule",
    ]
    assert "monitoring: warn: monitoring can never decide: min_window_rows 1000 > largest batch 744" in out
    assert mlops(["config", "check", "--strict"]) == 1
    monkeypatch.setenv("MLOPS__MONITORING__IMPORTANT_FEATURES", '["nope"]')
    assert mlops(["config", "check"]) == 1


def test_a_suite_the_quality_gate_refuses_is_a_contradiction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    cfg = _write(tmp_path)
    suite = json.loads((tmp_path / "expectations.json").read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "pressure"},
            "meta": {"severity": "row"},
        }
    )
    (tmp_path / "expectations.json").write_text(json.dumps(suite))
    findings = check(load_settings(cfg))
    quality = [f for f in findings if f.stage == "quality"]
    assert (
        quality
        and quality[0].level == "error"
        and "'pressure' is not in the dataset contract" in quality[0].reason
    )
    assert exit_code(findings) == 1


@pytest.mark.parametrize(
    "config",
    sorted((Path(__file__).resolve().parents[2] / "tests" / "data").glob("*/pipeline.yaml")),
    ids=lambda p: p.parent.name,
)
def test_every_worked_example_passes_the_check_on_every_stage(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    lines = stage_lines(check(load_settings(config)))
    assert [(stage, level) for stage, level, _ in lines if level != "ok"] == [], lines
