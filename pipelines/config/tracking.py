"""MLflow tracking and registry settings (section ``mlflow``).

Not named ``mlflow.py`` so that reading the package never suggests it shadows the library.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.config.base import Section


class MlflowConfig(Section):
    tracking_uri: str = Field(
        default="", description="Empty = sqlite:///<paths.root>/mlflow.db (embedded default)."
    )
    experiment: str = Field(
        default="", description="Empty: the dataset's name (dataset.name), filled in by the loader."
    )
    registered_model: str = Field(
        default="",
        description="Empty: '<dataset.name>_<task>' (e.g. diabetes_regression), filled in by the loader, "
        "so a new dataset never registers versions under another dataset's model.",
    )
    artifact_root: str = Field(
        default="",
        description="Artifact location of a new experiment. Empty: <paths.root>/mlartifacts for a "
        "local (sqlite) tracking store, the server's own default for an http(s) tracking URI.",
    )
    connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Reachability probe of an http(s) tracking server before any work starts; "
        "MLflow's own retries would otherwise stall a task for minutes.",
    )
    serialization: Literal["skops", "cloudpickle"] = Field(
        default="skops",
        description="sklearn model format. skops loads only the types recorded as trusted at "
        "logging time (the types of the model this pipeline trained itself).",
    )
