"""Starting, finding and stopping gateways: the long-lived one, and fresh pre-rollout instances.

* :func:`ensure_gateway` returns the base URL of a healthy gateway. In compose/k8s
  mode (``serving.url`` set) it only checks that gateway; in embedded mode it starts
  ``python -m pipelines.serving`` as a detached subprocess when none answers, and
  makes sure that whatever answers on the port is *this* pipeline's gateway (same
  routing-state file), not a stranger.
* :func:`start_instance` starts a fresh, isolated instance of the same serving
  program for one model version (the pre-rollout check): in the real serving image
  through the Docker SDK when ``serving.docker_image`` is set and an engine answers,
  otherwise as a local subprocess on a free port of ``serving.instance_ports``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipelines.config import REPO_ROOT, Settings
from pipelines.core.errors import PipelineError
from pipelines.core.observability import get_logger, write_json_atomic
from pipelines.serving.gateway import SERVICE

log = get_logger(__name__)
CONTAINER_PORT = 8080


class GatewayStartError(PipelineError):
    """A gateway did not come up; the message carries the tail of its log.

    Retryable: a busy host, a port race or a slow image pull can pass on the next attempt.
    """

    retryable = True


def gateway_url(settings: Settings) -> str:
    if settings.serving.url:
        return settings.serving.url.rstrip("/")
    host = settings.serving.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.serving.port}"


def _pid_file(settings: Settings) -> Path:
    return settings.paths.serving / "gateway.pid"


def _log_file(settings: Settings) -> Path:
    return settings.paths.serving / "gateway.log"


def _probe(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    """The gateway's /version if something healthy answers at ``url``, else None."""
    try:
        if httpx.get(f"{url}/ping", timeout=timeout).status_code != 200:
            return None
        resp = httpx.get(f"{url}/version", timeout=timeout)
        return dict(resp.json()) if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def _launch_lock(settings: Settings) -> Iterator[None]:
    """Serialise launches: two tasks asking at once must not start two gateways."""
    settings.paths.serving.mkdir(parents=True, exist_ok=True)
    with (settings.paths.serving / "gateway.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_identity(settings: Settings, url: str, info: dict[str, Any]) -> None:
    expected = str(settings.paths.serving / "routing.json")
    instance = info.get("instance") or {}
    if info.get("service") != SERVICE or instance.get("state_file") != expected:
        raise GatewayStartError(
            f"something else answers at {url} (service={info.get('service')!r}, state file "
            f"{instance.get('state_file')!r}, expected {expected!r}); stop it or change serving.port"
        )


def _wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | None, timeout: float, log_path: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _probe(url, timeout=2.0)
        if info is not None:
            return info
        if proc is not None and proc.poll() is not None:
            raise GatewayStartError(
                f"gateway process exited with code {proc.returncode} before answering {url}/ping; "
                f"log {log_path}:\n{_tail(log_path)}"
            )
        time.sleep(0.25)
    raise GatewayStartError(
        f"gateway at {url} did not answer /ping within {timeout:.0f}s; log {log_path}:\n{_tail(log_path)}"
    )


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        # Without a bytecode cache every gateway start recompiles ~1400 modules (~10 s). The
        # cache goes to the runtime root, so the source tree and the venv stay untouched.
        env.setdefault("PYTHONPYCACHEPREFIX", str(settings.paths.root / "cache" / "pycache"))
    # One BLAS/OpenMP thread per request: with a handful of cores, threads per predict
    # only fight each other (concurrency comes from requests, not from one predict).
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(
    settings: Settings, cmd: list[str], log_path: Path, *, append: bool, detached: bool
) -> subprocess.Popen[bytes]:
    """Run the serving program with its output in ``log_path`` (the evidence a failure points to)."""
    with log_path.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=_child_env(settings),
            start_new_session=detached,
        )


def ensure_gateway(settings: Settings, timeout: float | None = None) -> str:
    """The base URL of this pipeline's healthy gateway, starting it in embedded mode if needed."""
    url = gateway_url(settings)
    timeout = timeout or settings.serving.start_timeout_s
    if settings.serving.url:
        info = _probe(url)
        if info is None:
            raise GatewayStartError(
                f"gateway {url} (serving.url) does not answer /ping; it is not started from here in "
                "compose mode: check the gateway service"
            )
        return url
    with _launch_lock(settings):
        info = _probe(url)
        if info is not None:
            _check_identity(settings, url, info)
            return url
        log_path = _log_file(settings)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pipelines.serving",
            "--host",
            settings.serving.host,
            "--port",
            str(settings.serving.port),
        ]
        # Detached: the gateway outlives the task that started it.
        proc = _spawn(settings, cmd, log_path, append=True, detached=True)
        write_json_atomic(
            _pid_file(settings),
            {"pid": proc.pid, "url": url, "cmd": cmd, "started_at": time.time(), "log": str(log_path)},
        )
        log.info("gateway starting", url=url, pid=proc.pid, log=str(log_path))
        info = _wait_healthy(url, proc, timeout, log_path)
        _check_identity(settings, url, info)
        log.info("gateway up", url=url, pid=proc.pid, champion=(info.get("champion") or {}).get("version"))
        return url


def _is_gateway_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"pipelines.serving" in cmdline


def stop_gateway(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the embedded gateway this pipeline started (clean SIGTERM: the log is flushed)."""
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return False
    pid = int(json.loads(pid_file.read_text())["pid"])
    if not _is_gateway_process(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_gateway_process(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _is_gateway_process(pid):
        log.error("gateway ignored SIGTERM; killing it", pid=pid)
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)
    log.info("gateway stopped", pid=pid)
    return True


# --------------------------------------------------------------------------- fresh instances
def free_port(lo: int, hi: int, host: str = "127.0.0.1") -> int:
    """A port in [lo, hi] nobody listens on (checked by binding)."""
    ports = list(range(lo, hi + 1))
    start = os.getpid() % len(ports)
    for port in ports[start:] + ports[:start]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise GatewayStartError(f"no free port in serving.instance_ports {lo}-{hi}")


@dataclass
class Instance:
    """A running pre-rollout instance; :meth:`stop` is idempotent and returns its log."""

    url: str
    kind: str  # "subprocess" | "docker"
    version: str
    handle: Any = None
    log_path: Path | None = None
    details: dict[str, Any] = field(default_factory=dict)
    _logs: str | None = None

    def logs(self) -> str:
        if self._logs is not None:
            return self._logs
        if self.kind == "docker" and self.handle is not None:
            try:
                return str(self.handle.logs(tail=60).decode(errors="replace"))
            except Exception as exc:
                return f"(container logs unavailable: {exc})"
        return _tail(self.log_path) if self.log_path else ""

    def stop(self) -> str:
        if self._logs is not None:
            return self._logs
        self._logs = self.logs()
        if self.kind == "docker":
            with contextlib.suppress(Exception):
                self.handle.stop(timeout=10)
            with contextlib.suppress(Exception):
                self.handle.remove(force=True)
        else:
            proc: subprocess.Popen[bytes] = self.handle
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        return self._logs


def docker_engine(settings: Settings) -> Any | None:
    """A Docker client when ``serving.docker_image`` is set and an engine answers; else None."""
    if not settings.serving.docker_image:
        return None
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        log.warning("docker_image set but no Docker engine answers; using a subprocess", error=str(exc))
        return None
    return client


def _container_env(settings: Settings) -> dict[str, str]:
    skip = ("MLOPS__SERVING__HOST", "MLOPS__SERVING__PORT", "MLOPS__SERVING__URL", "MLOPS__PATHS__ROOT")
    env = {
        k: v
        for k, v in os.environ.items()
        if (k.startswith(("MLOPS__", "MLFLOW_")) and k not in skip) or k in ("DO_NOT_TRACK",)
    }
    env.update(settings.serving.docker_env)
    return env


def start_instance(settings: Settings, version: str, timeout: float | None = None) -> Instance:
    """A fresh instance of the serving program serving only ``version`` (no state, no log)."""
    timeout = timeout or settings.serving.start_timeout_s
    engine = docker_engine(settings)
    if engine is not None:
        return _start_container(settings, engine, str(version), timeout)
    lo, hi = settings.serving.instance_ports
    port = free_port(lo, hi)
    url = f"http://127.0.0.1:{port}"
    log_path = settings.paths.serving / "instances" / f"v{version}-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pipelines.serving", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model-version", str(version)]
    proc = _spawn(settings, cmd, log_path, append=False, detached=False)
    inst = Instance(url=url, kind="subprocess", version=str(version), handle=proc, log_path=log_path)
    inst.details = {"port": port, "pid": proc.pid, "log": str(log_path)}
    try:
        _wait_healthy(url, proc, timeout, log_path)
    except GatewayStartError:
        inst.stop()
        raise
    return inst


def _start_container(settings: Settings, engine: Any, version: str, timeout: float) -> Instance:
    name = f"mlops-precheck-v{version}-{uuid.uuid4().hex[:8]}"
    cmd = ["python", "-m", "pipelines.serving", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    cmd += ["--model-version", version]
    kwargs: dict[str, Any] = {
        "command": cmd,
        "name": name,
        "detach": True,
        "environment": _container_env(settings),
        "labels": {"mlops.role": "pre-rollout", "mlops.model_version": version},
    }
    if settings.serving.docker_volumes:
        kwargs["volumes"] = list(settings.serving.docker_volumes)
    if settings.serving.docker_network:
        kwargs["network"] = settings.serving.docker_network
        url = f"http://{name}:{CONTAINER_PORT}"
    else:
        lo, hi = settings.serving.instance_ports
        port = free_port(lo, hi)
        kwargs["ports"] = {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)}
        url = f"http://127.0.0.1:{port}"
    container = engine.containers.run(settings.serving.docker_image, **kwargs)
    inst = Instance(url=url, kind="docker", version=version, handle=container)
    inst.details = {"image": settings.serving.docker_image, "container": name, "id": container.id[:12]}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if _probe(url, timeout=2.0) is not None:
                return inst
            container.reload()
            if container.status in ("exited", "dead"):
                raise GatewayStartError(
                    f"pre-rollout container {name} ({settings.serving.docker_image}) exited before "
                    f"answering /ping:\n{inst.logs()}"
                )
            time.sleep(0.5)
        raise GatewayStartError(
            f"pre-rollout container {name} did not answer {url}/ping within {timeout:.0f}s"
        )
    except BaseException:
        inst.stop()
        raise
