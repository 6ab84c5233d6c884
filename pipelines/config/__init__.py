"""The pipeline's one typed configuration.

Values come, in rising priority, from the field defaults below, one YAML file
(``config/pipeline.yaml``, or the file named by ``MLOPS_CONFIG``) and environment
variables prefixed ``MLOPS__`` with ``__`` between levels, e.g.
``MLOPS__TRAINING__WINDOW_BATCHES=6``.  Secrets (tokens, passwords, webhook URLs)
are never read from the YAML: they live in :class:`Secrets`, which reads the
environment only, so a committed config file can never leak one.

The :class:`DatasetContract` is what makes the template reusable: every step
reads column names, roles and the target definition from it, so swapping to
another tabular dataset means a new YAML file and an expectation suite, not a
code change.

One module per section (``dataset``, ``paths``, ``quality``, ``tracking`` (the ``mlflow``
section), ``training``, ``gate``, ``serving``, ``canary``, ``monitoring``, ``optimize``,
``observability``, ``secrets``) and one loader (:mod:`pipelines.config.loader`). Import from this package, not
from its modules. It is the lowest floor of the code: it imports nothing from ``pipelines``.
"""

from pipelines.config.canary import CanaryConfig
from pipelines.config.dataset import (
    DatasetContract,
    FeatureRoles,
    IdSpec,
    JoinSpec,
    SourceSpec,
    TargetSpec,
)
from pipelines.config.gate import BehaviouralCheck, GateConfig, TaskGate
from pipelines.config.loader import (
    Settings,
    cached_settings,
    config_file_in_use,
    load_secrets,
    load_settings,
)
from pipelines.config.monitoring import DriftTest, MonitoringConfig
from pipelines.config.observability import ObservabilityConfig
from pipelines.config.optimize import (
    CapacityConfig,
    CostConfig,
    ModelChoiceConfig,
    ModelFamily,
    OptimizeConfig,
    SearchDim,
)
from pipelines.config.paths import DEFAULT_CONFIG_FILE, REPO_ROOT, PathsConfig
from pipelines.config.quality import QualityConfig
from pipelines.config.secrets import Secrets
from pipelines.config.serving import ServingConfig
from pipelines.config.tracking import MlflowConfig
from pipelines.config.training import TrainingConfig

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "REPO_ROOT",
    "BehaviouralCheck",
    "CanaryConfig",
    "CapacityConfig",
    "CostConfig",
    "DatasetContract",
    "DriftTest",
    "FeatureRoles",
    "GateConfig",
    "IdSpec",
    "JoinSpec",
    "MlflowConfig",
    "ModelChoiceConfig",
    "ModelFamily",
    "MonitoringConfig",
    "ObservabilityConfig",
    "OptimizeConfig",
    "PathsConfig",
    "QualityConfig",
    "SearchDim",
    "Secrets",
    "ServingConfig",
    "Settings",
    "SourceSpec",
    "TargetSpec",
    "TaskGate",
    "TrainingConfig",
    "cached_settings",
    "config_file_in_use",
    "load_secrets",
    "load_settings",
]
