"""Create the MLflow users of the compose stack, each with only the rights its service needs.

Why: with basic-auth on, a client that logs in as ``admin`` can do anything, including read and
change every user's password. The gateway only loads registered models, so it gets a user that can
read and nothing else; the pipeline (the Airflow workers) trains, registers and moves aliases, so
its user may edit experiments and manage registered models but is no administrator. The admin
password stays with the MLflow server and this one-shot job (the ``mlflow-init`` service).

Idempotent, so it runs on every ``up``: an existing user gets the password from the environment
(rotating it in ``.env`` takes effect on the next ``up``) and its grants are reset to the table
below. Environment:

* ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``: the admin login.
* ``MLFLOW_PIPELINE_USERNAME`` (default ``mlops-pipeline``) / ``MLFLOW_PIPELINE_PASSWORD``.
* ``MLFLOW_GATEWAY_USERNAME`` (default ``mlops-gateway``) / ``MLFLOW_GATEWAY_PASSWORD``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

#: (resource type, resource pattern, permission) of each service user. ``*`` = every resource of
#: the type, present and future: experiment and model names are configuration, not fixed here.
#: The pipeline needs MANAGE on models because deleting an alias (challenger retired, rollback)
#: is a delete action on the registered model; on experiments EDIT covers runs, params, metrics,
#: artifacts and logged models (an experiment it creates is MANAGE for it anyway, as creator).
GRANTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "pipeline": (("experiment", "*", "EDIT"), ("registered_model", "*", "MANAGE")),
    "gateway": (("experiment", "*", "READ"), ("registered_model", "*", "READ")),
}

DEFAULT_USERNAMES = {"pipeline": "mlops-pipeline", "gateway": "mlops-gateway"}


@dataclass(frozen=True)
class ServiceUser:
    role: str
    username: str
    password: str


def service_users(environ: dict[str, str]) -> list[ServiceUser]:
    """The users to create, from the environment; a missing password is a named error."""
    users = []
    missing = []
    for role in GRANTS:
        prefix = f"MLFLOW_{role.upper()}"
        password = environ.get(f"{prefix}_PASSWORD", "")
        if not password:
            missing.append(f"{prefix}_PASSWORD")
            continue
        username = environ.get(f"{prefix}_USERNAME") or DEFAULT_USERNAMES[role]
        users.append(ServiceUser(role, username, password))
    if missing:
        raise SystemExit(f"mlflow-users: {', '.join(missing)} missing or empty (run make env)")
    return users


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", ""))


def ensure_user(client: object, user: ServiceUser) -> str:
    """Create the user, or set its password when it exists; never an administrator."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_user(user.username, user.password)  # type: ignore[attr-defined]
        action = "created"
    except MlflowException as exc:
        if "ALREADY_EXISTS" not in _error_code(exc):
            raise
        client.update_user_password(user.username, user.password)  # type: ignore[attr-defined]
        action = "password set"
    client.update_user_admin(user.username, False)  # type: ignore[attr-defined]
    return action


def ensure_grants(client: object, user: ServiceUser) -> list[str]:
    """Reset the user's grants to :data:`GRANTS` (revoke + grant when one already exists)."""
    from mlflow.exceptions import MlflowException

    done = []
    for resource_type, pattern, permission in GRANTS[user.role]:
        try:
            client.grant_user_permission(user.username, resource_type, pattern, permission)  # type: ignore[attr-defined]
        except MlflowException as exc:
            if "ALREADY_EXISTS" not in _error_code(exc):
                raise
            client.revoke_user_permission(user.username, resource_type, pattern)  # type: ignore[attr-defined]
            client.grant_user_permission(user.username, resource_type, pattern, permission)  # type: ignore[attr-defined]
        done.append(f"{permission} on {resource_type} {pattern}")
    return done


def main() -> int:
    # The client module directly: ``mlflow.server.get_app_client`` imports the whole server app.
    from mlflow.server.auth.client import AuthServiceClient

    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    users = service_users(dict(os.environ))
    client = AuthServiceClient(tracking_uri)
    deadline = time.monotonic() + float(os.environ.get("MLFLOW_USERS_TIMEOUT_S", "120"))
    while True:  # the server answers /health before its auth store is always ready: retry a while
        try:
            for user in users:
                action = ensure_user(client, user)
                grants = ensure_grants(client, user)
                print(f"mlflow-users: {user.username} ({user.role}): {action}; {', '.join(grants)}")
            return 0
        except Exception as exc:
            if time.monotonic() > deadline:
                print(
                    f"mlflow-users: failed against {tracking_uri}: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(3)


if __name__ == "__main__":
    raise SystemExit(main())
