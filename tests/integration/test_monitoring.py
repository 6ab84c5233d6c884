"""Monitoring on real data: real published months, a real registered champion, real Evidently.

See ``support/monitoring.py`` for the environment. What is asserted:

* stable windows (resamples of the champion's holdout month) give a low false-positive rate
  over 20 windows and never a retrain;
* an injected shift of an important feature triggers a retrain within one window, a moderate
  sustained one within the hysteresis cycle;
* bad evidence (no predictions, a corrupted log row, labels that never arrive, immature labels,
  an Evidently failure) is a recorded ``no_decision`` with its reason, never a retrain;
* the decision record, the retrain lock and the Evidently workspace are idempotent per window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support.monitoring import (
    HOLDOUT,
    MonitoringEnv,
    build_env,
    move_to_window,
    resample,
    serve,
    stable_windows,
)

from pipelines.core.observability import read_events, record_event


@pytest.fixture(scope="session")
def env(settings: Any, published_batches: list[dict]) -> MonitoringEnv:
    return build_env(settings, published_batches)


def shifted(frame: pd.DataFrame, column: str, delta: float) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column] + delta
    return out


def month(env: MonitoringEnv, target: str, seed: int, share: float = 0.3, src: str = HOLDOUT) -> pd.DataFrame:
    contract = env.base.dataset
    return move_to_window(resample(env.months[src], seed, share), contract, src, target)


def run_window(settings: Any, window: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from pipelines.monitoring.inputs import collect_window
    from pipelines.monitoring.monitor import run_monitoring
    from pipelines.monitoring.records import decision_for
    from pipelines.monitoring.retrain import decide_retrain

    collected = collect_window(settings, window, kw.pop("as_of", None))
    result = run_monitoring(settings, window, as_of=collected.as_of, collected=collected, **kw)
    decide_retrain(settings, window)
    return result.to_dict(), decision_for(settings, window) or {}


# --------------------------------------------------------------------------- false positives
def test_stable_windows_false_positive_rate(env: MonitoringEnv) -> None:
    """20 resamples of the holdout month: drift checks fire in <= 1 window, no retrain at all.

    The windows are built and judged by ``support.monitoring.stable_windows`` (shared with
    ``benchmarks/decisions_canary.py``, which reports the same rate as ``policy_false_alarm_rate``).
    """
    run = stable_windows(env, 20)
    aucs = run.aucs
    print(f"stable windows: violation rate {run.violation_rate:.2f}; AUC {min(aucs):.3f}..{max(aucs):.3f}")
    assert run.violation_rate <= 1 / 20
    assert "retrain" not in run.actions
    # the figures are real measurements, not constants: resamples differ
    assert len({round(a, 6) for a in aucs}) > 10


# --------------------------------------------------------------------------- injected drift
def test_injected_drift_triggers_retraining_within_one_window(env: MonitoringEnv) -> None:
    settings = env.scenario("injected")
    contract = settings.dataset
    calm = month(env, "2014-01", seed=1)
    serve(settings, env, calm)
    result, decision = run_window(settings, "2014-01", as_of="2014-02-15")
    assert result["status"] == "ok" and decision["action"] == "no_retrain", decision["reasons"]
    assert result["performance"]["baseline"] == pytest.approx(env.holdout_auc, abs=1e-5)

    # Real February rows, the departure schedule moved 3 hours later (HHMM + 300).
    moved = shifted(month(env, "2014-02", seed=2), "sched_dep_time", 300)
    serve(settings, env, moved)
    result, decision = run_window(settings, "2014-02", as_of="2014-03-15")
    drift = result["feature_drift"]["sched_dep_time"]
    assert drift["detected"] and drift["score"] >= 2.5 * drift["threshold"]
    assert decision["action"] == "retrain", decision["reasons"]
    assert any("sched_dep_time" in r for r in decision["reasons"])
    conf = decision["trigger_conf"]
    assert conf["holdout"] == "2013-04" and conf["window"] == ["2013-01", "2013-02", "2013-03"]
    assert "2014-02" in conf["reason"]

    # Evidence on disk: HTML report, round-trippable snapshot, decision record, lock.
    from evidently import Report  # noqa: F401  (the current API is what wrote them)
    from evidently.core.report import Snapshot

    assert Path(result["artifacts"]["drift_html"]).stat().st_size > 10_000
    snap = Snapshot.load(result["artifacts"]["drift_snapshot"])
    assert any(m["config"]["type"].endswith("ValueDrift") for m in snap.dict()["metrics"])
    events = {e["window"]: e for e in read_events(settings.paths.events, "retrain_decision")}
    assert events["2014-02"]["action"] == "retrain" and events["2014-01"]["action"] == "no_retrain"
    lock = json.loads((settings.paths.monitoring / "retrain_lock.json").read_text())
    assert lock["window"] == "2014-02"

    # One retrain in flight: the next drifted window is blocked until training reports back.
    serve(settings, env, shifted(month(env, "2014-04", seed=4), "sched_dep_time", 300))
    _, blocked = run_window(settings, "2014-04", as_of="2014-05-15")
    assert blocked["action"] == "no_retrain" and "in_flight" in blocked["blocked_by"]
    record_event(settings.paths.events, "gate_verdict", "run-after-retrain", verdict="passed")
    from pipelines.monitoring.records import decision_for
    from pipelines.monitoring.retrain import decide_retrain

    decide_retrain(settings, "2014-04")
    again = decision_for(settings, "2014-04") or {}
    assert again["action"] == "retrain", again["reasons"]  # lock released; w4 is past the cooldown
    assert contract.target.name == "is_late"


def test_moderate_sustained_drift_needs_two_windows(env: MonitoringEnv) -> None:
    settings = env.scenario("moderate")
    for i, wid in enumerate(["2014-06", "2014-07"]):
        # +80 (HHMM) ~ 0.17 reference std: past the threshold, short of "severe"
        serve(settings, env, shifted(month(env, wid, seed=10 + i), "sched_dep_time", 80))
    first, d1 = run_window(settings, "2014-06", as_of="2014-07-15")
    score = first["feature_drift"]["sched_dep_time"]["score"]
    assert 0.1 <= score < 0.25, score
    assert d1["action"] == "no_retrain" and any("hysteresis: 1 of the last 1" in r for r in d1["reasons"])
    _, d2 = run_window(settings, "2014-07", as_of="2014-08-15")
    assert d2["action"] == "retrain", d2["reasons"]


# --------------------------------------------------------------------------- bad input
def test_no_predictions_is_recorded_no_decision(env: MonitoringEnv) -> None:
    settings = env.scenario("empty")
    result, decision = run_window(settings, "2014-09")
    assert result["status"] == "insufficient_data" and "no served predictions" in result["reason"]
    assert decision["action"] == "no_decision" and decision["trigger_conf"] is None
    rec = read_events(settings.paths.events, "retrain_decision")
    assert [e["action"] for e in rec] == ["no_decision"]
    alerts = read_events(settings.paths.events, "alert")
    assert any(a["alert_kind"] == "retrain_decision" and "no_decision" in a["message"] for a in alerts)


def test_corrupted_log_row_is_recorded_no_decision(env: MonitoringEnv) -> None:
    from pipelines.core.predlog import PREDICTIONS, engine_for, log_url

    settings = env.scenario("corrupt")
    frame = shifted(month(env, "2014-10", seed=5), "sched_dep_time", 300)  # drifted, too
    serve(settings, env, frame)
    with engine_for(log_url(settings)).begin() as conn:
        conn.execute(
            PREDICTIONS.update()
            .where(PREDICTIONS.c.entity_id == frame["flight_id"].iloc[7])
            .values(features='{"sched_dep_time": 5')
        )
    result, decision = run_window(settings, "2014-10")
    assert result["status"] == "error" and "corrupted prediction log" in result["reason"]
    assert "features JSON unreadable" in result["reason"]
    assert decision["action"] == "no_decision"  # never a retrain on damaged evidence


def test_labels_that_never_arrive_block_the_performance_decision(env: MonitoringEnv) -> None:
    settings = env.scenario("nolabels")
    serve(settings, env, month(env, "2014-11", seed=6), labels=False)
    result, decision = run_window(settings, "2014-11", as_of="2015-06-01")
    assert result["status"] == "ok" and result["performance"]["n_labels"] == 0
    assert decision["action"] == "no_decision"
    assert any("performance not evaluated" in r and "0 matured labels" in r for r in decision["reasons"])
    assert "performance_html" not in result["artifacts"]


def test_immature_labels_block_then_mature_labels_decide(env: MonitoringEnv) -> None:
    settings = env.scenario("maturity")
    serve(settings, env, month(env, "2014-12", seed=7))  # labels 7 days after each flight
    early, d_early = run_window(settings, "2014-12", as_of="2014-12-08T12:00:00+00:00")
    perf = early["performance"]
    assert perf["n_labels"] < settings.monitoring.min_mature_labels < perf["n_labels"] + perf["n_immature"]
    assert d_early["action"] == "no_decision"
    assert any("matured labels" in r for r in d_early["reasons"])
    # Re-run of the same window later: the labels have matured, the decision replaces the old one.
    late, d_late = run_window(settings, "2014-12", as_of="2015-01-10")
    assert late["performance"]["n_labels"] > 5000 and late["performance"]["value"] is not None
    assert d_late["action"] == "no_retrain", d_late["reasons"]
    assert [e["action"] for e in read_events(settings.paths.events, "retrain_decision")] == ["no_retrain"]


def test_evidently_failure_is_recorded_no_decision(env: MonitoringEnv) -> None:
    from pipelines.config import DriftTest

    bad = {"carrier": DriftTest(method="no_such_stattest", threshold=0.1)}
    settings = env.scenario("evidently_fails", column_tests=bad)
    serve(settings, env, shifted(month(env, "2015-01", seed=8), "sched_dep_time", 300))
    result, decision = run_window(settings, "2015-01")
    assert result["status"] == "error" and "monitoring failed" in result["reason"]
    assert "no_such_stattest" in result["reason"]
    assert decision["action"] == "no_decision" and decision["trigger_conf"] is None
    assert not (settings.paths.monitoring / "retrain_lock.json").exists()


# --------------------------------------------------------------------------- idempotency, workspace
def test_rerun_replaces_records_and_workspace_snapshots(env: MonitoringEnv) -> None:
    from pipelines.monitoring.workspace import INDEX_FILE, project_name, workspace_path

    settings = env.scenario("rerun")
    serve(settings, env, month(env, "2015-02", seed=9))
    first, d1 = run_window(settings, "2015-02", as_of="2015-03-20")
    second, d2 = run_window(settings, "2015-02", as_of="2015-03-20")
    assert first["feature_drift"] == second["feature_drift"] and d1["action"] == d2["action"]
    assert len(read_events(settings.paths.events, "retrain_decision")) == 1
    assert len(read_events(settings.paths.events, "monitoring_window")) == 1

    from evidently.ui.workspace import Workspace

    ws = Workspace(str(workspace_path(settings)))
    (project,) = ws.search_project(project_name(settings))
    runs = {str(r) for r in ws.list_runs(project.id)}
    index = json.loads((workspace_path(settings) / INDEX_FILE).read_text())
    assert runs == {index["2015-02/drift"], index["2015-02/performance"]}  # two, not four
    titles = [p.title for p in ws.get_dashboard(project.id).panels]
    assert "Drift of important features" in titles and any(
        "roc_auc" in t.lower() or "RocAuc" in t for t in titles
    )
