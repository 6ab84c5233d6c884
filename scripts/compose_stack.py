"""Drive the docker-compose stack from scripts and tests: up, wait until healthy, stats, down.

Why this exists: ``docker compose up --wait`` is Compose v2 only, and this template must also run on
Compose v1.29 (``docker-compose``, what Debian ships). Waiting is done here on each container's own
healthcheck (``docker inspect``), which both versions provide, and a one-shot container (the Airflow
init job) counts as ready once it exited 0.

Standard library only, so ``make up`` works before the virtualenv exists; the end-to-end test
(tests/e2e) imports it too.

    python3 scripts/compose_stack.py wait [--timeout 900]
    python3 scripts/compose_stack.py stats
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"


class StackError(RuntimeError):
    """The stack did not reach the expected state; the message names the service and its logs."""


def compose_command() -> list[str]:
    """``docker compose`` (v2) when the plugin exists, else ``docker-compose`` (v1.29); MLOPS_COMPOSE wins."""
    override = os.environ.get("MLOPS_COMPOSE")
    if override:
        return override.split()
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StackError("neither `docker compose` nor `docker-compose` is installed")


def engine_available() -> tuple[bool, str]:
    """Whether a Docker engine answers, and if not, why (for a test's skip reason)."""
    if not shutil.which("docker"):
        return False, "the docker CLI is not installed"
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return False, f"no Docker engine answers `docker info`: {probe.stderr.strip()[:300]}"
    return True, f"docker engine {probe.stdout.strip()}"


_UNITS = {"b": 1 / 2**20, "kib": 1 / 1024, "kb": 1 / 1024, "mib": 1.0, "mb": 1.0, "gib": 1024.0, "gb": 1024.0}


def parse_mem_mib(text: str) -> float:
    """'512.3MiB / 23.4GiB' -> 512.3 (the usage part of `docker stats` MemUsage, in MiB)."""
    usage = text.split("/")[0].strip()
    m = re.fullmatch(r"([\d.]+)\s*([A-Za-z]+)", usage)
    if not m:
        raise ValueError(f"unrecognised memory figure {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


@dataclass
class ContainerState:
    id: str
    name: str
    service: str
    status: str  # running, exited, restarting, ...
    exit_code: int
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    restarts: int

    @property
    def ready(self) -> bool:
        if self.health is not None:
            return self.status == "running" and self.health == "healthy"
        return self.status == "exited" and self.exit_code == 0

    @property
    def failed(self) -> bool:
        # A one-shot job that exited non-zero, or a service in a crash loop, will not recover by waiting.
        one_shot_failed = self.health is None and self.status == "exited" and self.exit_code != 0
        return one_shot_failed or self.restarts >= 3


@dataclass
class Stack:
    """One compose project: the repo's compose file, an env file and a project name."""

    project: str = "mlops"
    env_file: Path | None = None
    compose_file: Path = COMPOSE_FILE
    extra_env: dict[str, str] = field(default_factory=dict)
    _cmd: list[str] = field(default_factory=list, repr=False)

    def base(self) -> list[str]:
        if not self._cmd:
            self._cmd = compose_command()
        args = [*self._cmd, "-p", self.project, "-f", str(self.compose_file)]
        if self.env_file is not None:
            args += ["--env-file", str(self.env_file)]
        return args

    def compose(
        self, *args: str, check: bool = True, capture: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.extra_env}
        proc = subprocess.run(
            [*self.base(), *args],
            capture_output=capture,
            text=True,
            env=env,
            cwd=self.compose_file.parent,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"`{' '.join(self._cmd)} {' '.join(args)}` exited {proc.returncode}: "
                f"{(proc.stderr or '')[-3000:]}"
            )
        return proc

    def up(self, *, scale: dict[str, int] | None = None, build: bool = False, timeout: float = 1200) -> None:
        args = ["up", "-d"] + ([] if build else ["--no-build"])
        for service, n in (scale or {}).items():
            args += ["--scale", f"{service}={n}"]
        try:
            self.compose(*args, timeout=timeout)
        except StackError as exc:
            # Compose v1.29 gives up as soon as a dependency's healthcheck fails once past its start
            # period, which a loaded host can cause while ten Python services start at once. A second
            # `up` carries on from where the first stopped; a real failure fails it again.
            if "unhealthy" not in str(exc):
                raise
            print(f"compose up stopped early ({str(exc)[-200:].strip()}); retrying once", file=sys.stderr)
            time.sleep(30)
            self.compose(*args, timeout=timeout)

    def down(self, *, volumes: bool = True, timeout: float = 300) -> None:
        self.compose("down", "--remove-orphans", *(["-v"] if volumes else []), timeout=timeout)

    def container_ids(self, service: str | None = None, *, all_states: bool = True) -> list[str]:
        """Containers of this project (by compose's labels: works without the env file, v1 and v2)."""
        args = ["ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if all_states:
            args.append("-a")  # include exited one-shot jobs
        out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def states(self, service: str | None = None) -> list[ContainerState]:
        ids = self.container_ids(service)
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
        result = []
        for c in json.loads(out):
            st = c["State"]
            labels = c["Config"].get("Labels") or {}
            result.append(
                ContainerState(
                    id=c["Id"][:12],
                    name=c["Name"].lstrip("/"),
                    service=labels.get("com.docker.compose.service", "?"),
                    status=st["Status"],
                    exit_code=int(st.get("ExitCode", 0)),
                    health=(st.get("Health") or {}).get("Status"),
                    restarts=int(c.get("RestartCount", 0)),
                )
            )
        return result

    def logs(self, service: str, tail: int = 60) -> str:
        proc = self.compose("logs", "--no-color", "--tail", str(tail), service, check=False)
        return (proc.stdout or "") + (proc.stderr or "")

    def wait_healthy(self, timeout: float = 900, poll: float = 5, quiet: bool = False) -> float:
        """Block until every container is healthy (or, for one-shot jobs, exited 0); seconds waited."""
        start = time.monotonic()
        last = ""
        while True:
            states = self.states()
            failed = [s for s in states if s.failed]
            if failed:
                s = failed[0]
                raise StackError(
                    f"service {s.service} ({s.name}) failed: {s.status}, last exit code {s.exit_code}, "
                    f"{s.restarts} restarts; last log lines:\n{self.logs(s.service)}"
                )
            pending = [s for s in states if not s.ready]
            if states and not pending:
                return time.monotonic() - start
            summary = ", ".join(f"{s.service}={s.health or s.status}" for s in pending)
            if summary != last and not quiet:
                print(f"[{time.monotonic() - start:5.0f}s] waiting: {summary}", file=sys.stderr)
                last = summary
            if time.monotonic() - start > timeout:
                detail = "\n".join(f"--- {s.service}\n{self.logs(s.service, 30)}" for s in pending[:4])
                raise StackError(f"not healthy after {timeout:.0f}s: {summary}\n{detail}")
            time.sleep(poll)

    def stats(self) -> dict[str, float]:
        """Memory in MiB per container name (`docker stats --no-stream`)."""
        ids = [s.id for s in self.states() if s.status == "running"]
        if not ids:
            return {}
        out = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *ids],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        mem = {}
        for line in out.splitlines():
            name, _, usage = line.partition("\t")
            if usage:
                mem[name] = parse_mem_mib(usage)
        return mem


def format_stats(mem: dict[str, float]) -> str:
    rows = [f"  {name:<48} {mib:8.1f} MiB" for name, mib in sorted(mem.items())]
    rows.append(f"  {'TOTAL':<48} {sum(mem.values()):8.1f} MiB")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="wait for / inspect the compose stack")
    ap.add_argument("action", choices=["wait", "stats", "status"])
    ap.add_argument("--project", "-p", default=os.environ.get("COMPOSE_PROJECT_NAME", "mlops"))
    ap.add_argument("--env-file", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    stack = Stack(project=args.project, env_file=args.env_file)
    try:
        if args.action == "wait":
            waited = stack.wait_healthy(timeout=args.timeout)
            print(f"stack '{args.project}' healthy after {waited:.0f}s")
        elif args.action == "stats":
            print(format_stats(stack.stats()))
        else:
            for s in stack.states():
                print(f"  {s.service:<24} {s.name:<40} {s.status:<10} {s.health or '-'}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
