"""Session harness of the end-to-end test: build the image, bring the compose stack up, tear it down.

The stack runs as its own compose project (``mlopse2e<pid>``) with its own freshly generated
secrets and ports 18311-18314, so it never touches a developer's ``make up`` stack (project
``mlops``, ports 18301-18304) or their ``.env``. Teardown is ``down -v``: containers, network and
volumes go; the built image stays (the next run reuses its layers).

Knobs (environment):
  MLOPS_E2E_KEEP=1          leave the stack running after the session (debugging); it prints how
                            to remove it
  MLOPS_E2E_WORKERS=2       Celery workers to start (the worker-kill test needs at least 2)
  MLOPS_E2E_SKIP_BUILD=1    reuse an already built MLOPS_IMAGE
  MLOPS_IMAGE               image tag to build and run (default mlops-pipeline:e2e)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_ENGINE_SCRIPT = REPO.parent / "shared" / "ci" / "docker-engine.sh"
PORTS = {
    "AIRFLOW_PORT": 18311,
    "MLFLOW_PORT": 18312,
    "GATEWAY_PORT": 18313,
    "EVIDENTLY_PORT": 18314,
    "PROMETHEUS_PORT": 18315,
    "ALERTMANAGER_PORT": 18316,
    "PUSHGATEWAY_PORT": 18317,
}


def _load_script(name: str) -> Any:
    """Import a stdlib-only helper from scripts/ (not a package: it must run before any venv exists)."""
    spec = importlib.util.spec_from_file_location(f"_e2e_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compose_stack = _load_script("compose_stack")
make_env = _load_script("make_env")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the steps of a module that sets ``STEPS_IN_FILE_ORDER`` in file order.

    ``test_stack.py`` is one loop told in steps over one stack (a batch is validated, then trains,
    then is released...); pytest-randomly shuffles everything else, but not a story's chapters.
    """
    slots = [
        i for i, it in enumerate(items) if getattr(getattr(it, "module", None), "STEPS_IN_FILE_ORDER", False)
    ]
    ordered = sorted((items[i] for i in slots), key=lambda it: (str(it.path), it.location[1] or 0))
    for i, it in zip(slots, ordered, strict=True):
        items[i] = it


@dataclass
class Figures:
    """Measurements printed at the end of the session (the platform's closing figures)."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, value: Any) -> None:
        self.values[key] = value
        print(f"[e2e figure] {key}: {value}", file=sys.stderr)


class MemorySampler:
    """Samples `docker stats` in the background during the loop; keeps the highest total seen."""

    def __init__(self, stack: Any, every_s: float = 15.0) -> None:
        self.stack, self.every_s = stack, every_s
        self.peak_total = 0.0
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-mem-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                mem = self.stack.stats()
            except (subprocess.SubprocessError, ValueError):
                continue
            if sum(mem.values()) > self.peak_total:
                self.peak_total, self.peak = sum(mem.values()), mem

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class StackHandle:
    stack: Any  # compose_stack.Stack
    env: dict[str, str]
    figures: Figures

    def url(self, port_var: str) -> str:
        return f"http://127.0.0.1:{self.env[port_var]}"

    def containers(self, service: str) -> list[Any]:
        return [s for s in self.stack.states(service) if s.status == "running"]

    def container(self, service: str) -> str:
        running = self.containers(service)
        if not running:
            raise AssertionError(f"no running container for service {service}")
        return str(running[0].name)


def _provide_engine() -> tuple[bool, str]:
    ok, why = compose_stack.engine_available()
    if ok:
        return ok, why
    # CI machines of this project get Debian's engine from the shared script (.ci/run calls it
    # too); it needs root. Anywhere else the test skips with the reason.
    if SHARED_ENGINE_SCRIPT.is_file() and os.geteuid() == 0:
        proc = subprocess.run(
            ["bash", str(SHARED_ENGINE_SCRIPT)], capture_output=True, text=True, timeout=1200, check=False
        )
        ok, why2 = compose_stack.engine_available()
        if ok:
            return ok, why2
        return False, f"{why}; {SHARED_ENGINE_SCRIPT} failed: {(proc.stderr or proc.stdout)[-400:]}"
    return False, why


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    figs = Figures()
    yield figs
    if figs.values:
        width = max(len(k) for k in figs.values)
        report = "\n".join(f"  {k:<{width}}  {v}" for k, v in figs.values.items())
        print(f"\n[e2e] figures:\n{report}", file=sys.stderr)


@pytest.fixture(scope="session")
def docker_engine() -> str:
    ok, why = _provide_engine()
    if not ok:
        pytest.skip(f"e2e needs a Docker engine: {why}")
    try:
        compose_stack.compose_command()
    except compose_stack.StackError as exc:
        pytest.skip(f"e2e needs Docker Compose: {exc}")
    return why


@pytest.fixture(scope="session")
def e2e_image(docker_engine: str, figures: Figures) -> str:
    image = os.environ.get("MLOPS_IMAGE", "mlops-pipeline:e2e")
    if os.environ.get("MLOPS_E2E_SKIP_BUILD") == "1":
        return image
    t0 = time.monotonic()
    proc = subprocess.run(
        ["docker", "build", "-f", "infra/Dockerfile", "-t", image, "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"docker build failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    figures.add("image build (s)", round(time.monotonic() - t0))
    size = subprocess.run(
        ["docker", "image", "inspect", image, "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    figures.add("image size (GB)", round(int(size) / 1e9, 2))
    return image


@pytest.fixture(scope="session")
def env_file(tmp_path_factory: pytest.TempPathFactory, e2e_image: str) -> Path:
    path = tmp_path_factory.mktemp("e2e-env") / "stack.env"
    assert make_env.main(["--output", str(path)]) == 0
    extra = {
        **{k: str(v) for k, v in PORTS.items()},
        "MLOPS_IMAGE": e2e_image,
        # A task on a killed worker is failed (and retried) after this many seconds of silence.
        "AIRFLOW_TASK_HEARTBEAT_TIMEOUT": "45",
        "AIRFLOW_WORKER_CONCURRENCY": "2",
        # Alerts of the steps and of Alertmanager go to a receiver container that
        # test_stack_observability.py starts on the stack's network under this name.
        "MLOPS_ALERT_WEBHOOK_URL": "http://alert-receiver:8080/hooks/mlops",
    }
    with path.open("a") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in extra.items())
    return path


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


@pytest.fixture(scope="session")
def stack(env_file: Path, figures: Figures) -> Iterator[StackHandle]:
    workers = int(os.environ.get("MLOPS_E2E_WORKERS", "2"))
    # [a-z0-9] only: Compose v1 strips other characters from project names (labels, names).
    s = compose_stack.Stack(project=f"mlopse2e{os.getpid()}", env_file=env_file)
    handle = StackHandle(stack=s, env=read_env(env_file), figures=figures)
    t0 = time.monotonic()
    try:
        s.up(scale={"airflow-worker": workers}, timeout=1800)
        s.wait_healthy(timeout=900)
        figures.add("cold up -> healthy (s)", round(time.monotonic() - t0))
        time.sleep(10)  # let start-up CPU settle before the idle reading
        mem = s.stats()
        figures.add("memory idle (MiB, total)", round(sum(mem.values())))
        figures.add("memory idle per container", {k: round(v) for k, v in sorted(mem.items())})
        with MemorySampler(s) as sampler:
            yield handle
        figures.add("memory peak during loop (MiB, total)", round(sampler.peak_total))
        peak = {k: round(v) for k, v in sorted(sampler.peak.items())}
        figures.add("memory at the peak, per container", peak)
    finally:
        if os.environ.get("MLOPS_E2E_KEEP") == "1":
            print(
                f"\n[e2e] stack kept: docker-compose -p {s.project} --env-file {env_file} down -v",
                file=sys.stderr,
            )
        else:
            t1 = time.monotonic()
            s.down(volumes=True)
            figures.add("down -v (s)", round(time.monotonic() - t1))
