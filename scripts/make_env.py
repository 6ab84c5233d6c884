"""Generate the ``.env`` file of the docker-compose stack: every secret random, none ever shipped.

Why a generator and not a sample file with passwords: stacks that ship ``airflow/airflow`` logins and
an empty Fernet key get deployed with them. Here the compose file refers to each secret as
``${VAR:?...}``, so the stack refuses to start until this script (``make env``) has written them.

An existing file is never overwritten: values already in it are kept as they are (rotating a
database password would lock the services out of a volume initialised with the old one); only
secrets missing from it are appended, which is how a template upgrade that adds a secret lands.

Standard library only: it runs with any Python 3 before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _password() -> str:
    # URL-safe alphabet: the value is embedded in SQLAlchemy / Redis URLs and an ini file unquoted.
    return secrets.token_urlsafe(24)


def _long_secret() -> str:
    return secrets.token_urlsafe(48)


def _fernet_key() -> str:
    # cryptography.fernet.Fernet.generate_key() without importing cryptography.
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _bcrypt(password: str) -> str:
    """A bcrypt hash of ``password`` (what Prometheus' web config file accepts), stdlib first.

    ``crypt`` (Python <= 3.12 on glibc/libxcrypt), else the ``bcrypt`` package, else ``htpasswd -B``.
    """
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # removed in Python 3.13

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
        if hashed and hashed.startswith("$2"):
            return hashed
    except (ImportError, AttributeError, OSError):
        pass
    try:
        import bcrypt  # type: ignore[import-not-found]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode())
    except ImportError:
        pass
    import shutil
    import subprocess

    if shutil.which("htpasswd"):
        out = subprocess.run(
            ["htpasswd", "-inBC", "10", "admin"], input=password, capture_output=True, text=True, check=True
        )
        return out.stdout.strip().split(":", 1)[1]
    raise SystemExit(
        "cannot bcrypt-hash the Prometheus password: no crypt module (Python >= 3.13), no bcrypt "
        "package and no htpasswd; install one (pip install bcrypt / apt-get install apache2-utils)"
    )


def _bcrypt_b64(password: str) -> str:
    # base64: a bcrypt hash is full of `$`, which .env parsers (compose v2) would interpolate.
    return base64.b64encode(_bcrypt(password).encode()).decode()


# name -> (generator, what it protects). The order is the order written to the file.
SECRETS: dict[str, tuple[Callable[[], str], str]] = {
    "POSTGRES_PASSWORD": (_password, "Postgres superuser (only the init script uses it)"),
    "AIRFLOW_DB_PASSWORD": (_password, "Postgres role 'airflow' (metadata DB, Celery results)"),
    "MLFLOW_DB_PASSWORD": (_password, "Postgres role 'mlflow' (tracking, registry, auth DBs)"),
    "MLOPS_DB_PASSWORD": (_password, "Postgres role 'mlops' (prediction log)"),
    "REDIS_PASSWORD": (_password, "Redis, the Celery broker"),
    "AIRFLOW_FERNET_KEY": (_fernet_key, "encrypts Airflow connections and variables"),
    "AIRFLOW_JWT_SECRET": (_long_secret, "signs Airflow API / Execution API tokens"),
    "AIRFLOW_API_SECRET_KEY": (_long_secret, "signs Airflow log-server requests"),
    "AIRFLOW_ADMIN_PASSWORD": (_password, "Airflow UI / REST API user (AIRFLOW_ADMIN_USERNAME)"),
    "MLFLOW_AUTH_ADMIN_PASSWORD": (
        _password,
        "MLflow admin user (basic-auth; the server and mlflow-init only)",
    ),
    "MLFLOW_PIPELINE_PASSWORD": (_password, "MLflow user mlops-pipeline (workers: train, register, promote)"),
    "MLFLOW_GATEWAY_PASSWORD": (_password, "MLflow user mlops-gateway (gateway: read-only registry access)"),
    "MLFLOW_FLASK_SERVER_SECRET_KEY": (_long_secret, "MLflow basic-auth session / CSRF key"),
    "MLOPS_GATEWAY_ADMIN_TOKEN": (_long_secret, "serving gateway admin endpoints (canary, rollback)"),
    "MLOPS_LABELS_TOKEN": (_long_secret, "serving gateway label writes (POST /labels)"),
    "EVIDENTLY_SECRET": (_long_secret, "Evidently UI write operations"),
    "PROMETHEUS_ADMIN_PASSWORD": (_password, "Prometheus web UI / API login (user admin, basic auth)"),
}

# Values computed from another secret: name -> (source secret, function, what it is).
DERIVED: dict[str, tuple[str, Callable[[str], str], str]] = {
    "PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64": (
        "PROMETHEUS_ADMIN_PASSWORD",
        _bcrypt_b64,
        "bcrypt hash of PROMETHEUS_ADMIN_PASSWORD, base64 (Prometheus' web config file)",
    ),
}

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def existing_keys(path: Path) -> set[str]:
    """Names assigned in an env file (comments and blank lines ignored)."""
    if not path.is_file():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            keys.add(m.group(1))
    return keys


def existing_values(path: Path) -> dict[str, str]:
    """Name -> value of the assignments in an env file (quotes around a value are dropped)."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = _LINE.match(line)
            if m:
                values[m.group(1)] = line.split("=", 1)[1].strip().strip("'\"")
    return values


def render(missing: list[str], *, header: bool, path: Path | None = None) -> str:
    lines = []
    if header:
        example = REPO / ".env.example"
        lines.append("# Written by scripts/make_env.py (make env). Secrets: never commit this file.")
        lines.append(
            "# Non-secret settings (ports, image, worker concurrency) are documented in .env.example;"
        )
        lines.append("# copy the ones you want to change below.")
        if example.is_file():
            lines.append(f"# See {example.name} for every variable the stack reads.")
        lines.append("")
    values: dict[str, str] = {}
    for name in missing:
        if name in SECRETS:
            gen, what = SECRETS[name]
            values[name] = gen()
            lines.append(f"# {what}")
            lines.append(f"{name}={values[name]}")
    for name in missing:
        if name in DERIVED:
            source, fn, what = DERIVED[name]
            known = values.get(source) or (existing_values(path).get(source) if path else None)
            if not known:
                raise SystemExit(f"{name} needs {source}, which is missing or empty")
            lines.append(f"# {what}")
            lines.append(f"{name}={fn(known)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", "-o", type=Path, default=REPO / ".env", help="env file (default: ./.env)")
    ap.add_argument(
        "--check", action="store_true", help="only report missing secrets; exit 1 if any are missing"
    )
    args = ap.parse_args(argv)
    path: Path = args.output

    have = existing_keys(path)
    missing = [name for name in (*SECRETS, *DERIVED) if name not in have]
    if args.check:
        for name in missing:
            what = SECRETS[name][1] if name in SECRETS else DERIVED[name][2]
            print(f"missing: {name} ({what})", file=sys.stderr)
        return 1 if missing else 0
    if not missing:
        print(f"{path}: all {len(SECRETS) + len(DERIVED)} secrets present; left unchanged")
        return 0

    new_file = not path.exists()
    text = render(missing, header=new_file, path=path)
    # Create with 0600 from the start so the secrets are never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        if not new_file and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            fh.write("\n")
        fh.write(text)
    verb = "wrote" if new_file else "appended"
    print(f"{path}: {verb} {len(missing)} secret(s): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
