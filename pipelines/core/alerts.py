"""Alerts: to the task log always, to a webhook when one is configured, recorded as events.

Two ways in:

* :func:`send_alert` — a plain function steps call (drift found, a retrain decision, a
  quality-gate rejection, a rollback). It logs, records an ``alert`` event (idempotent
  per ``kind``/``key``) and POSTs JSON to ``MLOPS_ALERT_WEBHOOK_URL`` when that secret is
  set. A webhook that is down is retried, then reported in the log and in the event
  (``delivered: false``); it never fails the step that raised the alert, whose own
  outcome is already recorded.
* :class:`AlertNotifier` — an Airflow notifier (``airflow.sdk.BaseNotifier``) for DAG and
  task callbacks. Attach it to any DAG::

      from pipelines.core.alerts import AlertNotifier

      @dag(..., default_args={**DEFAULT_ARGS, "on_failure_callback": AlertNotifier(kind="task_failure")})
      # or per task:  @task(on_failure_callback=AlertNotifier(kind="gate_failure"))
      # or per DAG run: @dag(..., on_failure_callback=AlertNotifier(kind="dag_failure"))

  ``message`` is a Jinja template rendered with the task context (e.g.
  ``"{{ dag.dag_id }} failed for {{ params.batch_id }}"``).

Webhook payload (one JSON object, ``Content-Type: application/json``)::

    {"kind": "drift", "severity": "warning", "message": "...", "key": "2013-07",
     "dataset": "flights", "model": "flight_delay_clf", "sent_at": "...Z", "fields": {...}}
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from airflow.sdk import BaseNotifier

from pipelines.config import Settings, load_secrets, load_settings
from pipelines.core.observability import get_logger, record_event

log = get_logger(__name__)

Severity = Literal["info", "warning", "error", "critical"]
ALERT_EVENT = "alert"


def build_payload(
    settings: Settings, kind: str, message: str, severity: str, key: str, **fields: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "key": key,
        "dataset": settings.dataset.name,
        "model": settings.mlflow.registered_model,
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fields": fields,
    }


def post_webhook(
    url: str, payload: dict[str, Any], attempts: int = 3, timeout_s: float = 5.0
) -> tuple[bool, str]:
    """POST with a short timeout and a few retries; returns (delivered, detail). Never raises."""
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            resp = httpx.post(url, json=payload, timeout=timeout_s)
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        else:
            if resp.status_code < 300:
                return True, f"HTTP {resp.status_code}"
            detail = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code < 500 and resp.status_code != 429:
                break  # a client error will not heal by retrying
        if attempt < attempts:
            time.sleep(0.5 * attempt)
    return False, detail


def send_alert(
    settings: Settings,
    kind: str,
    message: str,
    *,
    key: str | None = None,
    severity: Severity = "warning",
    **fields: Any,
) -> dict[str, Any]:
    """Log the alert, record it, and deliver it to the webhook if configured.

    Args:
        kind: what happened (``drift``, ``retrain_decision``, ``gate_failure``, ``rollback``,
            ``task_failure``...).
        key: identity of the occurrence (a window, a run id): re-sending the same kind and
            key overwrites its record instead of adding one. Default: a hash of the message.

    Returns:
        ``{"delivered": bool | None, "detail": str, "event": path}``; ``delivered`` is None
        when no webhook is configured.
    """
    key = key or hashlib.sha256(message.encode()).hexdigest()[:16]
    payload = build_payload(settings, kind, message, severity, key, **fields)
    level = {"info": log.info, "warning": log.warning}.get(severity, log.error)
    level(f"ALERT [{kind}] {message}", alert_kind=kind, alert_key=key, severity=severity)
    secret = load_secrets().alert_webhook_url
    delivered: bool | None = None
    detail = "no webhook configured (MLOPS_ALERT_WEBHOOK_URL unset): task log only"
    if secret is not None and secret.get_secret_value():
        delivered, detail = post_webhook(secret.get_secret_value(), payload)
        if not delivered:
            log.error("alert webhook delivery failed", alert_kind=kind, alert_key=key, detail=detail)
    path = record_event(
        settings.paths.events,
        ALERT_EVENT,
        f"{kind}-{key}",
        alert_kind=kind,
        severity=severity,
        message=message,
        delivered=delivered,
        delivery=detail,
        fields=fields,
    )
    return {"delivered": delivered, "detail": detail, "event": str(path)}


def _context_message(context: Any) -> tuple[str, str, dict[str, Any]]:
    """(message, key, fields) describing a task/DAG callback context."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    task_id = getattr(ti, "task_id", None)
    exc = context.get("exception")
    fields: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": getattr(ti, "try_number", None),
        "exception": f"{type(exc).__name__}: {exc}"[:1000] if exc else None,
        "reason": context.get("reason"),
    }
    where = f"{dag_id}.{task_id}" if task_id else dag_id
    text = f"{where} failed in run {run_id}" + (f": {fields['exception']}" if exc else "")
    return text, f"{dag_id}-{run_id}-{task_id or 'dag'}", fields


class AlertNotifier(BaseNotifier):
    """Airflow notifier that routes callbacks through :func:`send_alert`."""

    template_fields = ("message",)

    def __init__(self, kind: str = "task_failure", message: str = "", severity: Severity = "error") -> None:
        super().__init__()
        self.kind = kind
        self.message = message
        self.severity: Severity = severity

    def notify(self, context: Any) -> None:
        text, key, fields = _context_message(context)
        message = f"{self.message} ({text})" if self.message else text
        send_alert(load_settings(), self.kind, message, key=key, severity=self.severity, **fields)
        if self.kind in ("task_failure", "dag_failure"):  # a DAG may use it instead of DEFAULT_ARGS' callback
            from pipelines.core.metrics import task_outcome_callback

            task_outcome_callback(context, success=False)
