"""Apply a replica count to the compose stack's serving service through the Docker SDK.

Compose itself scales a service by creating more containers from the same
configuration, labelled with the project, service and a container number, and
joined to the project's networks under the service name (so DNS round-robins
over the replicas). This module does the same with the Docker SDK, which lets the
capacity DAG act without the compose CLI. It plans first and changes nothing
unless asked: ``apply=False`` (the default everywhere) returns the plan only.

New replicas do not publish host ports (only one container can bind a host
port); they serve the other services on the compose network under the service
alias. The first replica keeps its published port.

Caveat for the gateway: replicas share the routing-state file on the runtime
volume, but an admin call (canary weight, promotion) reaches only the replica DNS
picks; until the canary fans its admin calls out to every replica, scale the
gateway only between releases. The plan carries this note.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.core.observability import get_logger
from pipelines.optimize.errors import ScalingError

log = get_logger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"

GATEWAY_NOTE = (
    "admin calls (canary weight, promote, rollback) reach one replica only: scale the gateway between "
    "releases, or have the canary fan admin calls out to every replica"
)


@dataclass
class ScalePlan:
    """What scaling would do (``actions``) and, with ``apply``, what it did (``applied``)."""

    project: str
    service: str
    target: int
    dry_run: bool
    current: int | None = None
    actions: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    engine: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(container: Any) -> int:
    return int(container.labels.get(NUMBER_LABEL, "1") or 1)


def _client(base_url: str | None) -> Any:
    import docker

    client = docker.DockerClient(base_url=base_url, timeout=10) if base_url else docker.from_env(timeout=10)
    client.ping()
    return client


def _mode(mount: dict[str, Any]) -> str:
    return "rw" if mount.get("RW") else "ro"


def _clone(client: Any, src: Any, number: int, service: str) -> Any:
    """Start one more replica with the source container's configuration (no host ports)."""
    attrs = src.attrs
    cfg, host = attrs["Config"], attrs["HostConfig"]
    labels = {**(cfg.get("Labels") or {}), NUMBER_LABEL: str(number)}
    # Compose names replicas <project>[-_]<service>[-_]<n>: keep the source's pattern.
    name = re.sub(r"\d+$", str(number), src.name) if re.search(r"\d+$", src.name) else f"{src.name}_{number}"
    networks = list((attrs.get("NetworkSettings") or {}).get("Networks") or {})
    volumes = [
        f"{m['Name'] if m['Type'] == 'volume' else m['Source']}:{m['Destination']}:{_mode(m)}"
        for m in attrs.get("Mounts") or []
        if m.get("Type") in {"volume", "bind"}
    ]
    first = networks[0] if networks else None
    kwargs: dict[str, Any] = {
        "command": cfg.get("Cmd"),
        "entrypoint": cfg.get("Entrypoint"),
        "environment": cfg.get("Env"),
        "labels": labels,
        "name": name,
        "detach": True,
        "volumes": volumes,
        "user": cfg.get("User") or None,
        "working_dir": cfg.get("WorkingDir") or None,
        "restart_policy": host.get("RestartPolicy") or None,
        "healthcheck": cfg.get("Healthcheck"),
    }
    if first:
        kwargs["network"] = first
        kwargs["networking_config"] = {first: client.api.create_endpoint_config(aliases=[service])}
    container = client.containers.run(cfg["Image"], **kwargs)
    for net in networks[1:]:
        client.networks.get(net).connect(container, aliases=[service])
    return container


def scale_service(
    replicas: int,
    *,
    project: str,
    service: str,
    base_url: str | None = None,
    apply: bool = False,
) -> ScalePlan:
    """Plan (and with ``apply=True`` carry out) scaling ``service`` to ``replicas`` containers.

    A dry run on a machine without a reachable engine still returns the plan's
    target with a note; a real run fails closed (raises) in that case.
    """
    if replicas < 1:
        raise ValueError("the serving service needs at least one replica")
    plan = ScalePlan(project=project, service=service, target=replicas, dry_run=not apply)
    caveat = f"; {GATEWAY_NOTE}" if replicas > 1 else ""
    try:
        client = _client(base_url)
    except Exception as exc:
        msg = f"Docker engine not reachable ({base_url or 'from environment'}): {type(exc).__name__}: {exc}"
        if apply:
            raise ScalingError(f"{msg}; nothing was scaled") from exc
        plan.note = f"{msg}; dry run: plan only{caveat}"
        return plan
    plan.engine = str(client.version().get("Version"))
    running = client.containers.list(
        all=False, filters={"label": [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={service}"]}
    )
    running.sort(key=_number)
    plan.current = len(running)
    if not running:
        msg = f"no running container of service {service!r} in compose project {project!r}"
        if apply:
            raise ScalingError(msg)
        plan.note = msg
        return plan
    used = {_number(c) for c in running}
    if replicas > len(running):
        numbers: list[int] = []
        n = 1
        while len(numbers) < replicas - len(running):
            if n not in used:
                numbers.append(n)
            n += 1
        plan.actions = [f"start replica #{n} from {running[0].name}" for n in numbers]
    else:
        numbers = []
        plan.actions = [f"stop and remove {c.name}" for c in running[replicas:][::-1]]
    if not apply:
        plan.note = f"dry run: nothing changed (pass --apply to scale){caveat}"
        return plan
    for n in numbers:
        c = _clone(client, running[0], n, service)
        plan.applied.append(f"started {c.name}")
    for c in running[replicas:][::-1]:
        c.stop(timeout=20)
        c.remove()
        plan.applied.append(f"removed {c.name}")
    log.info("service_scaled", service=service, project=project, current=plan.current, target=replicas)
    return plan
