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
  "available_at"?}, ...]}``; joins the prediction log on the entity id. Bearer-token
  protected by its own token (``MLOPS_LABELS_TOKEN``), validated against the task and
  audited (see :mod:`pipelines.serving.labels`).
* ``/admin/*``: bearer-token protected (``MLOPS_GATEWAY_ADMIN_TOKEN``). Without a
  configured token the admin API answers 503: it is disabled, never open.

Every bad input is a 4xx before expensive work: the token is checked before a byte of the
body is read (``/labels``, ``/admin/*``); the media type must be exactly
``application/json``; byte and row limits are enforced while the body streams in
(:func:`pipelines.serving.inputs.read_limited`); numbers no model can take and strings no
database can store are refused with the field that held them. Nothing the gateway shows
carries a secret: ``/version``, ``/health`` and ``/admin/state`` pass through
:func:`pipelines.core.redact.redact`.

Predictions run on each model's predictor thread (micro-batched, see
:mod:`pipelines.serving.batching`) and are awaited, so a slow canary cannot stall
the event loop for the champion's requests.
"""

from __future__ import annotations

import json
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from pipelines.config import Settings, load_secrets
from pipelines.core.observability import get_logger
from pipelines.core.predlog import log_url, record_labels
from pipelines.core.redact import redact, redact_text
from pipelines.serving.gateway import AdminError, Gateway, UnavailableError
from pipelines.serving.inputs import BadInputError, check_media_type, read_limited
from pipelines.serving.labels import parse_labels, token_identity
from pipelines.serving.metrics import CONTENT_TYPE

log = get_logger(__name__)
JSON = "application/json"
# Admin bodies are a few fields (promotion figures included): far below these.
ADMIN_MAX_BYTES = 1_000_000
ADMIN_MAX_CONTAINERS = 10_000
#: Seconds a label sender waits before sending again when the labels' database is down: long
#: enough not to hammer a restarting database, short enough that a feedback loop barely stalls.
LABELS_RETRY_AFTER_S = 5
M = TypeVar("M", bound=BaseModel)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # NaN/Infinity never reach a client as invalid JSON: they are written as strings.
    text = json.dumps(body, default=str, allow_nan=True)
    if "NaN" in text or "Infinity" in text:
        text = json.dumps(_finite(body), default=str)
    return Response(text, status_code=status, media_type=JSON, headers=headers)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _error(
    status: int, message: str, code: str = "BAD_REQUEST", headers: dict[str, str] | None = None
) -> Response:
    return _json({"error_code": code, "message": message}, status, headers)


def _validation_message(errors: list[Any]) -> str:
    """Pydantic errors as 'field: problem' text, never the input (it may be NaN, huge or binary)."""
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


class _AdminBody(BaseModel):
    # Finite numbers only (NaN/Infinity/1e309 are refused with the field's name), no unknown fields.
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")


class CanaryBody(_AdminBody):
    version: str = Field(min_length=1, max_length=64)
    weight: float = Field(ge=0, le=100)
    reason: str = Field(default="", max_length=2000)


class WeightBody(_AdminBody):
    weight: float = Field(ge=0, le=100)
    reason: str = Field(default="", max_length=2000)


class PromoteBody(_AdminBody):
    version: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=2000)
    figures: dict[str, Any] = Field(default_factory=dict)


class ChampionBody(_AdminBody):
    version: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=2000)


class RollbackBody(_AdminBody):
    reason: str = Field(default="", max_length=2000)
    to_version: str | None = Field(default=None, max_length=64)


class ScoringBody(BaseModel):
    """The documented shape of a scoring request: exactly one of the four MLflow formats."""

    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    instances: list[Any] | None = None
    inputs: dict[str, list[Any]] | list[Any] | None = None


class LabelRecord(BaseModel):
    """The documented shape of one label (the checks are :func:`pipelines.serving.labels.parse_labels`)."""

    entity_id: str = Field(min_length=1, max_length=256)
    label: float
    event_time: str | None = None
    available_at: str | None = None


class LabelsBody(BaseModel):
    labels: list[LabelRecord] = Field(min_length=1)


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request body of an endpoint that reads its body itself (after auth, under limits)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {JSON: {"schema": inline(schema)}}}}


class ContainErrors:
    """ASGI middleware: an unexpected exception becomes a JSON 500 and one redacted log line.

    Without it Starlette answers the 500 and then re-raises, and uvicorn prints the traceback
    with the exception's text unredacted (a database error carries the DSN).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unhandled error", path=scope.get("path"), error=f"{type(exc).__name__}: {exc}")
            if not started:
                response = _error(500, f"internal error: {type(exc).__name__}", "INTERNAL_ERROR")
                await response(scope, receive, send)


def _bearer_ok(request: Request, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``, for any bytes a client sends."""
    auth = request.headers.get("authorization", "")
    scheme, _, given = auth.partition(" ")
    # Starlette decodes headers as latin-1: back to the bytes sent, compared as bytes (a str
    # compare_digest raises on non-ASCII text).
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode("latin-1", "replace"), token.encode("utf-8")
    )


def create_app(
    settings: Settings,
    *,
    ephemeral_version: str | None = None,
    admin_token: str | None = None,
    labels_token: str | None = None,
    use_env_token: bool = True,
) -> FastAPI:
    """Build the gateway app. ``ephemeral_version`` = a pre-rollout instance serving that version only.

    Tokens come from the environment (``MLOPS_GATEWAY_ADMIN_TOKEN``, ``MLOPS_LABELS_TOKEN``)
    unless given, or unless ``use_env_token`` is false (tests).
    """
    if use_env_token:
        loaded = load_secrets()
        if admin_token is None and loaded.gateway_admin_token is not None:
            admin_token = loaded.gateway_admin_token.get_secret_value()
        if labels_token is None and loaded.labels_token is not None:
            labels_token = loaded.labels_token.get_secret_value()
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

    async def validation_error(_request: Request, exc: Exception) -> Response:
        # FastAPI's own handler echoes the input back and fails on NaN/Infinity: answer with
        # the fields and the problems only.
        assert isinstance(exc, RequestValidationError)
        return _error(422, _validation_message(list(exc.errors())))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(ContainErrors)
    app.state.gateway = gateway
    max_body = settings.serving.max_body_bytes
    # A row is one JSON array or object; a few more frame the payload.
    max_containers = settings.serving.max_rows + 8
    key_header = settings.serving.request_key_header

    async def read_body(request: Request) -> bytes:
        return await read_limited(
            request.stream(),
            declared_length=request.headers.get("content-length"),
            max_bytes=max_body,
            max_containers=max_containers,
            limit_name=f"serving.max_rows={settings.serving.max_rows}",
        )

    @app.post("/invocations", openapi_extra=_body_doc(ScoringBody))
    async def invocations(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            check_media_type(request.headers.get("content-type"))
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
        return _json(redact(body), code)

    @app.get("/version")
    async def version() -> Response:
        return _json(redact(gateway.version_info()))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    labels_open = settings.serving.labels_allow_unauthenticated
    labels_actor = token_identity(labels_token) if labels_token else None

    @app.post("/labels", openapi_extra=_body_doc(LabelsBody))
    async def labels(request: Request) -> Response:
        # Who first (before a byte of the body is read), then what.
        if labels_token:
            if not _bearer_ok(request, labels_token):
                return _error(
                    401,
                    "labels: missing or wrong bearer token (MLOPS_LABELS_TOKEN)",
                    "UNAUTHORIZED",
                    {"WWW-Authenticate": "Bearer"},
                )
            actor = labels_actor or "?"
        elif labels_open:
            actor = "unauthenticated (serving.labels_allow_unauthenticated)"
        else:
            return _error(
                503,
                "label writes disabled: MLOPS_LABELS_TOKEN is not set (or set "
                "serving.labels_allow_unauthenticated for a local experiment)",
                "SERVICE_UNAVAILABLE",
            )
        if gateway.writer is None:
            return _error(409, "this instance keeps no prediction log (pre-rollout instance)", "CONFLICT")
        try:
            check_media_type(request.headers.get("content-type"))
            body = await read_limited(
                request.stream(),
                declared_length=request.headers.get("content-length"),
                max_bytes=max_body,
                max_containers=settings.serving.labels_max_records + 4,
                limit_name=f"serving.labels_max_records={settings.serving.labels_max_records}",
            )
            offload = len(body) > 32_768
            records = (
                await anyio.to_thread.run_sync(parse_labels, body, settings)
                if offload
                else (parse_labels(body, settings))
            )
        except BadInputError as exc:
            gateway.metrics.bad_requests.labels(str(exc.status_code)).inc()
            return _error(exc.status_code, exc.message)
        audit = {"actor": actor, "request_id": request.headers.get("x-request-id") or uuid.uuid4().hex}
        try:
            n = await anyio.to_thread.run_sync(
                lambda: record_labels(settings, records, url=log_url(settings), audit=audit)
            )
        except (SQLAlchemyError, OSError) as exc:
            # Nothing was written (one transaction), nothing acknowledged: the caller sends the same
            # labels again (upserts, so a resend is harmless). OSError: a SQLite log whose folder
            # cannot be created or opened is as unavailable as a database that refuses connections.
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            log.error("labels not recorded: prediction log unavailable", error=first)
            return _error(
                503,
                f"labels not recorded (send them again): prediction log unavailable: "
                f"{redact_text(first)[:300]}",
                "SERVICE_UNAVAILABLE",
                headers={"Retry-After": str(LABELS_RETRY_AFTER_S)},
            )
        return _json({"recorded": n, "request_id": audit["request_id"]})

    # ------------------------------------------------------------------ admin
    def require_admin(request: Request) -> None:
        if not admin_token:
            raise HTTPException(503, "admin API disabled: MLOPS_GATEWAY_ADMIN_TOKEN is not set")
        if not _bearer_ok(request, admin_token):
            raise HTTPException(
                401, "admin API: missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    admin = [Depends(require_admin)]

    async def admin_body(request: Request, model: type[M]) -> M:
        """The body of an admin call: read only after the token passed (the dependency), under limits."""
        check_media_type(request.headers.get("content-type"))
        raw = await read_limited(
            request.stream(),
            declared_length=request.headers.get("content-length"),
            max_bytes=ADMIN_MAX_BYTES,
            max_containers=ADMIN_MAX_CONTAINERS,
            limit_name="admin body",
            bytes_name="admin body limit",
        )
        try:
            return model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise BadInputError(
                _validation_message(list(exc.errors(include_input=False))), status_code=422
            ) from None

    async def run_admin(request: Request, model: type[M], fn: Callable[[M], dict[str, Any]]) -> Response:
        try:
            body = await admin_body(request, model)
        except BadInputError as exc:
            return _error(exc.status_code, exc.message)
        try:
            return _json(redact(await anyio.to_thread.run_sync(lambda: fn(body))))
        except AdminError as exc:
            return _error(
                exc.status_code, exc.message, "CONFLICT" if exc.status_code == 409 else "LOAD_FAILED"
            )

    @app.get("/admin/state", dependencies=admin)
    async def admin_state() -> Response:
        return _json(redact({**gateway.state.to_dict(), "served": gateway.version_info()}))

    @app.post("/admin/canary", dependencies=admin, openapi_extra=_body_doc(CanaryBody))
    async def admin_canary(request: Request) -> Response:
        return await run_admin(
            request, CanaryBody, lambda b: gateway.set_canary(b.version, b.weight, b.reason)
        )

    @app.post("/admin/weight", dependencies=admin, openapi_extra=_body_doc(WeightBody))
    async def admin_weight(request: Request) -> Response:
        return await run_admin(request, WeightBody, lambda b: gateway.set_weight(b.weight, b.reason))

    @app.post("/admin/promote", dependencies=admin, openapi_extra=_body_doc(PromoteBody))
    async def admin_promote(request: Request) -> Response:
        return await run_admin(
            request, PromoteBody, lambda b: gateway.promote(b.version, b.reason, figures=b.figures)
        )

    @app.post("/admin/champion", dependencies=admin, openapi_extra=_body_doc(ChampionBody))
    async def admin_champion(request: Request) -> Response:
        return await run_admin(request, ChampionBody, lambda b: gateway.set_champion(b.version, b.reason))

    @app.post("/admin/rollback", dependencies=admin, openapi_extra=_body_doc(RollbackBody))
    async def admin_rollback(request: Request) -> Response:
        return await run_admin(request, RollbackBody, lambda b: gateway.rollback(b.reason, b.to_version))

    @app.post("/admin/flush", dependencies=admin)
    async def admin_flush() -> Response:
        # 503 with the log's status when it cannot flush (database down: the rows wait in the
        # spool, nothing is lost); never a bare timeout.
        ok = await anyio.to_thread.run_sync(gateway.flush_log)
        plog = gateway.writer.status() if gateway.writer is not None else None
        return _json(redact({"flushed": ok, "prediction_log": plog}), 200 if ok else 503)

    return app
