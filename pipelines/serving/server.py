"""Running the gateway app under uvicorn: as the main process, or on a thread (tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from pipelines.config import Settings


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """uvloop + httptools, no access log: the request path stays lean (metrics replace the log)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=15,
        lifespan="on",
    )


def serve(settings: Settings, host: str, port: int, ephemeral_version: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT; a clean stop flushes the prediction log."""
    from pipelines.serving.app import create_app

    app = create_app(settings, ephemeral_version=ephemeral_version)
    uvicorn.Server(uvicorn_config(app, host, port)).run()


class ThreadedServer:
    """A real uvicorn server on a background thread of this process (same HTTP stack)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app = app
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn_config(app, host, port))
        self._thread = threading.Thread(target=self._server.run, name=f"gateway-{port}", daemon=True)

    def start(self, timeout: float = 120.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"gateway thread for {self.url} exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway at {self.url} did not start within {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
