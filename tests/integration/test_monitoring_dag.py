"""The monitoring DAG end to end under ``dag.test()``: monitoring -> policy -> training trigger.

Under ``dag.test()`` a ``TriggerDagRunOperator`` creates the ``automate_training`` run in state
*queued* and does not execute it (STACK_NOTES §1); the test asserts that run and its conf,
which is exactly what the scheduler would start.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.monitoring import HOLDOUT, MonitoringEnv, build_env, move_to_window, resample, serve

from pipelines.core.observability import read_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(settings: Any, published_batches: list[dict]) -> MonitoringEnv:
    return build_env(settings, published_batches)


def test_dag_parses_with_expected_wiring(dagbag: Any) -> None:
    assert "automate_drift_monitoring" not in dagbag.import_errors
    dag = dagbag.dags["automate_drift_monitoring"]
    assert set(dag.task_dict) == {"collect", "monitor", "decide", "choose", "trigger_training", "no_retrain"}
    assert dag.task_dict["trigger_training"].trigger_dag_id == "automate_training"
    assert dag.task_dict["choose"].downstream_task_ids == {"trigger_training", "no_retrain"}


def test_window_param_takes_the_kernels_batch_id_pattern(dagbag: Any) -> None:
    """The DAG imports the pandas-free ``pipelines.core.period_ids`` pattern the kernel validates with."""
    from pipelines.core.periods import PARAM_PATTERN

    dag = dagbag.dags["automate_drift_monitoring"]
    assert dag.params.get_param("window").schema["pattern"] == PARAM_PATTERN


def test_monitoring_dag_triggers_training_only_when_the_policy_fires(
    env: MonitoringEnv, dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    settings = env.scenario("dag")
    # The tasks load their settings from the environment, like on a worker.
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(settings.paths.root))
    monkeypatch.setenv("MLOPS__MLFLOW__TRACKING_URI", env.tracking_uri)
    contract = settings.dataset
    calm = move_to_window(resample(env.months[HOLDOUT], 21, 0.3), contract, HOLDOUT, "2014-03")
    serve(settings, env, calm)
    drifted = move_to_window(resample(env.months[HOLDOUT], 22, 0.3), contract, HOLDOUT, "2014-05")
    drifted["sched_dep_time"] = drifted["sched_dep_time"] + 300
    serve(settings, env, drifted)

    dag = dagbag.dags["automate_drift_monitoring"]
    calm_run = dag.test(run_conf={"window": "2014-03", "as_of": "2014-04-20"})
    states = {ti.task_id: str(ti.state) for ti in calm_run.get_task_instances()}
    assert str(calm_run.state) == "success", states
    assert states["no_retrain"] == "success" and states["trigger_training"] == "skipped"

    run = dag.test(run_conf={"window": "2014-05", "as_of": "2014-06-20"})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    assert states["trigger_training"] == "success" and states["no_retrain"] == "skipped"

    decisions = {e["window"]: e for e in read_events(settings.paths.events, "retrain_decision")}
    assert decisions["2014-03"]["action"] == "no_retrain"
    assert decisions["2014-05"]["action"] == "retrain"
    with create_session() as session:
        triggered = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "automate_training", DagRun.run_id == "drift_retrain__2014-05")
            .one()
        )
        assert str(triggered.state) == "queued"
        conf = dict(triggered.conf)
    assert conf == decisions["2014-05"]["trigger_conf"]
    assert conf["window"] == ["2013-01", "2013-02", "2013-03"] and conf["holdout"] == "2013-04"
    assert "sched_dep_time" in conf["reason"]

    # Re-running the window neither duplicates the decision nor starts a second training run.
    again = dag.test(run_conf={"window": "2014-05", "as_of": "2014-06-20"})
    states = {ti.task_id: str(ti.state) for ti in again.get_task_instances()}
    assert states["trigger_training"] in {"skipped", "success"}
    with create_session() as session:
        n = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "automate_training", DagRun.run_id.like("drift_retrain__2014-05%"))
            .count()
        )
    assert n == 1
    assert len(read_events(settings.paths.events, "retrain_decision")) == 2
