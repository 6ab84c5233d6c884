"""A small synchronous client of the gateway (scoring, labels, admin), used by steps and the CLI.

Errors are raised as :class:`GatewayError` with the HTTP status and the gateway's
own message, so a failing step names what the gateway refused and why.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from pipelines.config import Settings, load_secrets
from pipelines.core.errors import PipelineError


class GatewayError(PipelineError):
    """The gateway refused a call or could not be reached (``status_code`` when it answered).

    Retryable: a gateway that is restarting or busy can answer the next attempt.
    """

    retryable = True

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def admin_token() -> str | None:
    secret = load_secrets().gateway_admin_token
    return secret.get_secret_value() if secret is not None else None


def labels_token() -> str | None:
    """The label write path's own token (``MLOPS_LABELS_TOKEN``), or None."""
    secret = load_secrets().labels_token
    return secret.get_secret_value() if secret is not None else None


def labels_headers() -> dict[str, str]:
    """Headers of a ``POST /labels`` call: the labels token when one is configured."""
    token = labels_token()
    return {"authorization": f"Bearer {token}"} if token else {}


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 60.0,
        labels_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._labels_token = labels_token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    @classmethod
    def for_settings(cls, settings: Settings, base_url: str) -> GatewayClient:
        return cls(base_url, admin_token(), labels_token=labels_token())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public endpoints
    def _check(self, resp: httpx.Response, what: str) -> Any:
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message") or resp.text
            except (ValueError, AttributeError):
                message = resp.text
            raise GatewayError(
                f"gateway {self.base_url} refused {what}: HTTP {resp.status_code}: {message}",
                resp.status_code,
            )
        return resp.json()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def health(self) -> tuple[int, dict[str, Any]]:
        resp = self._http.get("/health")
        return resp.status_code, resp.json()

    def version(self) -> dict[str, Any]:
        return dict(self._check(self._http.get("/version"), "/version"))

    def invoke(self, payload: dict[str, Any], key: str | None = None) -> tuple[dict[str, Any], httpx.Headers]:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["X-Request-Key"] = key
        resp = self._http.post("/invocations", content=json.dumps(payload), headers=headers)
        return dict(self._check(resp, "/invocations")), resp.headers

    def post_labels(self, labels: list[dict[str, Any]]) -> int:
        token = self._labels_token or labels_token()
        headers = {"authorization": f"Bearer {token}"} if token else {}
        resp = self._http.post("/labels", json={"labels": labels}, headers=headers)
        return int(self._check(resp, "/labels")["recorded"])

    # ------------------------------------------------------------------ admin
    def _admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self._token:
            raise GatewayError(
                "no admin token: set MLOPS_GATEWAY_ADMIN_TOKEN (the same value the gateway was started with)"
            )
        headers = {"authorization": f"Bearer {self._token}"}
        if body is None:
            resp = self._http.get(path, headers=headers)
        else:
            resp = self._http.post(path, json=body, headers=headers, timeout=300)
        return dict(self._check(resp, path))

    def state(self) -> dict[str, Any]:
        return self._admin("/admin/state")

    def set_canary(self, version: str, weight: float, reason: str = "") -> dict[str, Any]:
        return self._admin("/admin/canary", {"version": str(version), "weight": weight, "reason": reason})

    def set_weight(self, weight: float, reason: str = "") -> dict[str, Any]:
        return self._admin("/admin/weight", {"weight": weight, "reason": reason})

    def promote(
        self, version: str, reason: str = "", figures: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._admin(
            "/admin/promote", {"version": str(version), "reason": reason, "figures": figures or {}}
        )

    def set_champion(self, version: str, reason: str = "") -> dict[str, Any]:
        return self._admin("/admin/champion", {"version": str(version), "reason": reason})

    def rollback(self, reason: str = "", to_version: str | None = None) -> dict[str, Any]:
        return self._admin("/admin/rollback", {"reason": reason, "to_version": to_version})

    def flush(self) -> bool:
        return bool(self._admin("/admin/flush", {}).get("flushed"))
