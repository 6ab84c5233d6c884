"""Registry models as the gateway serves them: the raw scikit-learn model plus its input schema.

The gateway predicts with the raw model (``mlflow.sklearn.load_model``), not through
``pyfunc.predict``: pyfunc re-validates every frame and, for classifiers, the served
value must be P(positive class) from ``predict_proba`` (the team's model contract).
The signature MLflow stored with the model is still the contract for inputs: it is
read from the model's ``MLmodel`` file and enforced by :mod:`pipelines.serving.inputs`
with messages that name the column.

A model that cannot be loaded (missing artifacts, unpicklable, no signature, not a
binary classifier for a classification task) raises :class:`ModelLoadError`; the
gateway refuses to route to it. A model that loads but fails its warm-up prediction
is served anyway with ``warmup_error`` set: refusing it is the pre-rollout check's
job, and the request path has its own fallback for a canary that raises.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.observability import get_logger

log = get_logger(__name__)

Kind = Literal["float", "int", "str", "bool", "datetime"]
_KINDS: dict[str, Kind] = {
    "double": "float",
    "float": "float",
    "long": "int",
    "integer": "int",
    "string": "str",
    "boolean": "bool",
    "datetime": "datetime",
}


class ModelLoadError(RuntimeError):
    """The model version cannot be served; the message says why and where."""


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of the signature, with the gateway's null policy applied."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = True
    mlflow_type: str = ""


@dataclass
class ServedModel:
    """A loaded model version ready to predict on a validated frame."""

    name: str
    version: str
    task: str
    columns: list[ColumnSpec]
    model: Any
    run_id: str | None = None
    source: str | None = None
    load_seconds: float = 0.0
    warmup_error: str | None = None
    positive_index: int = 1
    example: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The served value per row: P(positive class), or the regression value."""
        if self.task == "classification":
            return np.asarray(self.model.predict_proba(frame))[:, self.positive_index].astype(np.float64)
        return np.asarray(self.model.predict(frame), dtype=np.float64).ravel()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "task": self.task,
            "inputs": [{"name": c.name, "type": c.mlflow_type, "nullable": c.nullable} for c in self.columns],
            "load_seconds": round(self.load_seconds, 3),
            "warmup_error": self.warmup_error,
        }


def model_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def columns_from_signature(signature: Any, non_null: set[str]) -> list[ColumnSpec]:
    """ColumnSpecs from an MLflow ModelSignature (column-based schemas only)."""
    if signature is None or signature.inputs is None:
        raise ModelLoadError("the model has no input signature (log it with signature=...)")
    schema = signature.inputs
    if not schema.has_input_names():
        raise ModelLoadError("the model's input schema has no column names (tensor schemas unsupported)")
    out = []
    for spec in schema.inputs:
        type_name = getattr(spec.type, "name", str(spec.type))
        kind = _KINDS.get(type_name)
        if kind is None:
            raise ModelLoadError(f"input column {spec.name!r} has unsupported type {type_name!r}")
        nullable = kind in ("float", "str", "datetime") and spec.name not in non_null
        out.append(
            ColumnSpec(
                name=spec.name,
                kind=kind,
                required=bool(getattr(spec, "required", True)),
                nullable=nullable,
                mlflow_type=type_name,
            )
        )
    return out


def _positive_index(model: Any, task: str) -> int:
    if task != "classification":
        return 0
    if not hasattr(model, "predict_proba"):
        raise ModelLoadError("classification model has no predict_proba (needed for P(positive class))")
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) != 2:
        raise ModelLoadError(f"classification model is not binary: classes {list(classes)}")
    return 1


def load_served_model(settings: Settings, version: str | int) -> ServedModel:
    """Download one registered version and make it servable (raises ModelLoadError)."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import Model

    name = settings.mlflow.registered_model
    version = str(version)
    t0 = time.perf_counter()
    mlflow.set_tracking_uri(settings.tracking_uri)
    try:
        mv = MlflowClient().get_model_version(name, version)
    except Exception as exc:
        raise ModelLoadError(f"{name} version {version} not found in {settings.tracking_uri}: {exc}") from exc
    # A private copy: downloading a models:/ URI writes a metadata file into the destination,
    # which must never be the (possibly read-only, possibly shared) artifact store itself.
    workdir = Path(tempfile.mkdtemp(prefix=f"mlops-model-v{version}-"))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model_uri(name, version), dst_path=str(workdir))
        )
        meta = Model.load(str(local / "MLmodel"))
        columns = columns_from_signature(meta.signature, set(settings.serving.non_null_features))
        model = mlflow.sklearn.load_model(str(local))
        try:
            example = meta.load_input_example(str(local))
        except Exception:
            example = None
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name} version {version}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{name} version {version} failed to load ({type(exc).__name__}: {exc}); source {mv.source}"
        ) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    task = settings.dataset.target.task
    try:
        positive = _positive_index(model, task)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name} version {version}: {exc}") from exc
    served = ServedModel(
        name=name,
        version=version,
        task=task,
        columns=columns,
        model=model,
        run_id=mv.run_id,
        source=mv.source,
        positive_index=positive,
    )
    if isinstance(example, pd.DataFrame) and not example.empty:
        served.example = example[[c for c in served.column_names if c in example.columns]].head(5)
        try:
            served.predict(served.example)
        except Exception as exc:
            served.warmup_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("model warm-up prediction failed", version=version, error=served.warmup_error)
    served.load_seconds = time.perf_counter() - t0
    log.info("model loaded", model=name, version=version, seconds=round(served.load_seconds, 2))
    return served


def resolve_alias(settings: Settings, alias: str) -> str | None:
    """The version an alias points to, or None when the model or the alias does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        # The alias map, not get_model_version_by_alias: a missing alias is an
        # INVALID_PARAMETER_VALUE there, indistinguishable from a real error.
        aliases = client.get_registered_model(settings.mlflow.registered_model).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases.get(alias)
    return None if version is None else str(version)
