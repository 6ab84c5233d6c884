"""Consistent structured logging and durable event records for every step.

Every log line carries the ids bound with :func:`log_context` (batch id, run id,
model version...), whatever logging setup the host process has: under Airflow the
lines land in the task log, on the CLI they are printed as ``key=value`` pairs.

Pipeline events (gate verdicts, releases, rollbacks, retrain decisions) are
written by :func:`record_event` as one JSON file per event, named by a
deterministic key, so a re-run task rewrites its own record instead of adding a
duplicate; the monitoring and optimization phases read them back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from structlog.contextvars import bound_contextvars, get_contextvars

from pipelines.core.redact import redact, redact_text


class StepLogger:
    """A structlog logger that always merges the bound context into the event."""

    def __init__(self, name: str) -> None:
        self._log = structlog.get_logger(name)

    def _emit(self, level: str, event: str, **kw: Any) -> None:
        # The one redaction rule (pipelines.core.redact): no URL password or secret in any line.
        getattr(self._log, level)(redact_text(event), **redact({**get_contextvars(), **kw}))

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", event, **kw)


def get_logger(name: str) -> StepLogger:
    return StepLogger(name)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Bind ids (batch_id=..., run_id=...) to every log line emitted inside the block."""
    with bound_contextvars(**{k: v for k, v in ids.items() if v is not None}):
        yield


_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temp file and rename, so readers never see half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(redact_text(json.dumps(redact(obj), indent=2, sort_keys=True, default=str)))
    tmp.replace(path)


def record_event(events_dir: Path, kind: str, key: str, **fields: Any) -> Path:
    """Record a pipeline event idempotently: the same (kind, key) overwrites its own file."""
    path = events_dir / kind / f"{_SAFE.sub('_', key)}.json"
    payload = {
        "kind": kind,
        "key": key,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **get_contextvars(),
        **fields,
    }
    write_json_atomic(path, payload)
    return path


def read_events(events_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """All recorded events (of one kind), oldest first by record time."""
    root = events_dir / kind if kind else events_dir
    if not root.exists():
        return []
    out = [json.loads(p.read_text()) for p in root.rglob("*.json")]
    return sorted(out, key=lambda e: (e.get("recorded_at", ""), e.get("key", "")))
