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
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context
from pipelines.core.registry import (
    CHALLENGER,
    MAX_TAG_CHARS,
    challenger_version,
    champion_version,
    client_for,
)
from pipelines.training.contracts import GateVerdict, Registration, TrainedCandidate
from pipelines.training.train import DEDUPE_TAG

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = get_logger(__name__)


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
    trained: TrainedCandidate, evaluation: dict[str, Any], verdict: GateVerdict
) -> dict[str, str]:
    """Everything needed to audit a version without opening its run."""
    window = trained.window
    tags = {
        DEDUPE_TAG: trained.dedupe_key,
        "mlops.reason": trained.reason or "unspecified",
        "data.train_batches": ",".join(window.train_batches),
        "data.holdout_batch": window.holdout_batch,
        "data.train_fingerprint": trained.train_fingerprint,
        "data.holdout_fingerprint": trained.holdout_fingerprint,
        "data.train_rows": str(trained.train_rows),
        "data.dropped_null_target": str(trained.dropped_null_target),
        "code.git_sha": trained.code.git_sha,
        "code.source_hash": trained.code.source_hash,
        "config_hash": trained.config_hash,
        "gate.verdict": verdict.verdict,
        "gate.failed_criteria": ",".join(verdict.failed_criteria) or "none",
        "gate.failures": "; ".join(verdict.failures)[:MAX_TAG_CHARS] or "none",
        "gate.champion_version": str(verdict.champion_version or "none"),
        "gate.evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for name, value in evaluation["candidate"]["metrics"].items():
        tags[f"metric.{name}"] = f"{value:.6g}"
    return tags


def register_candidate(settings: Settings, verdict: GateVerdict, evaluation: dict[str, Any]) -> Registration:
    """Register (or find) the candidate's version, tag it, and give it ``@challenger`` if it passed.

    ``evaluation`` is the candidate's evaluation document (its metrics become tags). The result's
    ``alias`` is "challenger" only when this call left the challenger alias on the version.
    """
    trained = verdict.candidate
    client = client_for(settings)
    name = settings.mlflow.registered_model
    run_id = trained.run_id
    with log_context(run_id=run_id, model_name=name):
        _ensure_model(settings, client)
        tags = version_tags(trained, evaluation, verdict)
        existing = find_by_dedupe_key(settings, trained.dedupe_key, client)
        if existing is None:
            mv = client.create_model_version(
                name,
                source=trained.model_uri,
                run_id=run_id,
                tags=tags,
                description=f"trained on {','.join(trained.window.train_batches)}, "
                f"holdout {trained.window.holdout_batch}",
                model_id=trained.model_id or None,
            )
            version, duplicate = str(mv.version), False
            log.info("model version registered", version=version)
        else:
            version, duplicate = str(existing.version), True
            for key, value in tags.items():
                client.set_model_version_tag(name, version, key, value)
            log.info("candidate already registered; tags refreshed, no new version", version=version)

        passed = verdict.passed
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
        return Registration(
            model_name=name,
            version=version,
            run_id=run_id,
            passed=passed,
            verdict=verdict.verdict,
            alias=alias,
            duplicate=duplicate,
            champion_version=str(champion.version) if champion is not None else None,
        )
