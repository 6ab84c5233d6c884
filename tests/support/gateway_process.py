"""A real gateway process (``python -m pipelines.serving``) for the edge tests: its RSS, its log.

The edge tests (issue 13) need what only a separate process shows: that it stays up after a
hostile request, how much memory it holds, and every byte it prints. The environment is the
caller's (``support.serving.module_env``), with the routing state set to the registry's
champion so the process serves at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from support.serving import World, module_env


class GatewayProcess:
    """``python -m pipelines.serving`` on ``port``, output captured in ``log_path``."""

    def __init__(self, port: int, log_path: Path, *, need_champion: bool = True) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serving", "--host", "127.0.0.1", "--port", str(port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gateway exited at start:\n{self.logs()}"
            try:
                health = self.http.get("/health").json()
                if health.get("champion") or not need_champion:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"gateway did not serve a champion within 180 s:\n{self.logs()}")

    def logs(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS for pid {self.proc.pid}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (a clean stop: the log writer flushes or reports what it could not write)."""
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@contextmanager
def running_gateway(world: World, root: Path, port: int, **env: str) -> Iterator[tuple[GatewayProcess, Any]]:
    """A gateway process serving the world's champion from its own runtime root ``root``."""
    from pipelines.config import load_settings
    from pipelines.serving.routing import RoutingState, RoutingStore

    with module_env(world, root, port, **env):
        s = load_settings()
        state = RoutingState(model_name=s.mlflow.registered_model, champion_version=world.versions.champion)
        state.record("set_champion", reason="test setup")
        RoutingStore(s.paths.serving / "routing.json").save(state)
        gw = GatewayProcess(port, root / "gateway.log")
        try:
            yield gw, s
        finally:
            gw.stop()
