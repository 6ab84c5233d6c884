"""Least privilege in docker-compose.yml: which service may see which secret (issue 13, item 6).

The compose file is read as YAML (anchors and merge keys resolved) and interpolated here with a
distinct marker value per secret, so no Docker engine and no compose binary are needed. A secret
"reaches" a service when its value appears anywhere in that service's definition (environment,
command, healthcheck...). The table below is the whole policy: a secret reaching a service not
listed for it fails, and so does a listed service it no longer reaches (the table went stale).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.edges

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"

AIRFLOW_DB = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}

#: secret (.env name) -> the services allowed to hold it, and why. Postgres holds the role
#: passwords because its init script creates the roles (infra/postgres/10-create-databases.sh).
ALLOWED: dict[str, set[str]] = {
    "POSTGRES_PASSWORD": {"postgres"},
    # The worker holds it only inside the Celery result-backend URL (task state), not as a DB URL.
    "AIRFLOW_DB_PASSWORD": {"postgres", *AIRFLOW_DB, "airflow-worker"},
    "MLFLOW_DB_PASSWORD": {"postgres", "mlflow"},
    # The gateway writes the prediction log; monitoring (in the workers) reads it.
    "MLOPS_DB_PASSWORD": {"postgres", "gateway", "airflow-worker"},
    # The broker: the scheduler's Celery executor sends, the workers receive.
    "REDIS_PASSWORD": {"redis", "airflow-scheduler", "airflow-worker"},
    # Components with metadata-DB access decrypt connections/variables/trigger arguments.
    "AIRFLOW_FERNET_KEY": AIRFLOW_DB,
    # Signs (scheduler: workload tokens; API server: UI tokens) and validates (API server) JWTs;
    # the DAG processor and triggerer call the Execution API in process, without tokens.
    "AIRFLOW_JWT_SECRET": {"airflow-apiserver", "airflow-scheduler"},
    # Log fetching: the API server signs, the log servers (workers, triggerer) check.
    "AIRFLOW_API_SECRET_KEY": {"airflow-apiserver", "airflow-worker", "airflow-triggerer"},
    "AIRFLOW_ADMIN_PASSWORD": {"airflow-apiserver"},
    # The MLflow admin: the server and the one-shot job that creates the service users.
    "MLFLOW_AUTH_ADMIN_PASSWORD": {"mlflow", "mlflow-init"},
    "MLFLOW_FLASK_SERVER_SECRET_KEY": {"mlflow"},
    "MLFLOW_PIPELINE_PASSWORD": {"mlflow-init", "airflow-worker"},
    "MLFLOW_GATEWAY_PASSWORD": {"mlflow-init", "gateway"},
    # The canary DAG (workers) drives the gateway's admin API.
    "MLOPS_GATEWAY_ADMIN_TOKEN": {"gateway", "airflow-worker"},
    "MLOPS_LABELS_TOKEN": {"gateway"},
    "EVIDENTLY_SECRET": {"evidently"},
    "PROMETHEUS_ADMIN_PASSWORD": {"prometheus"},
    "PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64": {"prometheus"},
    # Optional (not generated): the steps' alerts (workers), failure callbacks of tasks whose worker
    # died (run by the DAG processor), and Alertmanager's routes.
    "MLOPS_ALERT_WEBHOOK_URL": {"alertmanager", "airflow-worker", "airflow-dag-processor"},
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _load_make_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_env_h4", REPO / "scripts" / "make_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _marker(name: str) -> str:
    return f"mk-{name.lower().replace('_', '-')}-7f3a9c"


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose substitution: ``${VAR}``, ``${VAR:-d}``, ``${VAR:?error}``; ``$$`` is a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name, "")
        if value:
            return value
        if op and op.endswith("?"):
            raise AssertionError(f"required variable {name} missing: {arg}")
        return arg if op and op.endswith("-") else ""

    parts = text.split("$$")
    return "$".join(_VAR.sub(sub, p) for p in parts)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text())["services"])


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {name: _marker(name) for name in ALLOWED}


def _reach(service: Any, env: dict[str, str]) -> set[str]:
    text = "\n".join(_interpolate(s, env) for s in _strings(service))
    return {name for name, value in env.items() if value in text}


def test_every_generated_secret_has_a_policy() -> None:
    make_env = _load_make_env()
    generated = set(make_env.SECRETS) | set(make_env.DERIVED)
    assert generated - set(ALLOWED) == set(), "a secret make_env generates is missing from ALLOWED"
    text = COMPOSE_FILE.read_text()
    referenced = {m[0] for m in _VAR.findall(text)}
    assert set(ALLOWED) - referenced == set(), "ALLOWED lists a secret compose never uses"


def test_each_secret_reaches_exactly_its_allowed_services(
    services: dict[str, Any], env: dict[str, str]
) -> None:
    seen: dict[str, set[str]] = {name: set() for name in ALLOWED}
    for svc_name, svc in services.items():
        for secret in _reach(svc, env):
            seen[secret].add(svc_name)
    extra = {s: sorted(seen[s] - ALLOWED[s]) for s in ALLOWED if seen[s] - ALLOWED[s]}
    stale = {s: sorted(ALLOWED[s] - seen[s]) for s in ALLOWED if ALLOWED[s] - seen[s]}
    assert not extra, f"secrets reach services not allowed to hold them: {extra}"
    assert not stale, f"ALLOWED grants services that no longer receive the secret: {stale}"


def test_no_secret_on_a_command_line(services: dict[str, Any], env: dict[str, str]) -> None:
    """argv is world-readable on the host (``ps``); secrets go through the environment only."""
    for name, svc in services.items():
        argv = {"command": svc.get("command"), "entrypoint": svc.get("entrypoint")}
        argv["healthcheck"] = (svc.get("healthcheck") or {}).get("test")
        leaked = _reach(argv, env)
        assert not leaked, f"{name}: {sorted(leaked)} on a command line"


def test_no_service_reads_an_env_file(services: dict[str, Any]) -> None:
    """An ``env_file:`` would hand a service every secret of .env, around the table above."""
    assert [n for n, s in services.items() if "env_file" in s] == []


def test_gateway_and_pipeline_use_their_own_mlflow_users(
    services: dict[str, Any], env: dict[str, str]
) -> None:
    def user(service: str) -> tuple[str, str]:
        environment = services[service]["environment"]
        return (
            _interpolate(str(environment["MLFLOW_TRACKING_USERNAME"]), env),
            _interpolate(str(environment["MLFLOW_TRACKING_PASSWORD"]), env),
        )

    assert user("gateway") == ("mlops-gateway", env["MLFLOW_GATEWAY_PASSWORD"])
    assert user("airflow-worker") == ("mlops-pipeline", env["MLFLOW_PIPELINE_PASSWORD"])
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_DEFAULT_PERMISSION"] == "NO_PERMISSIONS"
    deps = services["gateway"]["depends_on"]
    assert deps["mlflow-init"]["condition"] == "service_completed_successfully"
    assert (
        services["airflow-worker"]["depends_on"]["mlflow-init"]["condition"]
        == "service_completed_successfully"
    )


def test_interpolation_matches_compose_rules() -> None:
    env = {"A": "x"}
    assert _interpolate("${A:?missing}-${B:-d}-$${A}-${B}", env) == "x-d-${A}-"
    with pytest.raises(AssertionError, match="B"):
        _interpolate("${B:?B is missing}", env)


# ------------------------------------------------------------------ the mlflow-init grants
def _mlflow_users() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlflow_users_h4", REPO / "infra" / "mlflow_users.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_gateway_user_is_read_only_and_pipeline_is_no_admin() -> None:
    mod = _mlflow_users()
    assert {perm for _, _, perm in mod.GRANTS["gateway"]} == {"READ"}
    assert {rtype for rtype, _, _ in mod.GRANTS["gateway"]} == {"experiment", "registered_model"}
    assert {r: p for r, _, p in mod.GRANTS["pipeline"]} == {
        "experiment": "EDIT",
        "registered_model": "MANAGE",
    }


def test_mlflow_users_names_a_missing_password() -> None:
    mod = _mlflow_users()
    with pytest.raises(SystemExit, match="MLFLOW_GATEWAY_PASSWORD"):
        mod.service_users({"MLFLOW_PIPELINE_PASSWORD": "p"})
    users = mod.service_users({"MLFLOW_PIPELINE_PASSWORD": "p", "MLFLOW_GATEWAY_PASSWORD": "g"})
    assert [(u.role, u.username) for u in users] == [
        ("pipeline", "mlops-pipeline"),
        ("gateway", "mlops-gateway"),
    ]
