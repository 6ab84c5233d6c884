"""Fast checks of the platform files that need no Docker engine (part of the default test run).

They guard the "secure by default" promises of docker-compose.yml and ``make env``: no secret has a
default, a missing one stops compose with its name, every port is loopback-only, every project
service runs as the non-root image user, every long-running service has a healthcheck.
"""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO, compose_stack, make_env

COMPOSE_FILE = REPO / "docker-compose.yml"
PROJECT_IMAGE_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "mlflow",
    "mlflow-init",
    "gateway",
    "evidently",
}


def _env_values(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


# ------------------------------------------------------------------------------- make env
def test_make_env_writes_every_secret_private_and_random(tmp_path: Path) -> None:
    a, b = tmp_path / "a.env", tmp_path / "b.env"
    assert make_env.main(["--output", str(a)]) == 0
    assert make_env.main(["--output", str(b)]) == 0
    va, vb = _env_values(a), _env_values(b)
    assert set(va) == set(make_env.SECRETS) | set(make_env.DERIVED)
    assert all(len(v) >= 24 for v in va.values()), va.keys()
    assert not set(va.values()) & set(vb.values()), "two runs generated a common secret"
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    key = base64.urlsafe_b64decode(va["AIRFLOW_FERNET_KEY"])
    assert len(key) == 32  # a valid Fernet key is 32 url-safe-base64 bytes

    from cryptography.fernet import Fernet

    Fernet(va["AIRFLOW_FERNET_KEY"].encode())  # raises on an invalid key


def test_make_env_never_overwrites_and_only_appends_missing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# mine\nPOSTGRES_PASSWORD=keep-me\nAIRFLOW_PORT=19999")  # no trailing newline
    assert make_env.main(["--check", "--output", str(path)]) == 1
    assert make_env.main(["--output", str(path)]) == 0
    values = _env_values(path)
    assert values["POSTGRES_PASSWORD"] == "keep-me"
    assert values["AIRFLOW_PORT"] == "19999"
    assert set(make_env.SECRETS) <= set(values)
    before = path.read_text()
    assert make_env.main(["--output", str(path)]) == 0
    assert path.read_text() == before
    assert make_env.main(["--check", "--output", str(path)]) == 0


def test_env_example_holds_no_secret_values() -> None:
    example = REPO / ".env.example"
    assigned = _env_values(example)
    assert not set(assigned) & set(make_env.SECRETS), "a secret is assigned in .env.example"
    for name in make_env.SECRETS:
        assert name in example.read_text(), f"{name} is not documented in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


# ------------------------------------------------------------------------------- compose file
def test_every_secret_in_compose_is_required_without_default() -> None:
    text = COMPOSE_FILE.read_text()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    for name in make_env.SECRETS:
        assert name in referenced, f"secret {name} generated but unused"
        forms = re.findall(r"\$\{" + name + r"(:?[-?][^}]*)?\}", text)
        assert forms and all(f.startswith(":?") for f in forms), (
            f"{name} has a default or is optional: {forms}"
        )


def _compose_cmd() -> list[str]:
    try:
        return list(compose_stack.compose_command())
    except compose_stack.StackError as exc:
        pytest.skip(str(exc))


def _compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in make_env.SECRETS}
    return subprocess.run(
        [
            *_compose_cmd(),
            "-p",
            "static-check",
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            "config",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_compose_refuses_to_start_naming_the_missing_secret(tmp_path: Path) -> None:
    env_file = tmp_path / "stack.env"
    make_env.main(["--output", str(env_file)])
    lines = [ln for ln in env_file.read_text().splitlines() if not ln.startswith("AIRFLOW_JWT_SECRET=")]
    env_file.write_text("\n".join(lines) + "\n")
    proc = _compose_config(env_file)
    assert proc.returncode != 0
    assert "AIRFLOW_JWT_SECRET" in proc.stderr, proc.stderr[-500:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = tmp_path_factory.mktemp("static") / "stack.env"
    make_env.main(["--output", str(env_file)])
    proc = _compose_config(env_file)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(yaml.safe_load(proc.stdout))


def _host_ips(ports: list[Any]) -> list[str | None]:
    ips: list[str | None] = []
    for p in ports:
        if isinstance(p, dict):  # Compose v2 long syntax
            ips.append(p.get("host_ip"))
        else:  # v1.29: "127.0.0.1:18301:8080/tcp"
            parts = str(p).split(":")
            ips.append(parts[0] if len(parts) == 3 else None)
    return ips


def test_published_ports_bind_loopback_only(rendered: dict[str, Any]) -> None:
    published = {name: svc["ports"] for name, svc in rendered["services"].items() if svc.get("ports")}
    assert {"airflow-apiserver", "mlflow", "gateway", "evidently"} <= set(published)
    for name, ports in published.items():
        assert all(ip == "127.0.0.1" for ip in _host_ips(ports)), f"{name}: {ports}"
    for name in ("postgres", "redis", "airflow-worker"):
        assert not rendered["services"][name].get("ports"), f"{name} must not be published"


def test_services_run_non_root_with_healthchecks(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    assert set(services) >= PROJECT_IMAGE_SERVICES
    images = {services[s]["image"] for s in PROJECT_IMAGE_SERVICES}
    assert len(images) == 1, f"project services must share one image: {images}"
    for name in PROJECT_IMAGE_SERVICES:
        assert str(services[name].get("user", "")).split(":")[0] == "50000", f"{name} user"
    assert services["redis"].get("user") == "redis"
    for name, svc in services.items():
        if name in ("airflow-init", "mlflow-init"):  # one-shot jobs
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_airflow_components_wait_for_init_and_share_secrets(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    airflow = [s for s in services if s.startswith("airflow-") and s != "airflow-init"]
    assert set(airflow) == {
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    }
    # Where a component holds one of these, it is the API server's value (least privilege decides
    # who holds which: tests/unit/test_compose_secrets.py).
    shared = (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__API__SECRET_KEY",
    )
    for name in airflow:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        for key in shared:
            if key in env:
                assert env[key] == services["airflow-apiserver"]["environment"][key], f"{name}: {key} differs"
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in services["airflow-scheduler"]["environment"]
    assert "AIRFLOW__CORE__FERNET_KEY" not in services["airflow-worker"]["environment"]
    assert "AIRFLOW_ADMIN_PASSWORD" in services["airflow-apiserver"]["environment"]
    assert "AIRFLOW_ADMIN_PASSWORD" not in services["airflow-worker"]["environment"]
    cmd = " ".join(services["mlflow"]["command"])
    assert "--app-name=basic-auth" in cmd and "--serve-artifacts" in cmd
