"""MLflow registry access, once: the client factory, the alias names, alias look-ups, tag helpers.

Every component that reads or moves an alias goes through here, so the rules hold everywhere:

* **aliases, never stages** — ``@challenger`` (passed the evaluation gate; set by training) and
  ``@champion`` (serves traffic; moved only by the canary release);
* **explicit URIs** — a client is bound to the configured store, never to MLflow's
  process-global tracking/registry URIs (a process may hold several settings: tests, the DAG
  processor, the demo);
* **a missing alias is ``None``** — read from the registered model's alias map, because
  ``get_model_version_by_alias`` reports a missing alias as ``INVALID_PARAMETER_VALUE``,
  indistinguishable from a real error.

MLflow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipelines.config import Settings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
#: MLflow rejects tag values over 5,000 characters (SQL stores); keep a margin.
MAX_TAG_CHARS = 4900


def client_for(settings: Settings) -> MlflowClient:
    """A client bound to the configured store (tracking and registry), without touching globals."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def alias_version(settings: Settings, alias: str, client: MlflowClient | None = None) -> ModelVersion | None:
    """The version holding ``alias``, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    client = client or client_for(settings)
    name = settings.mlflow.registered_model
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def alias_version_number(settings: Settings, alias: str, client: MlflowClient | None = None) -> str | None:
    """The version number (as text) an alias points to, or None; one registry call fewer."""
    from mlflow.exceptions import MlflowException

    client = client or client_for(settings)
    try:
        aliases = client.get_registered_model(settings.mlflow.registered_model).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases.get(alias)
    return None if version is None else str(version)


def champion_version(settings: Settings, client: MlflowClient | None = None) -> ModelVersion | None:
    """The ``@champion`` version (what serves traffic), or None before the first release."""
    return alias_version(settings, CHAMPION, client)


def challenger_version(settings: Settings, client: MlflowClient | None = None) -> ModelVersion | None:
    """The ``@challenger`` version (next in line for a canary), or None."""
    return alias_version(settings, CHALLENGER, client)


def list_versions(settings: Settings, client: MlflowClient | None = None) -> list[ModelVersion]:
    """All versions of the registered model, oldest first (empty if it does not exist)."""
    client = client or client_for(settings)
    found = client.search_model_versions(f"name = '{settings.mlflow.registered_model}'")
    return sorted(found, key=lambda mv: int(mv.version))


def version_location(settings: Settings, version: str | int, client: MlflowClient | None = None) -> str:
    """Where a registered version's artefacts live, resolved against the configured registry.

    Load models from this location, never from ``models:/<name>/<version>``: MLflow resolves a
    ``models:/`` URI against the process-global registry URI, i.e. whichever store the last
    ``mlflow.set_registry_uri`` in this process pointed at (another test's, another DAG's), and
    then loads the wrong model or fails with "Registered Model ... not found".
    """
    client = client or client_for(settings)
    return str(client.get_model_version_download_uri(settings.mlflow.registered_model, str(version)))


def tag_text(value: Any) -> str:
    """A tag value as text within MLflow's limit (non-strings as sorted JSON)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:MAX_TAG_CHARS]


def set_version_tags(
    settings: Settings, version: str, tags: dict[str, Any], client: MlflowClient | None = None
) -> None:
    """Write ``tags`` on one version, each value through :func:`tag_text`."""
    client = client or client_for(settings)
    name = settings.mlflow.registered_model
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, tag_text(value))


def drop_alias_if_on(
    settings: Settings, alias: str, version: str, client: MlflowClient | None = None
) -> bool:
    """Remove ``alias`` if it still points at ``version`` (a newer holder keeps it); True if removed."""
    client = client or client_for(settings)
    if alias_version_number(settings, alias, client) == str(version):
        client.delete_registered_model_alias(settings.mlflow.registered_model, alias)
        return True
    return False
