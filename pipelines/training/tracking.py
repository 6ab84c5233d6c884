"""MLflow connection, experiment and provenance (code version, config hash).

Nothing here runs at import time: a task calls :func:`configure_tracking` first,
which fails fast (seconds, not MLflow's minutes of HTTP retries) with a clear
error when the tracking server is down, *before* any run or registry entry exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipelines.config import REPO_ROOT, Settings
from pipelines.core.registry import client_for
from pipelines.training.contracts import CodeVersion
from pipelines.training.errors import TrackingUnavailableError

# Code that decides what a model is: a change here must not be deduplicated away.
MODEL_CODE_DIRS = ("pipelines/training", "pipelines/data")


def artifact_root(settings: Settings) -> str | None:
    """Where a new experiment stores artifacts: explicit, local default, or the server's choice.

    With a SQLite store MLflow would otherwise default to ``./mlruns`` under the
    *current directory*, scattering artifacts wherever a task happened to run.
    """
    if settings.mlflow.artifact_root:
        return settings.mlflow.artifact_root
    if settings.tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    return (settings.paths.root / "mlartifacts").as_uri()


def check_reachable(settings: Settings) -> None:
    """Probe an http(s) tracking server; raise naming the URI and the config key to fix."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            resp = httpx.get(uri.rstrip("/") + "/health", timeout=settings.mlflow.connect_timeout_s)
        except httpx.HTTPError as exc:
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} is unreachable ({type(exc).__name__}: {exc}); "
                "check the server or mlflow.tracking_uri / MLOPS__MLFLOW__TRACKING_URI. "
                "Nothing was trained or registered."
            ) from exc
        if resp.status_code != 200:
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} answered /health with HTTP {resp.status_code}; "
                "nothing was trained or registered."
            )
    elif uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def configure_tracking(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and experiment; return a client for both."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # task logs, not a TTY
    check_reachable(settings)
    uri = settings.tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = client_for(settings)
    name = settings.mlflow.experiment
    try:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                client.create_experiment(name, artifact_location=artifact_root(settings))
            except MlflowException as exc:  # created concurrently by another task
                if "already exists" not in str(exc).lower():
                    raise
            exp = client.get_experiment_by_name(name)
    except MlflowException as exc:
        raise TrackingUnavailableError(f"MLflow store {uri} refused the experiment {name!r}: {exc}") from exc
    assert exp is not None
    mlflow.set_experiment(experiment_id=exp.experiment_id)
    return client


def experiment_id(client: MlflowClient, settings: Settings) -> str:
    exp = client.get_experiment_by_name(settings.mlflow.experiment)
    if exp is None:
        raise TrackingUnavailableError(f"experiment {settings.mlflow.experiment!r} vanished")
    return str(exp.experiment_id)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def source_hash(dirs: tuple[str, ...] = MODEL_CODE_DIRS) -> str:
    """Hash of the Python source that shapes a model (works without git, e.g. in an image)."""
    h = hashlib.sha256()
    for d in dirs:
        for path in sorted((REPO_ROOT / d).rglob("*.py")):
            h.update(str(path.relative_to(REPO_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def code_version() -> CodeVersion:
    """git sha (+ dirty flag for the model code) and the source hash of that code."""
    sha = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", *MODEL_CODE_DIRS)) if sha else False
    return CodeVersion(
        git_sha=(sha + ("-dirty" if dirty else "")) if sha else "unknown",
        source_hash=source_hash(),
    )


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def config_hash(settings: Settings) -> str:
    """Hash of the configuration that shapes the model: the dataset contract and training section."""
    return stable_hash(
        {
            # the replay list does not shape a model (the data fingerprint covers the rows)
            "dataset": settings.dataset.model_dump(mode="json", exclude={"batches"}),
            # threads change speed, not the model; importance settings shape the evaluation only
            "training": settings.training.model_dump(
                mode="json", exclude={"threads", "importance_rows", "importance_repeats"}
            ),
            "serialization": settings.mlflow.serialization,
        }
    )


def evaluation_config_hash(settings: Settings) -> str:
    """Hash of what shapes an evaluation (gate section: slices, behaviour checks)."""
    return stable_hash(
        {
            "gate": settings.gate.model_dump(mode="json"),
            "slices": settings.dataset.slice_columns,
            "importance": [settings.training.importance_rows, settings.training.importance_repeats],
        }
    )
