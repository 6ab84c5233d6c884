"""Clients for the running compose stack: Airflow's REST API, MLflow's REST API, the gateway.

Plain HTTP against the real services (httpx), no Airflow or MLflow client library: the test talks to
the stack the way an operator's tooling would, through the published 127.0.0.1 ports.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}


class E2EError(AssertionError):
    """A step of the loop did not reach the expected state; the message carries the evidence."""


def wait_for(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 3.0,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Poll ``probe`` until it returns something truthy; raise naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (httpx.HTTPError, subprocess.SubprocessError) as exc:  # service restarting: retry
            last_exc, result = exc, None
        if result:
            return result
        time.sleep(interval)
    evidence = on_timeout() if on_timeout is not None else ""
    raise E2EError(f"timed out after {timeout:.0f}s waiting for {what}. {evidence} last error: {last_exc}")


@dataclass
class AirflowAPI:
    """Airflow 3 public REST API (/api/v2) with a bearer token from ``POST /auth/token``."""

    base_url: str
    username: str
    password: str
    _token: str | None = field(default=None, repr=False)
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0), repr=False)

    def token(self, refresh: bool = False) -> str:
        if self._token is None or refresh:
            r = self._client.post(
                f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}
            )
            if r.status_code not in (200, 201):
                raise E2EError(f"Airflow login as {self.username!r} failed: {r.status_code} {r.text[:300]}")
            self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(2):
            headers = {**extra_headers, "Authorization": f"Bearer {self.token(refresh=attempt > 0)}"}
            r = self._client.request(method, f"{self.base_url}/api/v2{path}", headers=headers, **kwargs)
            if r.status_code != 401:
                return r
        return r

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.request(method, path, **kwargs)
        if r.status_code >= 400:
            raise E2EError(f"Airflow {method} {path} -> {r.status_code}: {r.text[:500]}")
        return r.json()

    # ---------------------------------------------------------------- dags and runs
    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.json("GET", "/dags", params={"limit": 100})["dags"]}

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/importErrors")["import_errors"])

    def unpause(self, dag_id: str) -> None:
        self.json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.json("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        data = self.json("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})
        return list(data["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        data = self.json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti for ti in data["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        r = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": True},
            headers={"Accept": "application/x-ndjson"},
        )
        lines = []
        for raw in r.text.splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                lines.append(raw)
                continue
            text = f"{rec.get('level', '')} {rec.get('event', '')}"
            for err in rec.get("error_detail") or []:
                text += f" | {err.get('exc_type')}: {err.get('exc_value')}"
            lines.append(text)
        return "\n".join(lines)

    def failure_report(self, dag_id: str, run_id: str, tail: int = 40) -> str:
        """The states of a run's tasks and the log tail of each failed one: evidence for a failure."""
        lines = [f"{dag_id} / {run_id}:"]
        for tid, ti in sorted(self.task_instances(dag_id, run_id).items()):
            lines.append(f"  {tid}: {ti['state']} (try {ti['try_number']}, host {ti.get('hostname')})")
            if ti["state"] in ("failed", "up_for_retry", "upstream_failed") and ti["try_number"]:
                log = self.task_log(dag_id, run_id, tid, ti["try_number"])
                lines += ["    | " + ln for ln in log.splitlines()[-tail:]]
        return "\n".join(lines)

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """Wait for a terminal state; a failed run raises with the failed tasks' log tails."""
        run = wait_for(
            f"{dag_id} run {run_id} to finish",
            lambda: (r := self.run(dag_id, run_id))["state"] in TERMINAL_RUN_STATES and r,
            timeout=timeout,
            interval=5,
        )
        if run["state"] != "success":
            raise E2EError(
                f"{dag_id} run {run_id} ended {run['state']}\n{self.failure_report(dag_id, run_id)}"
            )
        return dict(run)


@dataclass
class MlflowAPI:
    """MLflow tracking server REST API behind basic-auth."""

    base_url: str
    username: str
    password: str

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(
            f"{self.base_url}/api/2.0/mlflow{path}",
            params=params,
            auth=(self.username, self.password),
            timeout=30,
        )

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        r = self.get("/model-versions/search", filter=f"name='{name}'", max_results=200)
        if r.status_code >= 400:
            raise E2EError(f"MLflow model-versions/search -> {r.status_code}: {r.text[:300]}")
        return list(r.json().get("model_versions", []))

    def alias_version(self, name: str, alias: str) -> str | None:
        r = self.get("/registered-models/alias", name=name, alias=alias)
        if r.status_code == 404 or (r.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in r.text):
            return None
        if r.status_code >= 400:
            raise E2EError(f"MLflow alias {name}@{alias} -> {r.status_code}: {r.text[:300]}")
        return str(r.json()["model_version"]["version"])


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise E2EError(f"docker {' '.join(args[:3])}... exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def exec_json(container: str, code: str, timeout: float = 300) -> Any:
    """Run Python in a stack container (as its own user, with its env) and parse its last stdout line."""
    proc = docker("exec", container, "python", "-c", code, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise E2EError(f"no output from python in {container}; stderr: {proc.stderr[-2000:]}")
    return json.loads(lines[-1])
