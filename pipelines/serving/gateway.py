"""The gateway's core: routing between champion and canary, scoring, admin operations.

(Over 400 lines on purpose: one :class:`Gateway` holds the lock, the routing state and the
snapshot that scoring and every admin operation share; split across modules, the invariants
below would have to be re-checked in each.)

Kept free of FastAPI so the decisions (which variant answers, what happens when
the canary fails, what a promotion or rollback changes) are plain Python; the
HTTP layer (:mod:`pipelines.serving.app`) only translates requests and responses.

Invariants:

* A request the champion can answer never fails because of the canary: a canary
  that raises, or that cannot read an input the champion reads, is counted as a
  canary error, logged with its error, and the champion answers.
* The serving decision reads one immutable :class:`Snapshot` (swapped atomically
  by admin operations), so a request never sees half a change.
* Every change of what is served is persisted (routing state file) before it is
  acknowledged, and recorded in the state's history, refused attempts included.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread

from pipelines.config import Settings
from pipelines.core.errors import PipelineError
from pipelines.core.observability import get_logger
from pipelines.core.predlog import (
    LoggedRequest,
    PredictionLogWriter,
    SpoolError,
    UnstorableError,
    log_url,
    request_id_text,
    utc_now_iso,
)
from pipelines.core.redact import redact_text
from pipelines.core.registry import CHAMPION, alias_version_number
from pipelines.serving.inputs import BadInputError, Table, Validated, parse_body, validate
from pipelines.serving.metrics import GatewayMetrics
from pipelines.serving.models import ModelLoadError, ServedModel, load_served_model
from pipelines.serving.routing import RoutingState, RoutingStore, goes_to_canary, now_iso

log = get_logger(__name__)
SERVICE = "mlops-gateway"
# Bodies up to this size (~50 rows) are parsed on the event loop; larger ones on a worker thread.
INLINE_MAX_BYTES = 32_768
T = TypeVar("T")


async def _run(offload: bool, fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args) if offload else fn(*args)


class UnavailableError(PipelineError):
    """The gateway cannot answer now (no champion loaded); HTTP 503."""

    retryable = True


class AdminError(PipelineError):
    """An admin operation refused; ``status_code`` is 409 (conflict) or 422 (cannot load)."""

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class Snapshot:
    champion: ServedModel | None
    canary: ServedModel | None
    weight: float


@dataclass
class ScoreResult:
    request_id: str
    variant: str
    model_version: str
    predictions: list[float]
    canary_error: str | None = None


class Gateway:
    """One serving instance: champion (+ optional canary), prediction log, metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        ephemeral_version: str | None = None,
        log_predictions: bool = True,
    ) -> None:
        self.settings = settings
        self.ephemeral = ephemeral_version is not None
        self._ephemeral_version = ephemeral_version
        self.metrics = GatewayMetrics(settings.serving.prediction_buckets)
        self.store = None if self.ephemeral else RoutingStore(settings.paths.serving / "routing.json")
        self.state = RoutingState(model_name=settings.mlflow.registered_model)
        self.snapshot = Snapshot(None, None, 0.0)
        self.started_at = now_iso()
        self.load_error: str | None = None
        self._lock = threading.RLock()
        self._models: dict[str, ServedModel] = {}
        self._id_col = settings.dataset.id.column
        self._time_col = settings.dataset.event_time
        self._passthrough = {self._id_col, self._time_col}
        self._retry_stop = threading.Event()
        self.writer: PredictionLogWriter | None = None
        if log_predictions and not self.ephemeral:
            # No database I/O here: the writer connects on its own thread, so the gateway starts
            # and serves (spooling) while the log database is down.
            cfg = settings.serving
            self.writer = PredictionLogWriter(
                log_url(settings),
                cfg.log_flush_ms,
                spool_dir=settings.paths.serving / "predlog-spool",
                dead_letter=settings.paths.serving / "predlog-dead-letter.jsonl",
                sync="write" if cfg.log_spool_sync == "none" else cfg.log_spool_sync,
                degraded_backlog_rows=cfg.log_degraded_backlog_rows,
                degraded_lag_s=cfg.log_degraded_lag_s,
                on_flushed=self._observe_predictions,
            )
            self.metrics.watch_prediction_log(self.writer)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load what the state (or the registry alias) says to serve; never raises."""
        if self.ephemeral:
            assert self._ephemeral_version is not None
            try:
                model = load_served_model(self.settings, self._ephemeral_version)
            except ModelLoadError as exc:
                self.load_error = str(exc)
                log.error("candidate failed to load", version=self._ephemeral_version, error=str(exc))
                return
            self._models[model.version] = model
            self.state.champion_version = model.version
            self._publish()
            return
        assert self.store is not None
        self.state = self.store.load(self.settings.mlflow.registered_model)
        if not self._load_champion():
            threading.Thread(target=self._retry_champion, name="champion-retry", daemon=True).start()
        if self.state.canary_version is not None:
            try:
                canary = self._model(self.state.canary_version)
            except ModelLoadError as exc:
                # Fail safe: a canary that cannot be loaded after a restart is dropped.
                version = self.state.canary_version
                self.state.canary_version, self.state.canary_weight = None, 0.0
                self.state.record("canary_dropped_at_start", ok=False, version=version, error=str(exc))
                self.store.save(self.state)
                log.error("canary dropped at start: failed to load", version=version, error=str(exc))
            else:
                self._models[canary.version] = canary
        self._publish()

    def _load_champion(self) -> bool:
        version = self.state.champion_version
        try:
            if version is None:
                version = alias_version_number(self.settings, CHAMPION)
                if version is None:
                    self.load_error = None
                    log.warning("no champion yet: the gateway answers 503 until one is set")
                    return True
            model = self._model(version)
        except Exception as exc:
            self.load_error = f"champion version {version} failed to load: {exc}"
            log.error("champion failed to load", version=version, error=str(exc))
            return False
        with self._lock:
            if self.state.champion_version is None:
                self.state.champion_version = model.version
                self.state.record("set_champion", source="registry alias @champion at start")
                assert self.store is not None
                self.store.save(self.state)
            self._models[model.version] = model
            self.load_error = None
            self._publish()
        return True

    def _retry_champion(self) -> None:
        delay = 5.0
        while not self._retry_stop.wait(delay):
            if self.snapshot.champion is not None or self._load_champion():
                return
            delay = min(delay * 2, 60.0)

    def stop(self) -> None:
        self._retry_stop.set()
        for model in self._models.values():
            model.close()
        if self.writer is not None:
            self.writer.close()

    def _model(self, version: str) -> ServedModel:
        cached = self._models.get(str(version))
        return cached if cached is not None else load_served_model(self.settings, version)

    def _publish(self) -> None:
        """Swap in the snapshot matching the state; drop models no longer referenced."""
        st = self.state
        champion = self._models.get(st.champion_version) if st.champion_version else None
        canary = self._models.get(st.canary_version) if st.canary_version else None
        self.snapshot = Snapshot(champion, canary, st.canary_weight if canary else 0.0)
        keep = {v for v in (st.champion_version, st.canary_version) if v}
        for v in list(self._models):
            if v not in keep:
                self._models.pop(v).close()
        self.metrics.set_served(
            st.champion_version if champion else None, st.canary_version, st.canary_weight
        )

    # ------------------------------------------------------------------ scoring
    async def score(self, body: bytes, key: str | None, request_id: str | None, t0: float) -> ScoreResult:
        """Answer one scoring request.

        Small bodies are parsed and validated on the event loop (tens of microseconds; a
        thread hop would cost more); large ones on a worker thread. The prediction itself
        is awaited on the model's micro-batcher, so concurrent requests share predict
        calls and the loop keeps accepting requests meanwhile.
        """
        snap = self.snapshot
        champion = snap.champion
        if champion is None:
            raise UnavailableError(
                self.load_error or "no champion model is set yet (bootstrap a release first)"
            )
        try:  # the caller's id keys its logged rows: refused, never rewritten
            rid = uuid.uuid4().hex if request_id is None else request_id_text(request_id)
        except UnstorableError as exc:
            raise BadInputError(exc.message) from None
        offload = len(body) > INLINE_MAX_BYTES
        table = await _run(offload, self._parse, body, champion.column_names)
        ids = table.column(self._id_col)
        times = table.column(self._time_col)
        if key is None and ids:
            key = str(ids[0])
        canary_error = None
        canary = snap.canary
        if canary is not None and goes_to_canary(snap.weight, key, salt=canary.version):
            outcome = await self._try_canary(canary, champion, table, rid, ids, times, t0, offload)
            if isinstance(outcome, ScoreResult):
                return outcome
            canary_error = outcome
        validated = await _run(offload, self._validate, champion, table)
        try:
            preds = await champion.predict_async(validated.columns, validated.arrays, validated.n_rows)
        except Exception as exc:
            self.metrics.errors.labels("champion", "exception").inc()
            error = f"{type(exc).__name__}: {exc}"
            await _run(
                offload, self._log, champion, "champion", table, validated, rid, None, t0, ids, times, error
            )
            raise
        spooled = await _run(
            offload, self._log, champion, "champion", table, validated, rid, preds, t0, ids, times, None
        )
        await self._durable(spooled)
        return ScoreResult(rid, "champion", champion.version, preds.tolist(), canary_error)

    async def _durable(self, spooled: Future[None] | None) -> None:
        """Wait until the request is in the spool (the answer is an acknowledgement: it must
        survive a ``kill -9``); ``serving.log_spool_sync=none`` answers without waiting."""
        if spooled is None or self.settings.serving.log_spool_sync == "none":
            return
        try:
            await asyncio.wrap_future(spooled)
        except SpoolError as exc:
            raise UnavailableError(f"the prediction log cannot take this request: {exc}") from exc

    def _parse(self, body: bytes, positional_columns: list[str]) -> Table:
        cfg = self.settings.serving
        return parse_body(
            body,
            cfg.max_rows,
            positional_columns,
            id_column=self._id_col,
            time_column=self._time_col,
            max_id_chars=cfg.max_id_chars,
        )

    def _validate(self, model: ServedModel, table: Table) -> Validated:
        return validate(
            table,
            model.columns,
            passthrough=self._passthrough,
            allow_extra=self.settings.serving.allow_extra_columns,
        )

    async def _try_canary(
        self,
        canary: ServedModel,
        champion: ServedModel,
        table: Table,
        rid: str,
        ids: list[Any] | None,
        times: list[Any] | None,
        t0: float,
        offload: bool,
    ) -> ScoreResult | str:
        """The canary's answer, or the error text when the champion must answer instead."""
        validated: Validated | None = None
        try:
            validated = await _run(offload, self._validate, canary, table)
        except BadInputError as exc:
            await _run(offload, self._validate, champion, table)  # bad for both: the caller's error
            error = f"canary cannot read this input: {exc.message}"
            kind = "input"
        else:
            limit = self.settings.serving.canary_timeout_s
            try:
                # Bounded: a stuck canary's callers get the champion's answer, not a hang (the
                # abandoned request is dropped from the canary's queue before it costs a predict).
                preds = await asyncio.wait_for(
                    canary.predict_async(validated.columns, validated.arrays, validated.n_rows), limit
                )
                if len(preds) != table.n_rows:
                    raise ValueError(f"canary returned {len(preds)} predictions for {table.n_rows} rows")
            except TimeoutError:
                error = f"TimeoutError: the canary did not answer within serving.canary_timeout_s={limit} s"
                kind = "timeout"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                kind = "exception"
            else:
                spooled = await _run(
                    offload, self._log, canary, "canary", table, validated, rid, preds, t0, ids, times, None
                )
                await self._durable(spooled)
                return ScoreResult(rid, "canary", canary.version, preds.tolist())
        self.metrics.errors.labels("canary", kind).inc()
        self.metrics.fallbacks.inc()
        # Durable together with the champion's answer (the spool is written in order).
        await _run(offload, self._log, canary, "canary", table, validated, rid, None, t0, ids, times, error)
        return error

    def _log(
        self,
        model: ServedModel,
        variant: str,
        table: Table,
        validated: Validated | None,
        rid: str,
        preds: Any,
        t0: float,
        ids: list[Any] | None,
        times: list[Any] | None,
        error: str | None,
    ) -> Future[None] | None:
        """Spool the request and count it; the future resolves once the spool holds it.

        A request the log cannot store is refused here (400, not counted as served)."""
        elapsed = time.perf_counter() - t0
        spooled = None
        if self.writer is not None:
            if validated is not None:
                columns, values = validated.columns, validated.arrays
            else:
                columns, values = table.columns, table.values
            item = LoggedRequest(
                request_id=rid,
                ts=utc_now_iso(),
                variant=variant,
                model_version=model.version,
                columns=columns,
                values=values,
                n_rows=table.n_rows,
                predictions=preds,
                latency_ms=elapsed * 1000.0,
                error=error,
                entity_ids=ids,
                event_times=times,
            )
            try:
                spooled = self.writer.submit(item)
            except UnstorableError as exc:
                raise BadInputError(f"the prediction log cannot store this request: {exc.message}") from None
        if error is None:
            self.metrics.requests.labels(variant, model.version).inc()
            self.metrics.rows.labels(variant, model.version).inc(table.n_rows)
        self.metrics.latency.labels(variant).observe(elapsed)
        return spooled

    def _observe_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Prediction histograms, fed with the rows as they reach the database (writer thread)."""
        hist = self.metrics.predictions
        for row in rows:
            if row.get("prediction") is not None:
                hist.labels(row["variant"]).observe(row["prediction"])

    # ------------------------------------------------------------------ views
    def version_info(self) -> dict[str, Any]:
        snap = self.snapshot
        return {
            "service": SERVICE,
            "model_name": self.settings.mlflow.registered_model,
            "champion": snap.champion.describe() if snap.champion else None,
            "canary": snap.canary.describe() if snap.canary else None,
            "canary_weight": snap.weight,
            "updated_at": self.state.updated_at,
            "instance": {
                "ephemeral": self.ephemeral,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "state_file": str(self.store.path) if self.store else None,
                "prediction_log": redact_text(self.writer.url) if self.writer else None,
            },
        }

    def health(self) -> tuple[int, dict[str, Any]]:
        """``ok`` | ``degraded`` (200) | ``no_champion`` (200) | ``error`` (503), with the reason.

        ``degraded`` = answering, but the prediction log's writes fail or its backlog grows. It
        stays HTTP 200 on purpose: every answer is still spooled durably, so a load balancer must
        keep routing predictions here (a shared log database going down would otherwise take
        every replica out of rotation). ``error`` (503) = this instance cannot acknowledge
        predictions: no champion loaded, or the spool itself cannot write.
        """
        snap = self.snapshot
        plog = self.writer.status() if self.writer is not None else None
        reason = None
        if snap.champion is None and self.load_error:
            status, code, reason = "error", 503, self.load_error
        elif plog is not None and plog["status"] == "failed":
            status, code, reason = "error", 503, plog["reason"]
        elif snap.champion is None:
            status, code = "no_champion", 200
        elif plog is not None and plog["status"] == "degraded":
            status, code, reason = "degraded", 200, plog["reason"]
        else:
            status, code = "ok", 200
        body: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "champion": snap.champion.version if snap.champion else None,
            "canary": snap.canary.version if snap.canary else None,
            "canary_weight": snap.weight,
            "error": self.load_error,
        }
        if plog is not None:
            body["prediction_log"] = plog
        return code, body

    # ------------------------------------------------------------------ admin
    def _save(self) -> None:
        if self.store is not None:
            self.store.save(self.state)
        self._publish()

    def _refuse(self, action: str, message: str, status: int, **details: Any) -> AdminError:
        self.state.record(action, ok=False, error=message, **details)
        if self.store is not None:
            self.store.save(self.state)
        log.warning("admin operation refused", action=action, error=message, **details)
        return AdminError(message, status)

    def set_canary(self, version: str, weight: float, reason: str = "") -> dict[str, Any]:
        version = str(version)
        with self._lock:
            if version == self.state.champion_version:
                raise self._refuse(
                    "set_canary", f"version {version} is already the champion", 409, version=version
                )
            try:
                model = self._model(version)
            except ModelLoadError as exc:
                raise self._refuse("set_canary", str(exc), 422, version=version, reason=reason) from exc
            champion = self.snapshot.champion
            if champion is not None and {c.name for c in model.columns} - set(champion.column_names):
                extra = sorted({c.name for c in model.columns} - set(champion.column_names))
                log.warning("canary needs columns the champion does not take", columns=extra)
            self._models[version] = model
            self.state.canary_version, self.state.canary_weight = version, float(weight)
            self.state.record("set_canary", version=version, reason=reason, warmup_error=model.warmup_error)
            self._save()
            return self.version_info()

    def set_weight(self, weight: float, reason: str = "") -> dict[str, Any]:
        with self._lock:
            if self.state.canary_version is None:
                raise self._refuse("set_weight", "no canary is set", 409, weight=weight)
            self.state.canary_weight = float(weight)
            self.state.record("set_weight", reason=reason)
            self._save()
            return self.version_info()

    def promote(self, version: str | None, reason: str = "", **details: Any) -> dict[str, Any]:
        with self._lock:
            canary = self.state.canary_version
            if canary is None:
                raise self._refuse("promote", "no canary to promote", 409, version=version)
            if version is not None and str(version) != canary:
                raise self._refuse(
                    "promote", f"canary is version {canary}, not {version}", 409, version=version
                )
            previous = self.state.champion_version
            self.state.champion_version = canary
            self.state.canary_version, self.state.canary_weight = None, 0.0
            self.state.record("promote", previous_champion=previous, reason=reason, **details)
            self._save()
            return self.version_info()

    def set_champion(self, version: str, reason: str = "", action: str = "set_champion") -> dict[str, Any]:
        version = str(version)
        with self._lock:
            try:
                model = self._model(version)
            except ModelLoadError as exc:
                raise self._refuse(action, str(exc), 422, version=version, reason=reason) from exc
            previous = self.state.champion_version
            self._models[version] = model
            self.state.champion_version = version
            if self.state.canary_version == version:
                self.state.canary_version, self.state.canary_weight = None, 0.0
            self.state.record(action, previous_champion=previous, reason=reason)
            self.load_error = None
            self._save()
            return self.version_info()

    def rollback(self, reason: str = "", to_version: str | None = None) -> dict[str, Any]:
        """Abort the canary if one is set; otherwise go back to the previous champion."""
        with self._lock:
            if self.state.canary_version is not None:
                aborted = self.state.canary_version
                self.state.canary_version, self.state.canary_weight = None, 0.0
                self.state.record("rollback_canary", aborted=aborted, reason=reason)
                self._save()
                info = self.version_info()
                info["rolled_back"] = {"kind": "canary", "aborted": aborted}
                return info
            target = to_version or self.state.previous_champion()
            if target is None:
                raise self._refuse("rollback", "no canary and no previous champion to roll back to", 409)
            current = self.state.champion_version
            info = self.set_champion(target, reason=reason, action="rollback_champion")
            info["rolled_back"] = {"kind": "champion", "from": current, "to": target}
            return info

    def flush_log(self, timeout: float = 10.0) -> bool:
        return True if self.writer is None else self.writer.flush(timeout)
