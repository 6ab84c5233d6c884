"""The backtest on a small real run (issue 12): the second dataset's months, real models, real gate,
real Evidently drift for the policy. Structure, invariants and determinism of the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import load_settings
from pipelines.replay.backtest import STRATEGIES, default_path, main, run_backtest

pytestmark = pytest.mark.decisions

REPO = Path(__file__).resolve().parents[2]
SECOND = REPO / "tests" / "data" / "second_dataset" / "pipeline.yaml"


@pytest.fixture
def small_settings(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The second dataset, its own runtime root, and monitoring minimums its ~74-row months can meet
    (the defaults ask for 1000 predictions: every window would be no_decision)."""
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("MLOPS__MONITORING__MIN_WINDOW_ROWS", "50")
    monkeypatch.setenv("MLOPS__MONITORING__MIN_MATURE_LABELS", "20")
    return load_settings(SECOND)


def _table(doc: dict) -> list[tuple]:
    """What must not move between two runs with the same seed (CPU-seconds do, by nature)."""
    return [
        (r["month"], r["strategy"], round(r["value"], 10), r["model"], r["retrains"], r["after_month"])
        for r in doc["rows"]
    ]


def test_backtest_table_structure_invariants_and_determinism(small_settings) -> None:  # type: ignore[no-untyped-def]
    months = list(small_settings.dataset.batches)[:6]
    doc = run_backtest(small_settings, months)
    n = small_settings.training.window_batches
    served = months[n + 1 :]
    assert doc["served_months"] == served
    # one row per served month and strategy, every value a finite metric of the dataset's kind
    assert sorted((r["month"], r["strategy"]) for r in doc["rows"]) == sorted(
        (m, s) for m in served for s in STRATEGIES
    )
    assert all(r["metric"] == "mae" and r["value"] > 0 for r in doc["rows"])
    by = {(r["month"], r["strategy"]): r for r in doc["rows"]}
    first = served[0]
    # every strategy serves the bootstrap model in the first served month: same value
    assert {by[(first, s)]["model"] for s in STRATEGIES} == {"v1"}
    assert len({by[(first, s)]["value"] for s in STRATEGIES}) == 1
    # never retrains nothing; monthly retrains after every served month but the last
    assert all(by[(m, "never")]["retrains"] == 0 and by[(m, "never")]["model"] == "v1" for m in served)
    assert by[(served[-1], "monthly")]["retrains"] == len(served) - 1
    summary = {s["strategy"]: s for s in doc["summary"]}
    assert summary["policy"]["retrains"] <= summary["monthly"]["retrains"]
    assert summary["never"]["train_cpu_seconds"] == 0
    assert summary["monthly"]["train_cpu_seconds"] > 0
    for s in STRATEGIES:  # counts only grow; a promotion needs a retrain
        counts = [by[(m, s)]["retrains"] for m in served]
        assert counts == sorted(counts)
        assert by[(served[-1], s)]["promotions"] <= by[(served[-1], s)]["retrains"]
    # the policy judged every served month but the last, with the monitoring policy's own words
    assert [d["window"] for d in doc["policy_decisions"]] == served[:-1]
    assert {d["action"] for d in doc["policy_decisions"]} <= {"retrain", "no_retrain", "no_decision"}
    # every gate call names its strategy and candidate, and its outcome matches the promotions
    passed = sum(g["passed"] for g in doc["gates"] if g["strategy"] == "monthly")
    assert passed == summary["monthly"]["promotions"]
    assert set(doc["payoff"]) >= {"met"}

    again = run_backtest(small_settings, months)
    assert _table(again) == _table(doc)
    assert again["policy_decisions"] == doc["policy_decisions"]


def test_cli_writes_the_report_under_the_runtime_root(small_settings, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLOPS_CONFIG", str(SECOND))
    assert main(["--months", "5"]) == 0
    path = default_path(small_settings)
    assert path == small_settings.paths.root / "reports" / "demo" / "backtest.json"
    doc = json.loads(path.read_text())
    assert doc["dataset"] == "diabetes"
    assert {r["strategy"] for r in doc["rows"]} == set(STRATEGIES)
    assert "never" in capsys.readouterr().out
