"""The pipeline's one typed configuration.

Values come, in rising priority, from the field defaults below, one YAML file
(``config/pipeline.yaml``, or the file named by ``MLOPS_CONFIG``) and environment
variables prefixed ``MLOPS__`` with ``__`` between levels, e.g.
``MLOPS__TRAINING__WINDOW_MONTHS=6``.  Secrets (tokens, passwords, webhook URLs)
are never read from the YAML: they live in :class:`Secrets`, which reads the
environment only, so a committed config file can never leak one.

The :class:`DatasetContract` is what makes the template reusable: every step
reads column names, roles and the target definition from it, so swapping to
another tabular dataset means a new YAML file and an expectation suite, not a
code change.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "pipeline.yaml"
_CONFIG_FILE_VAR: ContextVar[Path | None] = ContextVar("mlops_config_file", default=None)


def config_file_in_use() -> Path:
    """The YAML file settings are read from: explicit argument > MLOPS_CONFIG > default."""
    explicit = _CONFIG_FILE_VAR.get()
    if explicit is not None:
        return explicit
    return Path(os.environ.get("MLOPS_CONFIG", DEFAULT_CONFIG_FILE)).resolve()


class _Section(BaseModel):
    """Sections reject unknown keys so a typo in the YAML fails loudly, not silently."""

    model_config = {"extra": "forbid"}


# --------------------------------------------------------------------------- dataset contract
class JoinSpec(_Section):
    """A lookup table joined onto the source rows at landing time (e.g. weather by origin+hour)."""

    path: str = Field(description="File path, or pkg://<package>/<relative path> for package data.")
    keys: list[str] = Field(min_length=1, description="Join keys present in both tables.")
    columns: list[str] = Field(min_length=1, description="Columns brought in from the lookup.")


class SourceSpec(_Section):
    """Where the raw rows come from; CSV (optionally zipped) read with pandas."""

    path: str = Field(description="File path, or pkg://<package>/<relative path> for package data.")
    joins: list[JoinSpec] = Field(default_factory=list)


class IdSpec(_Section):
    """The entity id; composed from several columns when the source has no single key."""

    column: str
    compose_from: list[str] = Field(
        default_factory=list, description="When set, id = these columns joined with '_'."
    )


class TargetSpec(_Section):
    """The label, either a source column or derived from one by a threshold rule."""

    name: str
    task: Literal["classification", "regression"]
    derive_from: str | None = Field(
        default=None, description="Source column the label is computed from (then dropped)."
    )
    derive_op: Literal["gt", "ge", "lt", "le"] | None = None
    derive_threshold: float | None = None

    @model_validator(mode="after")
    def _derivation_complete(self) -> TargetSpec:
        parts = (self.derive_from, self.derive_op, self.derive_threshold)
        if any(p is not None for p in parts) and not all(p is not None for p in parts):
            raise ValueError("target derivation needs derive_from, derive_op and derive_threshold")
        if self.derive_from is not None and self.task != "classification":
            raise ValueError("a threshold-derived target is binary: task must be classification")
        return self


class FeatureRoles(_Section):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DatasetContract(_Section):
    """Everything the code needs to know about a tabular dataset."""

    name: str
    source: SourceSpec
    id: IdSpec
    event_time: str = Field(description="Timestamp column; batches are cut on it.")
    event_timezone: str = Field(
        default="UTC", description="Zone in which batches and calendar features are cut."
    )
    target: TargetSpec
    features: FeatureRoles
    derived_time_features: dict[str, Literal["hour", "dayofweek", "month", "dayofyear"]] = Field(
        default_factory=dict,
        description="New column name -> calendar part of event_time, computed at landing.",
    )
    drop_columns: list[str] = Field(
        default_factory=list,
        description="Columns removed at landing (e.g. known only after the event: leakage).",
    )
    batch_frequency: Literal["month", "week", "day"] = "month"
    batches: list[str] = Field(
        default_factory=list,
        description="Batch ids to replay in order (e.g. 2013-01..2013-12); empty = all in source.",
    )
    slice_columns: list[str] = Field(
        default_factory=list, description="Columns whose groups must not regress (gate, monitoring)."
    )
    expectation_suite: str = Field(description="Path of the GX suite JSON (relative to the repo).")

    @model_validator(mode="after")
    def _roles_disjoint(self) -> DatasetContract:
        overlap = set(self.features.numeric) & set(self.features.categorical)
        if overlap:
            raise ValueError(f"columns both numeric and categorical: {sorted(overlap)}")
        leaked = set(self.features.all) & set(self.drop_columns)
        if leaked:
            raise ValueError(f"feature columns also listed in drop_columns: {sorted(leaked)}")
        if self.target.name in self.features.all:
            raise ValueError(f"target {self.target.name!r} is also a feature")
        return self

    @property
    def landed_columns(self) -> list[str]:
        """Column order of every landed batch file: id, event time, features, target."""
        return [self.id.column, self.event_time, *self.features.all, self.target.name]


# --------------------------------------------------------------------------- runtime sections
class PathsConfig(_Section):
    """Runtime state; all under one root so a demo is wiped by deleting one folder."""

    root: Path = Field(default=REPO_ROOT / "var")

    @field_validator("root")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v if v.is_absolute() else (REPO_ROOT / v).resolve()

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def validated(self) -> Path:
        return self.root / "validated"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def data_docs(self) -> Path:
        return self.root / "reports" / "data_docs"

    @property
    def serving(self) -> Path:
        return self.root / "serving"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def events(self) -> Path:
        """Append-only JSONL records of pipeline events (gates, releases, decisions)."""
        return self.root / "events"


class QualityConfig(_Section):
    sample_bad_values: int = Field(default=5, ge=1, description="Bad values quoted per failure.")
    row_level_max_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="If row-level failures hit more than this share of rows, fail the batch.",
    )


class MlflowConfig(_Section):
    tracking_uri: str = Field(
        default="", description="Empty = sqlite:///<paths.root>/mlflow.db (embedded default)."
    )
    experiment: str = "flight-delay"
    registered_model: str = "flight_delay_clf"


class TrainingConfig(_Section):
    estimator: str = Field(
        default="sklearn.ensemble.HistGradientBoostingClassifier",
        description="Dotted path of a scikit-learn estimator class.",
    )
    estimator_params: dict[str, Any] = Field(default_factory=dict)
    window_batches: int = Field(default=3, ge=1, description="Train on the last N validated batches.")
    min_rows: int = Field(default=1000, ge=1)
    seed: int = 42


class GateConfig(_Section):
    primary_metric: str = "roc_auc"
    min_primary: float = 0.60
    absolute: dict[str, float] = Field(default_factory=dict, description="metric -> minimum.")
    max_regression: float = Field(
        default=0.01, ge=0, description="Candidate may trail the champion by at most this."
    )
    slice_tolerance: float = Field(default=0.03, ge=0)
    slice_min_rows: int = Field(default=300, ge=1)
    behavioural: dict[str, Any] = Field(default_factory=dict)


class ServingConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8088
    max_rows: int = Field(default=5000, ge=1, description="Largest accepted payload, in rows.")
    max_body_bytes: int = Field(default=5_000_000, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)


class CanaryConfig(_Section):
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    min_requests: int = Field(default=200, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)


class MonitoringConfig(_Section):
    label_delay_days: int = Field(default=7, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)


class OptimizeConfig(_Section):
    tuning_budget_seconds: float = Field(default=120, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Root configuration object; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS__", env_nested_delimiter="__", extra="forbid"
    )

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
    _config_file: Path = PrivateAttr(default=DEFAULT_CONFIG_FILE)

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


class Secrets(BaseSettings):
    """Secrets, from the environment only (never from YAML, never with a default value)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    gateway_admin_token: SecretStr | None = None
    alert_webhook_url: SecretStr | None = None


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
