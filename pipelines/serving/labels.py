"""The label write path (``POST /labels``): who may write, what a label may be, and its record.

Labels feed the canary's quality test and the retrain policy, so a wrong one changes which
model serves. The rules, all checked before anything is written:

* **Who**: a bearer token of its own (``MLOPS_LABELS_TOKEN``), never the admin token, so a
  label feeder cannot promote or roll back. Without a configured token the path is closed
  (503), unless ``serving.labels_allow_unauthenticated`` is set for a local experiment. The
  token is checked before the body is read.
* **What**: the body is read under the byte limit and ``serving.labels_max_records``, while it
  arrives; each record is ``{"entity_id", "label", "event_time"?, "available_at"?}`` and
  nothing else; the id is a bounded printable string (or an integer); the label is a finite
  number of the task's kind (a class of the target for classification, any finite number for
  regression); times are ISO-8601 strings.
* **Record**: the upsert is idempotent (the same label again changes nothing but the audit
  trail) and each written label gets a ``label_audit`` row with the writer's identity (a
  fingerprint of its token, never the token), the request id and the value it replaced.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from pipelines.config import Settings
from pipelines.serving.inputs import (
    BadInputError,
    Unrepresentable,
    iso_problem,
    loads,
    number_problem,
    text_problem,
)

FIELDS = ("entity_id", "label", "event_time", "available_at")


def token_identity(token: str) -> str:
    """Who wrote, for the audit trail: a stable fingerprint that cannot be turned back into the token."""
    return "labels-token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def allowed_labels(settings: Settings) -> tuple[str, set[float] | None]:
    """(what a label must be, the finite class set or None when any value of that kind goes)."""
    target = settings.dataset.target
    if target.task == "regression":
        return "a finite number (regression target)", None
    if settings.serving.label_classes:
        classes = {float(c) for c in settings.serving.label_classes}
        return f"one of the classes {sorted(classes)} (serving.label_classes)", classes
    if target.derive_from is not None:
        return "0 or 1 (binary target)", {0.0, 1.0}
    return "a non-negative integer class (classification target)", None


def parse_labels(body: bytes, settings: Settings) -> list[dict[str, Any]]:
    """The label records of a ``POST /labels`` body, checked (raises :class:`BadInputError`)."""
    cfg = settings.serving
    if not body or not body.strip():
        raise BadInputError('empty body: send {"labels": [{"entity_id": ..., "label": ...}, ...]}')
    payload = loads(body)
    if not isinstance(payload, dict) or set(payload) != {"labels"}:
        got = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
        raise BadInputError(f'the body must be an object with one key "labels"; got {got}')
    records = payload["labels"]
    if not isinstance(records, list) or not records:
        raise BadInputError("'labels' must be a non-empty list of label records")
    if len(records) > cfg.labels_max_records:
        raise BadInputError(
            f"{len(records)} label records; the limit is {cfg.labels_max_records} "
            "(serving.labels_max_records): split them",
            status_code=413,
        )
    expected, classes = allowed_labels(settings)
    task = settings.dataset.target.task
    return [_record(i, r, expected, classes, task, cfg.max_id_chars) for i, r in enumerate(records)]


def _record(
    i: int, r: Any, expected: str, classes: set[float] | None, task: str, max_chars: int
) -> dict[str, Any]:
    where = f"labels[{i}]"
    if not isinstance(r, dict):
        raise BadInputError(f"{where} is a {type(r).__name__}, expected an object")
    unknown = sorted(set(r) - set(FIELDS))
    if unknown:
        shown = [u[:40].encode("utf-8", "backslashreplace").decode() for u in unknown[:5]]
        raise BadInputError(f"{where} has unknown field(s) {shown}: a label record holds {list(FIELDS)}")
    entity = r.get("entity_id")
    if type(entity) is int:
        entity = str(entity)
    if type(entity) is not str or not entity:
        raise BadInputError(f"{where}.entity_id: expected a non-empty string or integer, got {_kind(entity)}")
    problem = text_problem(entity, max_chars)
    if problem:
        raise BadInputError(f"{where}.entity_id: {problem}")
    label = r.get("label")
    problem = number_problem(label)
    if problem:
        raise BadInputError(f"{where}.label: {problem}; expected {expected}")
    if isinstance(label, bool) or not isinstance(label, (int, float)):
        raise BadInputError(f"{where}.label: expected {expected}, got {_kind(label)}")
    value = float(label)
    if not math.isfinite(value):
        raise BadInputError(f"{where}.label: {label} is not finite; expected {expected}")
    if classes is not None and value not in classes:
        raise BadInputError(f"{where}.label: {label} is not {expected}")
    if task == "classification" and classes is None and (value < 0 or not value.is_integer()):
        raise BadInputError(f"{where}.label: {label} is not {expected}")
    out: dict[str, Any] = {"entity_id": entity, "label": value}
    for key in ("event_time", "available_at"):
        text = r.get(key)
        if text is None:
            out[key] = None
            continue
        if type(text) is not str:
            raise BadInputError(f"{where}.{key}: expected an ISO-8601 string, got {_kind(text)}")
        problem = text_problem(text) or iso_problem(text, max_chars)
        if problem:
            raise BadInputError(f"{where}.{key}: {problem}")
        out[key] = text
    return out


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, Unrepresentable):
        return v.why
    return type(v).__name__
