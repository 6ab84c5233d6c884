"""Secrets: read from the environment only, so a committed config file can never leak one."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Secrets(BaseSettings):
    """Secrets, from the environment only (never from YAML, never with a default value)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    gateway_admin_token: SecretStr | None = None
    # The gateway's label write path (POST /labels): its own token, never the admin token, so a
    # label feeder cannot promote or roll back models. Unset = /labels refuses every write (503)
    # unless serving.labels_allow_unauthenticated is set for a local experiment.
    labels_token: SecretStr | None = None
    alert_webhook_url: SecretStr | None = None
