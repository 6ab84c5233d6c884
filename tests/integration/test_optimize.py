"""Optimization phase (issue 7): Pareto choice, budgeted tuning through the real gate, capacity
planning on real hourly counts with a measured load test, unit costs, and the scorecard.

The module works in its own runtime root (copy of the session's GX-validated batches, its own
MLflow store, prediction log and event records), so nothing here leaks into other modules.
"""

from __future__ import annotations

import math
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.config import REPO_ROOT, ModelFamily, Settings, load_settings
from pipelines.core.observability import read_events, record_event, write_json_atomic
from pipelines.optimize.capacity import plan_capacity, request_series
from pipelines.optimize.forecast import (
    covered_tail,
    forecast_next_period,
    hourly_counts,
    recommend_replicas,
)

pytestmark = pytest.mark.integration

TUNE_WINDOW = ["2013-03"]
HOLDOUT = "2013-04"
TUNE_BUDGET = 20.0


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def opt(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, published_batches: list[dict[str, Any]]
) -> Iterator[Settings]:
    """A private runtime root holding a copy of the session's validated batches."""
    root = tmp_path_factory.mktemp("optimize") / "var"
    src = settings.paths.validated / settings.dataset.name
    shutil.copytree(src, root / "validated" / settings.dataset.name)
    with pytest.MonkeyPatch.context() as mp:
        # Child processes (the load-tested gateway instance) read the same root from the env.
        mp.setenv("MLOPS__PATHS__ROOT", str(root))
        s = load_settings()
        # Fewer boosting rounds than production: the tests check the machinery, not the skill.
        fast = {**s.training.estimator_params, "max_iter": 60}
        yield s.model_copy(update={"training": s.training.model_copy(update={"estimator_params": fast})})


@pytest.fixture(scope="module")
def tuned(opt: Settings) -> dict[str, Any]:
    from pipelines.optimize.tuning import tune

    t0 = time.perf_counter()
    report = tune(opt, TUNE_WINDOW, HOLDOUT, budget_seconds=TUNE_BUDGET)
    report["_wall"] = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------- Pareto + policy (pure)


# --------------------------------------------------------------------------- tuning
def test_tuning_budget_zero_is_skipped_with_reason(opt: Settings) -> None:
    from pipelines.optimize.tuning import tune

    report = tune(opt, TUNE_WINDOW, HOLDOUT, budget_seconds=0)
    assert report["status"] == "skipped"
    assert report["reason"] == "skipped because budget is 0 (optimize.tuning_budget_seconds)"
    assert "best_score" not in report and "candidate" not in report


def test_tuning_respects_budget_and_winner_goes_through_the_gate(
    opt: Settings, tuned: dict[str, Any]
) -> None:
    from mlflow import MlflowClient

    from pipelines.core.registry import champion_version, client_for

    r = tuned
    # Budget: the study stops before a trial that would no longer fit, so it can only overrun
    # by the amount one trial is slower than the slowest before it.
    assert r["elapsed_seconds"] <= TUNE_BUDGET + r["max_trial_seconds"], r["fit_seconds"]
    assert r["trials_completed"] >= 1
    assert r["default_score"] is not None and r["best_score"] is not None
    # One MLflow child run per trial (plus the baseline) under the parent run.
    client = MlflowClient(opt.tracking_uri)
    children = client.search_runs(
        [r["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{r['parent_run_id']}'"
    )
    assert len(children) == r["trials_completed"] + r["trials_failed"] + 1
    logged = sorted(c.data.metrics["valid_roc_auc"] for c in children)
    assert max(logged) == pytest.approx(max(r["best_score"], r["default_score"]))

    assert r["status"] == "proposed", r["reason"]
    assert r["gain"] > 0 and r["best_score"] > r["default_score"]
    cand = r["candidate"]
    # The winner went through the normal training chain: evaluation + gate + registration.
    verdicts = [e for e in read_events(opt.paths.events, "gate_verdict") if e["run_id"] == cand["run_id"]]
    assert len(verdicts) == 1 and verdicts[0]["verdict"] == cand["verdict"]
    mv = client_for(opt).get_model_version(opt.mlflow.registered_model, cand["version"])
    assert mv.tags["gate.verdict"] == cand["verdict"]
    assert mv.tags["mlops.reason"].startswith("tuning:") and r["parent_run_id"] in mv.tags["mlops.reason"]
    run = client.get_run(cand["run_id"])
    for name, value in r["best_params"].items():
        assert float(run.data.params[f"est.{name}"]) == pytest.approx(float(value))
    # Only the gate decides the challenger alias; tuning never touches @champion.
    assert (cand["alias"] == "challenger") == (cand["verdict"] == "passed")
    assert champion_version(opt) is None


# --------------------------------------------------------------------------- capacity
def _log_business_traffic(settings: Settings, batch_ids: list[str]) -> int:
    """The prediction log of a replay that scored every flight once, written by the gateway's own
    log writer: one request per flight, business time = the flight's scheduled hour."""
    from pipelines.core.predlog import LoggedRequest, PredictionLogWriter, log_url
    from pipelines.data.validated import load_batches

    c = settings.dataset
    df = load_batches(settings, batch_ids)[[c.id.column, c.event_time]]
    writer = PredictionLogWriter(log_url(settings), flush_ms=50)
    now = datetime.now(UTC).isoformat()
    for eid, t in zip(df[c.id.column].tolist(), df[c.event_time].tolist(), strict=True):
        writer.submit(
            LoggedRequest(
                request_id=uuid.uuid4().hex,
                ts=now,
                variant="champion",
                model_version="1",
                columns=[],
                values=[],
                n_rows=1,
                predictions=[0.5],
                latency_ms=1.0,
                entity_ids=[eid],
                event_times=[t],
            )
        )
    assert writer.flush(timeout=300)
    writer.close()
    return len(df)


def test_forecast_beats_or_ties_naive_on_real_hourly_counts(opt: Settings) -> None:
    cap = opt.optimize.capacity
    logged = _log_business_traffic(opt, ["2013-01", "2013-02", "2013-03", "2013-04"])
    series, info = request_series(opt, "prediction_log")
    assert info["rows"] == logged and series.sum() == logged
    series, _ = covered_tail(series, cap.max_gap_hours)
    # Real seasonality: weekday profile differs from weekends, nights are empty.
    by_hour = series.groupby(series.index.hour).mean()
    assert by_hour.loc[2] < 0.05 * by_hour.max()
    fc = forecast_next_period(
        series,
        season=cap.season_hours,
        horizon=cap.horizon_hours,
        holdout=cap.holdout_hours,
        tie_tolerance=cap.tie_tolerance,
    )
    assert fc.status == "ok", fc.reason
    # The naive baseline recomputed here: the last season before the holdout, repeated.
    train, test = series.iloc[: -cap.holdout_hours], series.iloc[-cap.holdout_hours :]
    naive = np.tile(train.to_numpy()[-cap.season_hours :], 2)[: cap.holdout_hours]
    naive_mae = float(np.mean(np.abs(naive - test.to_numpy())))
    assert fc.holdout["naive_seasonal"]["mae"] == pytest.approx(naive_mae)
    hw = fc.holdout["holt_winters"]["mae"]
    assert hw <= naive_mae * (1 + cap.tie_tolerance), f"Holt-Winters {hw:.3f} vs naive {naive_mae:.3f}"
    assert fc.method_used == "holt_winters"
    assert len(fc.forecast) == cap.horizon_hours and min(fc.forecast) >= 0


def test_too_little_log_gives_not_enough_data(opt: Settings, tmp_path: Path) -> None:
    short = hourly_counts(
        __import__("pandas").Series(["2013-01-01T10:00:00+00:00"] * 5 + ["2013-01-03T10:00:00+00:00"]),
        "America/New_York",
    )
    fc = forecast_next_period(short, season=168, horizon=168, holdout=168, tie_tolerance=0.05)
    assert fc.status == "not_enough_data" and fc.peak_per_hour is None and not fc.forecast
    empty = opt.model_copy(
        update={
            "serving": opt.serving.model_copy(update={"prediction_log_url": f"sqlite:///{tmp_path}/e.db"})
        }
    )
    report = plan_capacity(empty, load_test=False)
    assert report["recommendation"]["status"] == "not_enough_data"
    assert "replicas" not in report["recommendation"]
    assert report["recommendation"]["reason"].startswith("not enough data")


def test_replica_recommendation_follows_measured_throughput(opt: Settings, tuned: dict[str, Any]) -> None:
    from pipelines.optimize.loadtest import run_load_test

    version = tuned["candidate"]["version"]
    lt = run_load_test(opt, version, seconds=3, concurrency=2, in_process=True)
    assert lt["requests_ok"] > 0 and not lt["errors"]
    assert lt["requests_per_s"] == pytest.approx(lt["requests_ok"] / lt["seconds"])
    # Arithmetic checked against the measured figure: a peak chosen to need exactly k replicas.
    cap = opt.optimize.capacity
    for peak_per_hour in (100.0, lt["predictions_per_s"] * 3600 * 2.5):
        plan = recommend_replicas(
            peak_per_hour,
            lt["predictions_per_s"],
            headroom=cap.headroom,
            min_replicas=cap.min_replicas,
            max_replicas=cap.max_replicas,
        )
        expected = math.ceil(peak_per_hour / 3600 * (1 + cap.headroom) / lt["predictions_per_s"])
        assert plan.replicas == min(max(expected, cap.min_replicas), cap.max_replicas)
        assert plan.per_replica_rps == lt["predictions_per_s"]
    assert (
        recommend_replicas(
            lt["predictions_per_s"] * 3600 * 2.5,
            lt["predictions_per_s"],
            headroom=0.5,
            min_replicas=1,
            max_replicas=8,
        ).replicas
        == 4
    )  # 3.75 -> 4
    with pytest.raises(ValueError, match="positive measured"):
        recommend_replicas(100.0, 0.0, headroom=0.5, min_replicas=1, max_replicas=8)


# --------------------------------------------------------------------------- model choice
def test_model_choice_skips_a_failing_family_and_picks_by_policy(opt: Settings) -> None:
    from mlflow import MlflowClient

    from pipelines.optimize.model_choice import choose_model

    mc = opt.optimize.model_choice.model_copy(
        update={
            "families": [
                ModelFamily(
                    name="logreg",
                    task="classification",
                    categorical_encoding="onehot",
                    estimator="sklearn.linear_model.LogisticRegression",
                    params={"max_iter": 300},
                ),
                ModelFamily(
                    name="broken",
                    task="classification",
                    estimator="sklearn.linear_model.LogisticRegression",
                    params={"C": -1.0},
                ),
                ModelFamily(
                    name="tree",
                    task="classification",
                    estimator="sklearn.tree.DecisionTreeClassifier",
                    params={"max_depth": 6},
                ),
                ModelFamily(name="ridge", task="regression", estimator="sklearn.linear_model.Ridge"),
            ],
            "latency_requests": 40,
            "warmup_requests": 5,
            "latency_budget_ms": 10_000.0,
        }
    )
    s = opt.model_copy(update={"optimize": opt.optimize.model_copy(update={"model_choice": mc})})
    r = choose_model(s, TUNE_WINDOW, HOLDOUT)
    rows = {row["name"]: row for row in r["rows"]}
    assert set(rows) == {"logreg", "broken", "tree"} and r["not_applicable"] == ["ridge (regression)"]
    broken = rows["broken"]
    assert broken["status"] == "skipped" and broken["reason"].startswith("skipped because fit failed")
    assert not {"quality", "p99_latency_ms", "train_seconds", "model_size_bytes"} & set(broken)
    for name in ("logreg", "tree"):
        row = rows[name]
        assert row["status"] == "ok" and row["latency_requests"] == 40
        assert 0 < row["p50_latency_ms"] <= row["p99_latency_ms"] and row["model_size_bytes"] > 0
    # With a budget nobody misses, the policy is simply "best quality".
    best = max(("logreg", "tree"), key=lambda n: rows[n]["quality"])
    assert r["pick"] == best and rows[best]["picked"] and rows[best]["pareto"]
    assert Path(r["plot"]).stat().st_size > 0
    run = MlflowClient(s.tracking_uri).get_run(r["parent_run_id"])
    assert run.data.tags["model_choice.pick"] == best


# --------------------------------------------------------------------------- unit cost
def test_cost_per_1k_predictions_is_measured_and_logged(opt: Settings, tuned: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from pipelines.optimize.cost import measure_resources
    from pipelines.optimize.unit_cost import version_costs

    with measure_resources("busy", country_iso_code="USA", energy=False) as usage:
        c0 = time.process_time()
        sum(i * i for i in range(2_000_000))
        own = time.process_time() - c0
    assert usage.cpu_seconds >= 0.9 * own and usage.energy_kwh is None
    assert usage.energy_source == "energy not requested"

    version = tuned["candidate"]["version"]
    out = version_costs(opt, [version], predictions=100, remeasure_training=False)
    row = out["versions"][0]
    per_1k = row["serving_per_1k"]
    assert per_1k["cpu_seconds"] > 0
    assert (per_1k["energy_kwh"] is None) == ("unavailable" in row["serving_source"])
    metrics = MlflowClient(opt.tracking_uri).get_run(row["run_id"]).data.metrics
    assert metrics["serving_cpu_seconds_per_1k"] == pytest.approx(per_1k["cpu_seconds"])
    # The tuned candidate's training run was measured when it was trained.
    assert row["training"]["cpu_seconds"] == pytest.approx(metrics["training_cpu_seconds"])
    # Measured once: a scheduled re-run reports the figures logged on the run (same table).
    again = {r["version"]: r for r in version_costs(opt, remeasure_training=False)["versions"]}
    assert again[version]["serving_per_1k"]["cpu_seconds"] == pytest.approx(per_1k["cpu_seconds"])
    assert again[version]["serving_source"].startswith("logged on the run")


# --------------------------------------------------------------------------- scorecard
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat(timespec="seconds")


def test_scorecard_matches_a_known_sequence_of_records(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from pipelines.optimize.scorecard import (
        build_scorecard,
        checkout_stage_dags,
        render_text,
        write_scorecard_html,
    )

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
        s = load_settings()
    ev = s.paths.events
    # Three batches arrive (landing manifests), the third is re-landed (corrected) later.
    arrivals = {"2013-01": [0], "2013-02": [60], "2013-03": [120, 150]}
    for b, mins in arrivals.items():
        hist = [{"landed_at": _at(m), "sha256": f"{b}{m}"} for m in mins]
        write_json_atomic(
            s.paths.landing / s.dataset.name / b / "manifest.json", {"current": hist[-1], "history": hist}
        )
    gates = [
        ("2013-01", "passed", 100, 0),
        ("2013-02", "passed_with_warnings", 100, 10),
        ("2013-03", "rejected", 100, 100),
        ("2013-03b", "passed", 100, 5),
    ]
    for i, (b, status, rows_in, q) in enumerate(gates):
        record_event(
            ev,
            "quality_gate",
            f"{b}:{i}",
            batch_id=b[:7],
            status=status,
            rows_in=rows_in,
            rows_accepted=rows_in - q,
            rows_quarantined=q,
            recorded_at=_at(5 + 60 * i),
        )
    # Registry: v1 trained on 01 (holdout 02), v2 on 01..02 (holdout 03), v3 on 02..03 (holdout 03).
    client = MlflowClient(s.tracking_uri, s.tracking_uri)
    name = s.mlflow.registered_model
    client.create_registered_model(name)
    lineage = {"1": ("2013-01", "2013-02"), "2": ("2013-01,2013-02", "2013-03"), "3": ("2013-02", "2013-03")}
    for v, (train, hold) in lineage.items():
        mv = client.create_model_version(
            name,
            source=str(tmp_path / f"model{v}"),
            tags={
                "data.train_batches": train,
                "data.holdout_batch": hold,
                "code.git_sha": "abc",
                "dedupe_key": f"k{v}",
            },
        )
        assert str(mv.version) == v
    for i, (verdict, failed) in enumerate(
        [("passed", []), ("passed", []), ("rejected", ["absolute:roc_auc"]), ("passed", [])]
    ):
        record_event(
            ev,
            "gate_verdict",
            f"run{i}",
            run_id=f"run{i}",
            verdict=verdict,
            failed_criteria=failed,
            recorded_at=_at(70 + i),
        )
    for i, reason in enumerate(["asset: validated batch", "drift monitor, window 2013-03: x", "manual"]):
        record_event(ev, "training_run", f"t{i}", reason=reason, recorded_at=_at(65 + i))
    # Promotions: v1 at +90 (02 arrived +60 -> 30 min), v2 at +200 (03 re-landed +150 -> 50 min).
    record_event(
        ev, "release", "m/v1", version="1", action="bootstrap", promoted_at=_at(90), recorded_at=_at(90)
    )
    record_event(
        ev, "release", "m/v2", version="2", action="release", promoted_at=_at(200), recorded_at=_at(200)
    )
    # v3's canary is rejected at step 50, and later a manual rollback of the champion.
    record_event(
        ev, "rollback", "m/v3/x", version="3", stage="canary step 50%", reason="p99", recorded_at=_at(260)
    )
    record_event(ev, "rollback", "m/manual/y", reason="ops", recorded_at=_at(300))
    # Drift: a retrain decision at +170 (recovered by v2 at +200), a no_retrain, an open one at +280.
    record_event(ev, "retrain_decision", "2013-03", action="retrain", recorded_at=_at(170))
    record_event(ev, "retrain_decision", "2013-04", action="no_retrain", recorded_at=_at(230))
    record_event(ev, "retrain_decision", "2013-05", action="retrain", recorded_at=_at(280))
    record_event(
        ev,
        "monitoring_window",
        "2013-03",
        window="2013-03",
        status="ok",
        drift_share=0.4,
        recorded_at=_at(165),
    )

    card = build_scorecard(s, checkout_stage_dags(REPO_ROOT / "dags"))
    d = card["delivery"]
    # Computed independently from the records written above.
    df = d["deployment_frequency"]
    assert (
        df["promotions"] == 2 and df["batch_periods"] == 3 and df["per_batch_period"] == pytest.approx(2 / 3)
    )
    span_days = (300 - 5) / (60 * 24)  # first record +5, last +300 minutes
    assert df["per_wall_clock_day"] == pytest.approx(2 / span_days)
    lead = {x["version"]: x for x in d["lead_time"]["per_release"]}
    assert lead["1"]["batch"] == "2013-02" and lead["1"]["hours"] == pytest.approx(30 / 60)
    assert lead["2"]["batch"] == "2013-03" and lead["2"]["hours"] == pytest.approx(50 / 60)
    assert d["lead_time"]["hours"]["median"] == pytest.approx(40 / 60)
    cfr = d["change_failure_rate"]
    assert (cfr["attempts"], cfr["rollbacks_total"]) == (3, 2) and cfr["rate"] == pytest.approx(2 / 3)
    ttr = d["time_to_recover"]
    assert ttr["hours"]["n"] == 1 and ttr["hours"]["median"] == pytest.approx(30 / 60)
    assert ttr["open_incidents"] == 1 and ttr["incidents"][0]["recovered_by"] == "2"
    g = card["gates"]
    assert g["quality_gate"]["pass_rate"] == pytest.approx(3 / 4)
    assert g["quality_gate"]["quarantined_share"] == pytest.approx(115 / 400)
    assert g["evaluation_gate"]["pass_rate"] == pytest.approx(3 / 4)
    assert g["evaluation_gate"]["failed_criteria"] == {"absolute:roc_auc": 1}
    assert g["canary"]["pass_rate"] == pytest.approx(2 / 3)
    a = card["automation"]
    assert a["training_triggers"] == {"asset event": 1, "drift monitor": 1, "manual / other": 1}
    assert a["training_automated_share"] == pytest.approx(2 / 3)
    points = {p["item"]: p for p in card["readiness"]["points"]}
    assert points["automatic rollback exercised (canary rejected during rollout)"]["passed"] is True
    assert points["every model version carries lineage (data batches, code version, dedupe key)"]["passed"]
    r = card["readiness"]
    assert r["passed"] == sum(1 for p in r["points"] if p["passed"]) and r["total"] == len(r["points"])

    text = render_text(card)
    assert "2 promotions over 3 batch periods" in text and "(2 rollbacks / 3 attempts)" in text
    path = write_scorecard_html(s, card)
    page = path.read_text()
    assert page.count("data:image/png;base64,") >= 3 and "Lead time per release" in page
    assert (path.parent / "scorecard.json").exists()


# --------------------------------------------------------------------------- DAG wiring
def test_optimize_dags_run_budget_zero_tuning_and_the_scorecard(opt: Settings, dagbag: Any) -> None:
    from pipelines.replay.orchestration import run_dag

    rec = run_dag(dagbag.dags["optimize_tuning"], {"budget_seconds": 0}, xcom_tasks=("tune",))
    assert rec.ok, rec.task_states
    assert rec.xcom["tune"]["status"] == "skipped" and rec.task_states["emit_challenger"] == "skipped"
    rec = run_dag(dagbag.dags["optimize_scorecard"], {"measure_cost": False}, xcom_tasks=("scorecard",))
    assert rec.ok, rec.task_states
    assert rec.task_states["cost"] == "skipped" and Path(rec.xcom["scorecard"]["html"]).exists()


def test_model_choice_works_on_the_second_dataset(
    second_dataset_settings: Settings, second_dataset_published: list[dict]
) -> None:
    """The template is contract-driven: a regression table gets regression families and r2."""
    from pipelines.optimize.model_choice import choose_model

    s = second_dataset_settings
    mc = s.optimize.model_choice.model_copy(
        update={"latency_requests": 20, "warmup_requests": 2, "latency_budget_ms": 10_000.0}
    )
    s = s.model_copy(
        update={
            "optimize": s.optimize.model_copy(update={"model_choice": mc}),
            "training": s.training.model_copy(update={"min_holdout_rows": 30}),
        }
    )
    batches = [b["batch_id"] for b in second_dataset_published]
    r = choose_model(s, batches[:3], batches[3])
    assert r["metric"] == "r2"
    assert {row["name"] for row in r["rows"]} == {f.name for f in mc.families if f.task == "regression"}
    assert all(row["status"] == "ok" for row in r["rows"]), [row.get("reason") for row in r["rows"]]
    assert r["pick"] is not None
