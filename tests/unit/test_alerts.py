"""Alerts: real POSTs to a local HTTP receiver (ports 18200-18299)."""

from __future__ import annotations

from typing import Any

import pytest
from support.webhook import Receiver, free_port

from pipelines.core.observability import read_events


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
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/down")
    out = send_alert(isolated_settings, "gate_failure", "candidate rejected", key="r2")
    assert out["delivered"] is False and "ConnectError" in out["detail"]
    events = {e["key"]: e for e in read_events(isolated_settings.paths.events, "alert")}
    assert events["gate_failure-r2"]["delivered"] is False
