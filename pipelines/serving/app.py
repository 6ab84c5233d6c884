"""HTTP layer of the gateway (FastAPI): MLflow's scoring protocol, labels, metrics, admin API.

Endpoints:

* ``POST /invocations``: MLflow scoring protocol; answers ``{"predictions": [...],
  "variant", "model_version", "request_id"}`` and the headers ``X-Model-Variant``,
  ``X-Model-Version``, ``X-Request-Id``. Bad input is a 4xx in MLflow's error shape
  ``{"error_code": "BAD_REQUEST", "message": ...}``. The answer leaves only once the
  request is in the local prediction-log spool (see :mod:`pipelines.core.predlog.spool`).
* ``GET /ping`` (alive), ``GET /health`` (``ok``; ``degraded`` with a ``reason``, still 200,
  while prediction-log writes fail or its backlog grows; 503 when a configured champion failed
  to load or the spool cannot write), ``GET /version`` (served versions and the canary
  weight), ``GET /metrics``.
* ``POST /labels``: feedback, ``{"labels": [{"entity_id", "label", "event_time"?,
  "available_at"?}, ...]}``; joins the prediction log on the entity id.
* ``/admin/*``: bearer-token protected (``MLOPS_GATEWAY_ADMIN_TOKEN``). Without a
  configured token the admin API answers 503: it is disabled, never open.

Predictions run on each model's predictor thread (micro-batched, see
:mod:`pipelines.serving.batching`) and are awaited, so a slow canary cannot stall
the event loop for the champion's requests.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from pipelines.config import Settings, load_secrets
from pipelines.core.observability import get_logger
from pipelines.core.predlog import log_url, record_labels
from pipelines.serving.gateway import AdminError, Gateway, UnavailableError
from pipelines.serving.inputs import BadInputError
from pipelines.serving.metrics import CONTENT_TYPE

log = get_logger(__name__)
JSON = "application/json"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), status_code=status, media_type=JSON, headers=headers)


def _error(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    return _json({"error_code": code, "message": message}, status)


class CanaryBody(BaseModel):
    version: str = Field(min_length=1)
    weight: float = Field(ge=0, le=100)
    reason: str = ""


class WeightBody(BaseModel):
    weight: float = Field(ge=0, le=100)
    reason: str = ""


class PromoteBody(BaseModel):
    version: str | None = None
    reason: str = ""
    figures: dict[str, Any] = Field(default_factory=dict)


class ChampionBody(BaseModel):
    version: str = Field(min_length=1)
    reason: str = ""


class RollbackBody(BaseModel):
    reason: str = ""
    to_version: str | None = None


class LabelRecord(BaseModel):
    entity_id: str = Field(min_length=1)
    label: float
    event_time: str | None = None
    available_at: str | None = None


class LabelsBody(BaseModel):
    labels: list[LabelRecord] = Field(min_length=1, max_length=100_000)


def create_app(
    settings: Settings,
    *,
    ephemeral_version: str | None = None,
    admin_token: str | None = None,
    use_env_token: bool = True,
) -> FastAPI:
    """Build the gateway app. ``ephemeral_version`` = a pre-rollout instance serving that version only."""
    if admin_token is None and use_env_token:
        secret = load_secrets().gateway_admin_token
        admin_token = secret.get_secret_value() if secret is not None else None
    gateway = Gateway(settings, ephemeral_version=ephemeral_version)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(gateway.start)
        log.info("gateway started", **gateway.health()[1])
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(gateway.stop)
            log.info("gateway stopped")

    app = FastAPI(title="MLOps prediction gateway", lifespan=lifespan, docs_url=None, redoc_url=None)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error_code": "HTTP_ERROR", "message": exc.detail}, exc.status_code, exc.headers)

    app.add_exception_handler(HTTPException, http_error)
    app.state.gateway = gateway
    max_body = settings.serving.max_body_bytes
    key_header = settings.serving.request_key_header

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise BadInputError(
                f"body of {declared} bytes exceeds serving.max_body_bytes={max_body}", status_code=413
            )
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise BadInputError(f"body exceeds serving.max_body_bytes={max_body}", status_code=413)
            chunks.append(chunk)
        return b"".join(chunks)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        t0 = time.perf_counter()
        ctype = request.headers.get("content-type", JSON)
        if "json" not in ctype:
            gateway.metrics.bad_requests.labels("415").inc()
            return _error(415, f"unsupported content type {ctype!r}: send application/json")
        try:
            body = await read_body(request)
            result = await gateway.score(
                body, request.headers.get(key_header), request.headers.get("x-request-id"), t0
            )
        except BadInputError as exc:
            gateway.metrics.bad_requests.labels(str(exc.status_code)).inc()
            return _error(exc.status_code, exc.message)
        except UnavailableError as exc:
            return _error(503, str(exc), "SERVICE_UNAVAILABLE")
        except Exception as exc:
            log.error("prediction failed", error=f"{type(exc).__name__}: {exc}")
            return _error(
                500, f"the model failed on this input: {type(exc).__name__}: {exc}", "INTERNAL_ERROR"
            )
        payload = {
            "predictions": result.predictions,
            "variant": result.variant,
            "model_version": result.model_version,
            "request_id": result.request_id,
        }
        return _json(
            payload,
            headers={
                "X-Model-Variant": result.variant,
                "X-Model-Version": result.model_version,
                "X-Request-Id": result.request_id,
            },
        )

    @app.get("/ping")
    async def ping() -> Response:
        return Response("\n", media_type="text/plain")

    @app.get("/health")
    async def health() -> Response:
        code, body = gateway.health()
        return _json(body, code)

    @app.get("/version")
    async def version() -> Response:
        return _json(gateway.version_info())

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/labels")
    async def labels(body: LabelsBody) -> Response:
        if gateway.writer is None:
            return _error(409, "this instance keeps no prediction log (pre-rollout instance)", "CONFLICT")
        records = [r.model_dump() for r in body.labels]
        try:
            n = await anyio.to_thread.run_sync(
                lambda: record_labels(settings, records, url=log_url(settings))
            )
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"recorded": n})

    # ------------------------------------------------------------------ admin
    def require_admin(request: Request) -> None:
        if not admin_token:
            raise HTTPException(503, "admin API disabled: MLOPS_GATEWAY_ADMIN_TOKEN is not set")
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), admin_token):
            raise HTTPException(
                401, "admin API: missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    admin = [Depends(require_admin)]

    async def run_admin(fn: Callable[[], dict[str, Any]]) -> Response:
        try:
            return _json(await anyio.to_thread.run_sync(fn))
        except AdminError as exc:
            return _error(
                exc.status_code, exc.message, "CONFLICT" if exc.status_code == 409 else "LOAD_FAILED"
            )

    @app.get("/admin/state", dependencies=admin)
    async def admin_state() -> Response:
        return _json({**gateway.state.to_dict(), "served": gateway.version_info()})

    @app.post("/admin/canary", dependencies=admin)
    async def admin_canary(body: CanaryBody) -> Response:
        return await run_admin(lambda: gateway.set_canary(body.version, body.weight, body.reason))

    @app.post("/admin/weight", dependencies=admin)
    async def admin_weight(body: WeightBody) -> Response:
        return await run_admin(lambda: gateway.set_weight(body.weight, body.reason))

    @app.post("/admin/promote", dependencies=admin)
    async def admin_promote(body: PromoteBody) -> Response:
        return await run_admin(lambda: gateway.promote(body.version, body.reason, figures=body.figures))

    @app.post("/admin/champion", dependencies=admin)
    async def admin_champion(body: ChampionBody) -> Response:
        return await run_admin(lambda: gateway.set_champion(body.version, body.reason))

    @app.post("/admin/rollback", dependencies=admin)
    async def admin_rollback(body: RollbackBody) -> Response:
        return await run_admin(lambda: gateway.rollback(body.reason, body.to_version))

    @app.post("/admin/flush", dependencies=admin)
    async def admin_flush() -> Response:
        # 503 with the log's status when it cannot flush (database down: the rows wait in the
        # spool, nothing is lost); never a bare timeout.
        ok = await anyio.to_thread.run_sync(gateway.flush_log)
        plog = gateway.writer.status() if gateway.writer is not None else None
        return _json({"flushed": ok, "prediction_log": plog}, 200 if ok else 503)

    return app
