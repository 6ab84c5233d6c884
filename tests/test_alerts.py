"""Alerts: real POSTs to a local HTTP receiver (ports 18200-18299), and the Airflow notifier."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipelines.core.observability import read_events


def _free_port() -> int:
    for port in range(18200, 18300):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18200-18299")


class Receiver:
    """A webhook endpoint that records every POST; ``fail_first`` answers 500 that many times."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(
                    {"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)}
                )
                status = 500 if len(receiver.posts) <= receiver.fail_first else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = _free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mlops"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_send_alert_posts_the_payload_and_records_it(
    isolated_settings: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.core.alerts import send_alert

    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", receiver.url)
    out = send_alert(
        isolated_settings,
        "drift",
        "window 2013-07: drift on dest",
        key="2013-07",
        window="2013-07",
        score=0.12,
    )
    assert out["delivered"] is True
    (post,) = receiver.posts
    assert post["path"] == "/hooks/mlops" and post["type"] == "application/json"
    body = post["body"]
    assert body["kind"] == "drift" and body["key"] == "2013-07" and body["severity"] == "warning"
    assert body["message"] == "window 2013-07: drift on dest"
    assert body["fields"] == {"window": "2013-07", "score": 0.12}
    assert body["dataset"] == isolated_settings.dataset.name
    (event,) = read_events(isolated_settings.paths.events, "alert")
    assert event["alert_kind"] == "drift" and event["delivered"] is True

    # Same kind and key again: delivered again, but one record (idempotent).
    send_alert(isolated_settings, "drift", "window 2013-07: drift on dest", key="2013-07")
    assert len(receiver.posts) == 2
    assert len(read_events(isolated_settings.paths.events, "alert")) == 1


def test_without_webhook_the_alert_goes_to_the_log_and_the_record(
    isolated_settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.core.alerts import send_alert

    monkeypatch.delenv("MLOPS_ALERT_WEBHOOK_URL", raising=False)
    out = send_alert(isolated_settings, "rollback", "canary v7 rolled back: p99 over SLO", severity="error")
    assert out["delivered"] is None and "MLOPS_ALERT_WEBHOOK_URL unset" in out["detail"]
    assert "ALERT [rollback] canary v7 rolled back" in capsys.readouterr().out
    (event,) = read_events(isolated_settings.paths.events, "alert")
    assert event["severity"] == "error"


def test_webhook_errors_are_retried_then_reported_never_raised(
    isolated_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.core.alerts import send_alert

    flaky = Receiver(fail_first=1)
    try:
        monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", flaky.url)
        assert send_alert(isolated_settings, "gate_failure", "candidate rejected", key="r1")["delivered"]
        assert len(flaky.posts) == 2  # 500, then retried
    finally:
        flaky.close()
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{_free_port()}/down")
    out = send_alert(isolated_settings, "gate_failure", "candidate rejected", key="r2")
    assert out["delivered"] is False and "ConnectError" in out["detail"]
    events = {e["key"]: e for e in read_events(isolated_settings.paths.events, "alert")}
    assert events["gate_failure-r2"]["delivered"] is False


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
