"""The one loader: field defaults < one YAML file < ``MLOPS__`` environment variables -> :class:`Settings`.

The YAML file is ``config/pipeline.yaml`` or the file named by ``MLOPS_CONFIG`` (or the
argument of :func:`load_settings`, passed to the settings sources through a context variable
because pydantic-settings builds its sources inside ``Settings()``).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from pipelines.config.canary import CanaryConfig
from pipelines.config.dataset import DatasetContract
from pipelines.config.gate import GateConfig
from pipelines.config.monitoring import MonitoringConfig
from pipelines.config.observability import ObservabilityConfig
from pipelines.config.optimize import OptimizeConfig
from pipelines.config.paths import DEFAULT_CONFIG_FILE, REPO_ROOT, PathsConfig
from pipelines.config.quality import QualityConfig
from pipelines.config.secrets import Secrets
from pipelines.config.serving import ServingConfig
from pipelines.config.tracking import MlflowConfig
from pipelines.config.training import TrainingConfig

_CONFIG_FILE_VAR: ContextVar[Path | None] = ContextVar("mlops_config_file", default=None)


def config_file_in_use() -> Path:
    """The YAML file settings are read from: explicit argument > MLOPS_CONFIG > default."""
    explicit = _CONFIG_FILE_VAR.get()
    if explicit is not None:
        return explicit
    return Path(os.environ.get("MLOPS_CONFIG", DEFAULT_CONFIG_FILE)).resolve()


class Settings(BaseSettings):
    """Root configuration object; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="MLOPS__", env_nested_delimiter="__", extra="forbid")

    dataset: DatasetContract
    paths: PathsConfig = Field(default_factory=PathsConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    _config_file: Path = PrivateAttr(default=DEFAULT_CONFIG_FILE)

    @model_validator(mode="after")
    def _names_from_dataset(self) -> Settings:
        """MLflow names default to the dataset's own, never to another dataset's."""
        if not self.mlflow.experiment:
            self.mlflow.experiment = self.dataset.name
        if not self.mlflow.registered_model:
            self.mlflow.registered_model = f"{self.dataset.name}_{self.dataset.target.task}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = config_file_in_use()
        if not yaml_file.is_file():
            raise FileNotFoundError(f"pipeline config not found: {yaml_file} (set MLOPS_CONFIG)")
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file, deep_merge=True),
        )

    @property
    def config_file(self) -> Path:
        return self._config_file

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.paths.root / 'mlflow.db'}"

    def resolve(self, path: str | Path) -> Path:
        """Resolve a repo-relative path (suite files, fixtures) against the repo root."""
        p = Path(path)
        if p.is_absolute():
            return p
        # Relative paths are tried beside the config file first (a test dataset ships its own
        # suite next to its YAML), then against the repo root.
        beside = self._config_file.parent / p
        return beside if beside.exists() else REPO_ROOT / p


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Build settings from the YAML file (argument > MLOPS_CONFIG > default) and the environment."""
    token = _CONFIG_FILE_VAR.set(Path(config_file).resolve() if config_file is not None else None)
    try:
        path = config_file_in_use()
        settings = Settings()  # type: ignore[call-arg]  # dataset comes from the YAML source
    finally:
        _CONFIG_FILE_VAR.reset(token)
    settings._config_file = path
    return settings


@lru_cache(maxsize=1)
def cached_settings() -> Settings:
    """Settings for long-lived processes (the gateway); steps call :func:`load_settings`."""
    return load_settings()


def load_secrets() -> Secrets:
    return Secrets()
