"""Model optimisation, the pure parts: the Pareto front and the selection policies on a constructed case,
the task contracts, and the scorecard's stage reading and readiness points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.optimize.pareto import Objective, pareto_front, select

OBJ = [Objective("quality", "max"), Objective("p99", "min"), Objective("size", "min")]


ROWS = [
    {"name": "a", "quality": 0.80, "p99": 10.0, "size": 5},  # front: fastest among good ones
    {"name": "b", "quality": 0.85, "p99": 30.0, "size": 9},  # front: best quality
    {"name": "c", "quality": 0.79, "p99": 12.0, "size": 6},  # dominated by a on every axis
    {"name": "d", "quality": 0.80, "p99": 10.0, "size": 4},  # dominates a (same, smaller)
    {"name": "e", "quality": 0.90, "p99": None, "size": 1},  # unmeasured latency: never on the front
    {"name": "f", "quality": 0.70, "p99": 5.0, "size": 50},  # front: fastest overall
]


def test_pareto_front_on_constructed_case() -> None:
    front = [ROWS[i]["name"] for i in pareto_front(ROWS, OBJ)]
    assert front == ["b", "d", "f"]


def test_policy_best_quality_within_latency_budget() -> None:
    pick = select(
        ROWS,
        policy="best_quality_within_latency_budget",
        quality="quality",
        latency="p99",
        latency_budget=20.0,
        tie_breakers=[Objective("size", "min")],
    )
    assert pick.index is not None and ROWS[pick.index]["name"] == "d"  # a/d tie on quality+p99: smaller
    wide = select(
        ROWS,
        policy="best_quality_within_latency_budget",
        quality="quality",
        latency="p99",
        latency_budget=100.0,
    )
    assert wide.index is not None and ROWS[wide.index]["name"] == "b"  # e is unmeasured, never picked
    none = select(
        ROWS,
        policy="best_quality_within_latency_budget",
        quality="quality",
        latency="p99",
        latency_budget=1.0,
    )
    assert none.index is None and "fastest: f at 5" in none.reason


def test_policy_fastest_within_quality_tolerance() -> None:
    pick = select(
        ROWS,
        policy="fastest_within_quality_tolerance",
        quality="quality",
        latency="p99",
        latency_budget=100.0,
        quality_tolerance=0.06,
    )
    # best within budget is b (0.85); within 0.06: a, b, d -> fastest is a/d at 10 (a comes first)
    assert pick.index is not None and ROWS[pick.index]["name"] == "a"


# --------------------------------------------------------------------------- task contracts
def test_requests_are_rebuilt_from_dag_params_with_their_defaults() -> None:
    from pipelines.core.contracts import from_xcom
    from pipelines.optimize.contracts import ScorecardRequest, TuningRequest

    params = {"budget_seconds": -1, "window": "", "holdout": None, "propose": True, "unknown": 1}
    tuning = from_xcom(TuningRequest, params)
    assert tuning.budget is None and tuning.training_window is None and tuning.propose
    assert from_xcom(TuningRequest, {"budget_seconds": 0, "window": ["2013-01"]}).budget == 0.0
    assert from_xcom(TuningRequest, {"window": 3}).training_window == 3
    card = from_xcom(
        ScorecardRequest, {"measure_cost": False, "versions": " 1, 2,", "remeasure_training": True}
    )
    assert not card.measure_cost and card.version_list == ["1", "2"]
    assert ScorecardRequest(versions="").version_list is None


def test_a_result_without_a_registered_version_emits_no_challenger() -> None:
    from pipelines.core.contracts import invoke, to_xcom
    from pipelines.optimize import steps
    from pipelines.optimize.contracts import ProposedCandidate, TuningResult, TuningStatus

    skipped = TuningResult(
        registration=ProposedCandidate(),
        status=TuningStatus.SKIPPED,
        reason="skipped because budget is 0 (optimize.tuning_budget_seconds)",
        parent_run_id=None,
        default_score=None,
        best_score=None,
        report_path=None,
    )
    xcom = to_xcom(skipped)
    assert xcom["status"] == "skipped" and xcom["registration"]["version"] is None
    assert invoke(steps.has_new_challenger, xcom) is False


# --------------------------------------------------------------------------- scorecard (pure parts)
def test_every_declared_lifecycle_stage_is_defined_by_a_dag_file() -> None:
    from pipelines.config import REPO_ROOT
    from pipelines.optimize.scorecard import checkout_stage_dags

    stages = checkout_stage_dags(REPO_ROOT / "dags")
    assert len(stages) == 8 and len({s.dag_id for s in stages}) == 8
    assert all(s.defined_in for s in stages), [s for s in stages if not s.defined_in]


def test_stage_dags_read_only_the_folder_they_are_handed(tmp_path: Path) -> None:
    from pipelines.optimize.scorecard import declared_stages, stage_dags

    (tmp_path / "a.py").write_text('STAGES = {"x": "y"}\n')
    (tmp_path / "b.py").write_text(
        'LIFECYCLE_STAGES: dict[str, str] = {"train": "t_dag", "serve": "s_dag"}\n'
    )
    (tmp_path / "c.py").write_text('@dag(dag_id="t_dag")\ndef whatever() -> None: ...\n')
    (tmp_path / "s_dag.py").write_text("")
    stages = declared_stages(tmp_path)
    assert stages == {"train": "t_dag", "serve": "s_dag"}
    found = {s.stage: (s.dag_id, s.defined_in) for s in stage_dags(tmp_path, stages)}
    assert found == {"train": ("t_dag", ("c.py",)), "serve": ("s_dag", ("s_dag.py",))}
    assert declared_stages(tmp_path / "missing") == {}


def test_readiness_scores_the_points_of_each_phase_in_order() -> None:
    from pipelines.config import load_settings
    from pipelines.optimize.contracts import StageDag
    from pipelines.optimize.scorecard.metrics import gate_metrics
    from pipelines.optimize.scorecard.readiness import CheckoutFacts, PredictionLogReach, readiness

    events: dict[str, list[dict[str, Any]]] = {
        "training_run": [{"reason": "asset: batch"}, {"reason": "manual"}],
        "rollback": [{"version": "3", "stage": "canary step 50%"}],
    }
    r = readiness(
        load_settings(),
        events,
        {"versions": {}},
        {"available": False, "reason": "no Airflow metadata DB configured or found"},
        gate_metrics(events),
        PredictionLogReach(True, "sqlite:///x.db: 0 predictions, 0 labels"),
        CheckoutFacts(("docker-compose.yml",), (".ci/run",), 3, "suite.json", 5),
        [StageDag("training", "t_dag", ("t.py",)), StageDag("serving", "s_dag", ())],
    )
    cats = [p["category"] for p in r["points"]]
    assert cats == ["infrastructure"] * 4 + ["automation maturity"] * 6 + ["quality management"] * 6
    stage = {p["item"]: p for p in r["points"] if p["item"].startswith("stage automated")}
    assert stage["stage automated by a DAG: training"]["evidence"] == "t_dag in ['t.py']"
    assert stage["stage automated by a DAG: serving"]["evidence"] == "s_dag in no DAG file"
    assert r["passed"] == sum(1 for p in r["points"] if p["passed"]) and r["total"] == 16
    assert r["by_category"]["automation maturity"] == {"passed": 4, "total": 6}
