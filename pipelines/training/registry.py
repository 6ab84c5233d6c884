"""Registry versioning with aliases (never stages).

Every evaluated candidate becomes a model version, tagged with its data window,
fingerprints, code version, holdout metrics and gate verdict (every failed
criterion). Only a candidate that passed gets ``@challenger``; ``@champion`` is
moved by the canary release alone (``pipelines/canary``), never here.

Deduplication: a version carries the candidate's ``dedupe_key`` tag (data
fingerprint + code hash + config hash); registering the same key again updates
that version's verdict tags instead of adding a version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context
from pipelines.training.train import DEDUPE_TAG

log = get_logger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
MAX_TAG_CHARS = 4900


def client_for(settings: Settings) -> MlflowClient:
    """A client bound to the configured store, without touching MLflow's global state."""
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def alias_version(settings: Settings, alias: str, client: MlflowClient | None = None) -> ModelVersion | None:
    """The version holding ``alias``, or None when the model or the alias does not exist."""
    client = client or client_for(settings)
    name = settings.mlflow.registered_model
    # Read the alias map instead of get_model_version_by_alias: a missing alias comes back as
    # INVALID_PARAMETER_VALUE there, indistinguishable from a real error.
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def champion_version(settings: Settings, client: MlflowClient | None = None) -> ModelVersion | None:
    """The ``@champion`` version (what serves traffic), or None before the first release."""
    return alias_version(settings, CHAMPION, client)


def challenger_version(settings: Settings, client: MlflowClient | None = None) -> ModelVersion | None:
    return alias_version(settings, CHALLENGER, client)


def list_versions(settings: Settings, client: MlflowClient | None = None) -> list[ModelVersion]:
    """All versions of the registered model, oldest first (empty if it does not exist)."""
    client = client or client_for(settings)
    found = client.search_model_versions(f"name = '{settings.mlflow.registered_model}'")
    return sorted(found, key=lambda mv: int(mv.version))


def find_by_dedupe_key(
    settings: Settings, key: str, client: MlflowClient | None = None
) -> ModelVersion | None:
    client = client or client_for(settings)
    found = client.search_model_versions(
        f"name = '{settings.mlflow.registered_model}' and tags.{DEDUPE_TAG} = '{key}'"
    )
    return min(found, key=lambda mv: int(mv.version)) if found else None


def _ensure_model(settings: Settings, client: MlflowClient) -> None:
    name = settings.mlflow.registered_model
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(
                name,
                description=(
                    f"Candidates for dataset {settings.dataset.name!r} "
                    f"(target {settings.dataset.target.name}, {settings.dataset.target.task}). "
                    "@challenger: passed the evaluation gate (set by training). "
                    "@champion: serving traffic (moved only by the canary release)."
                ),
                tags={"dataset": settings.dataset.name, "task": settings.dataset.target.task},
            )
        except MlflowException as exc2:  # created concurrently
            if exc2.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def version_tags(
    train_result: dict[str, Any], evaluation: dict[str, Any], verdict: dict[str, Any]
) -> dict[str, str]:
    """Everything needed to audit a version without opening its run."""
    window = train_result["window"]
    tags = {
        DEDUPE_TAG: train_result["dedupe_key"],
        "mlops.reason": train_result.get("reason") or "unspecified",
        "data.train_batches": ",".join(window["train_batches"]),
        "data.holdout_batch": window["holdout_batch"],
        "data.train_fingerprint": train_result["train_fingerprint"],
        "data.holdout_fingerprint": train_result["holdout_fingerprint"],
        "data.train_rows": str(train_result["train_rows"]),
        "data.dropped_null_target": str(train_result["dropped_null_target"]),
        "code.git_sha": train_result["code"]["git_sha"],
        "code.source_hash": train_result["code"]["source_hash"],
        "config_hash": train_result["config_hash"],
        "gate.verdict": verdict["verdict"],
        "gate.failed_criteria": ",".join(verdict["failed_criteria"]) or "none",
        "gate.failures": "; ".join(verdict["failures"])[:MAX_TAG_CHARS] or "none",
        "gate.champion_version": str(verdict.get("champion_version") or "none"),
        "gate.evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for name, value in evaluation["candidate"]["metrics"].items():
        tags[f"metric.{name}"] = f"{value:.6g}"
    return tags


def register_candidate(
    settings: Settings,
    train_result: dict[str, Any],
    evaluation: dict[str, Any],
    verdict: dict[str, Any],
) -> dict[str, Any]:
    """Register (or find) the candidate's version, tag it, and give it ``@challenger`` if it passed.

    Returns:
        ``{model_name, version, run_id, passed, verdict, alias, duplicate, champion_version}``;
        ``alias`` is "challenger" only when this call left the challenger alias on the version.
    """
    client = client_for(settings)
    name = settings.mlflow.registered_model
    run_id = str(train_result["run_id"])
    with log_context(run_id=run_id, model_name=name):
        _ensure_model(settings, client)
        tags = version_tags(train_result, evaluation, verdict)
        existing = find_by_dedupe_key(settings, train_result["dedupe_key"], client)
        if existing is None:
            mv = client.create_model_version(
                name,
                source=str(train_result["model_uri"]),
                run_id=run_id,
                tags=tags,
                description=f"trained on {','.join(train_result['window']['train_batches'])}, "
                f"holdout {train_result['window']['holdout_batch']}",
                model_id=train_result.get("model_id") or None,
            )
            version, duplicate = str(mv.version), False
            log.info("model version registered", version=version)
        else:
            version, duplicate = str(existing.version), True
            for key, value in tags.items():
                client.set_model_version_tag(name, version, key, value)
            log.info("candidate already registered; tags refreshed, no new version", version=version)

        passed = verdict["verdict"] == "passed"
        champion = champion_version(settings, client)
        challenger = challenger_version(settings, client)
        alias: str | None = None
        if passed and champion is not None and str(champion.version) == version:
            log.info("candidate is already the champion; challenger alias not set", version=version)
        elif passed:
            client.set_registered_model_alias(name, CHALLENGER, version)
            alias = CHALLENGER
            log.info("alias set", alias=CHALLENGER, version=version)
        elif challenger is not None and str(challenger.version) == version:
            # Re-evaluated (e.g. against a new champion) and now rejected: it must not stay next in line.
            client.delete_registered_model_alias(name, CHALLENGER)
            log.warning("rejected version lost the challenger alias", version=version)
        return {
            "model_name": name,
            "version": version,
            "run_id": run_id,
            "passed": passed,
            "verdict": verdict["verdict"],
            "alias": alias,
            "duplicate": duplicate,
            "champion_version": str(champion.version) if champion is not None else None,
        }
