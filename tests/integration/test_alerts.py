"""Alerts: real POSTs to a local HTTP receiver (ports 18200-18299), and the Airflow notifier."""

from __future__ import annotations

from typing import Any

import pytest
from support.webhook import Receiver

from pipelines.core.observability import read_events


@pytest.mark.integration
def test_notifier_alerts_when_a_monitoring_task_fails(
    dagbag: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The monitoring DAG's on_failure_callback (AlertNotifier) posts to the webhook under dag.test()."""
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    run = dagbag.dags["automate_drift_monitoring"].test(run_conf={"window": "2013-13"})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states["collect"] == "failed", states
    bodies = [p["body"] for p in receiver.posts]
    assert len(bodies) == 1, bodies  # AirflowFailException: no retries, one alert
    body = bodies[0]
    assert body["kind"] == "task_failure" and body["severity"] == "error"
    assert body["fields"]["dag_id"] == "automate_drift_monitoring" and body["fields"]["task_id"] == "collect"
    assert "month 13 out of range" in body["message"]
    (event,) = read_events(tmp_path / "var" / "events", "alert")
    assert event["delivered"] is True
