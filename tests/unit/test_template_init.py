"""``mlops init``: from a data file and a target, a config and a GX suite that the loop can act on.

The data is the issue's case: hourly readings (~720 a month), timestamps without a zone, a
regression target, plus a column that leaks the target (measured after the event).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.cli import main as mlops
from pipelines.config import load_settings
from pipelines.template import check, exit_code, stage_lines

pytestmark = pytest.mark.template


def _hourly_csv(folder: Path) -> Path:
    rng = np.random.default_rng(11)
    times = pd.date_range("2011-01-01 00:00", "2011-07-31 23:00", freq="h")
    temp = 10 + 10 * np.sin(np.arange(len(times)) / 24 * 2 * np.pi) + rng.normal(0, 2, len(times))
    load = 300 + 8 * temp + rng.normal(0, 30, len(times))
    df = pd.DataFrame(
        {
            "reading_id": [f"R{i:05d}" for i in range(len(times))],
            "measured_at": times.strftime("%Y-%m-%d %H:%M:%S"),
            "temp": temp.round(2),
            "humidity": rng.uniform(20, 90, len(times)).round(1),
            "site": rng.choice(["north", "south", "east"], len(times)),
            "load_kw": load.round(1),
            "billed_kwh": (load * 1.001).round(1),  # known only after the hour: a leak
        }
    )
    path = folder / "site_load.csv"
    df.to_csv(path, index=False)
    return path


def test_init_writes_a_config_every_stage_can_act_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _hourly_csv(tmp_path)
    out = tmp_path / "cfg"
    assert mlops(["init", "--data", str(data), "--target", "load_kw", "--out", str(out)]) == 0
    text = (out / "pipeline.yaml").read_text()
    raw = yaml.safe_load(text)
    contract = raw["dataset"]
    assert contract["event_time"] == "measured_at"  # detected
    assert contract["target"] == {"name": "load_kw", "task": "regression"}  # task detected
    assert contract["id"] == {"column": "reading_id"}
    assert contract["batch_frequency"] == "month" and len(contract["batches"]) == 7
    assert contract["slice_columns"] == ["site"]
    # the leak is dropped and flagged for review, with its evidence
    assert "billed_kwh" in contract["drop_columns"] and "billed_kwh" not in contract["features"]["numeric"]
    assert "billed_kwh\n" not in text and "LEAKAGE SUSPECT (REVIEW): |correlation| with load_kw is" in text
    # naive timestamps: the convention is stated and marked for review
    assert (
        contract["naive_timestamps"] == "utc" and "REVIEW: 100% of measured_at values carry no zone" in text
    )
    # thresholds from the data's own batch sizes, each with how it was derived
    assert raw["monitoring"]["min_window_rows"] == 372  # half a median month of 744 rows
    assert "# half a median batch (744 rows): every normal window can decide" in text
    assert raw["gate"]["slice_min_rows"] < 300 and len(raw["gate"]["behavioural"]) == 2
    tolerance = raw["gate"]["behavioural"][0]["tolerance"]
    assert 1 < tolerance < 10  # in load_kw units (2% of the target's std), not a probability
    assert max(raw["serving"]["prediction_buckets"]) > 300  # target-scale buckets
    assert "# window_batches: 3" in text  # equal to the default: a comment, not a restated value

    suite = json.loads((out / "expectations.json").read_text())
    assert suite["expectations"] and all(
        e["meta"]["severity"] in {"critical", "row"} and e["meta"]["why"] for e in suite["expectations"]
    )
    assert {"column_list": {"$PARAMETER": "landed_columns"}} in [e["kwargs"] for e in suite["expectations"]]

    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    settings = load_settings(out / "pipeline.yaml")
    assert settings.mlflow.experiment == "site_load"
    assert settings.mlflow.registered_model == "site_load_regression"
    findings = check(settings)
    assert {stage: level for stage, level, _ in stage_lines(findings)} == dict.fromkeys(
        ("data", "quality", "training", "gate", "serving", "canary", "monitoring", "retrain", "schedule"),
        "ok",
    )
    assert exit_code(findings) == 0


def test_init_derives_a_classification_config_with_class_minimums(tmp_path: Path) -> None:
    data = _hourly_csv(tmp_path)
    df = pd.read_csv(data)
    df["overload"] = (df["load_kw"] > df["load_kw"].quantile(0.8)).astype(int)
    df = df.drop(columns=["load_kw", "billed_kwh"])
    path = tmp_path / "overload.csv"
    df.to_csv(path, index=False)
    assert mlops(["init", "--data", str(path), "--target", "overload", "--out", str(tmp_path / "c")]) == 0
    raw = yaml.safe_load((tmp_path / "c" / "pipeline.yaml").read_text())
    assert raw["dataset"]["target"]["task"] == "classification"
    assert "min_class_rows" in (tmp_path / "c" / "pipeline.yaml").read_text()
    assert all(c["tolerance"] == 0.02 for c in raw["gate"]["behavioural"])  # probability points
    assert "prediction_buckets" not in raw.get("serving", {})


def test_init_refuses_a_missing_target_with_the_columns_it_has(tmp_path: Path) -> None:
    data = _hourly_csv(tmp_path)
    with pytest.raises(SystemExit, match="target column 'nope' is not in the data"):
        mlops(["init", "--data", str(data), "--target", "nope", "--out", str(tmp_path / "x")])
