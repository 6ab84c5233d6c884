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

import asyncio
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.core import compiled as compiled_path
from pipelines.core.errors import PipelineError
from pipelines.core.observability import get_logger
from pipelines.core.redact import redact_text
from pipelines.core.registry import client_for
from pipelines.serving.batching import MicroBatcher

log = get_logger(__name__)

#: Above this many rows a batch goes to the pipeline: GTIL evaluates row by row (~40 us a row here),
#: the pipeline's trees are vectorised, and the two cross near 300-700 rows
#: (``compiled_crossover_rows`` in benchmarks/bench_compiled.py).
COMPILED_MAX_ROWS = 256

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


class ModelLoadError(PipelineError):
    """The model version cannot be served; the message says why and where.

    Retryable: the registry or artifact store may be what failed, and the steps that load
    models have always left such failures to the orchestrator's retries.
    """

    retryable = True


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
    batcher: MicroBatcher | None = field(default=None, repr=False)
    fast_path: bool = False
    #: The compiled predictor, set only after it reproduced ``model`` within PARITY_ATOL at load.
    compiled: Any = field(default=None, repr=False)
    #: Largest |compiled - pipeline| score measured at load per parity frame (None: not measured).
    parity: dict[str, float] | None = None
    #: Why the pipeline (not the compiled predictor) serves; empty when the compiled one serves.
    predictor_reason: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def predict(self, frame: pd.DataFrame, model: Any = None) -> np.ndarray:
        """The served value per row: P(positive class), or the regression value.

        Batches of up to ``COMPILED_MAX_ROWS`` go to the compiled predictor when it passed its parity
        check; larger ones to the pipeline, whose vectorised trees are faster per row than GTIL.
        """
        if model is None and self.compiled is not None and len(frame) <= COMPILED_MAX_ROWS:
            try:
                return np.asarray(self.compiled.predict(frame), dtype=np.float64)
            except Exception as exc:  # never worse than the pipeline: it answers this call
                log.warning(
                    "compiled predictor raised; the pipeline answers",
                    version=self.version,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
        model = self.model if model is None else model
        if self.task == "classification":
            return np.asarray(model.predict_proba(frame))[:, self.positive_index].astype(np.float64)
        return np.asarray(model.predict(frame), dtype=np.float64).ravel()

    def _batcher(self) -> MicroBatcher:
        if self.batcher is None:
            self.batcher = MicroBatcher(self.predict, f"v{self.version}")
        return self.batcher

    async def predict_async(self, columns: Sequence[str], arrays: Sequence[Any], n_rows: int) -> np.ndarray:
        """Predict validated columns through the model's micro-batcher, awaited on the event loop.

        No thread is held while waiting, and concurrent requests share predict calls.
        """
        return await asyncio.wrap_future(self._batcher().submit(columns, arrays, n_rows))

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "task": self.task,
            "inputs": [{"name": c.name, "type": c.mlflow_type, "nullable": c.nullable} for c in self.columns],
            "load_seconds": round(self.load_seconds, 3),
            "warmup_error": self.warmup_error,
            "fast_path": self.fast_path,
            "predictor": self.predictor,
            # JSON has no inf: a frame that made either side raise shows as null (the reason says inf)
            "parity_max_abs_diff": _finite_or_none(max(self.parity.values())) if self.parity else None,
            "parity": {k: _finite_or_none(v) for k, v in self.parity.items()} if self.parity else None,
            "predictor_reason": self.predictor_reason or None,
        }

    @property
    def predictor(self) -> str:
        """What serves requests: the compiled engine, or "sklearn" (the pipeline itself)."""
        return compiled_path.ENGINE if self.compiled is not None else "sklearn"


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


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
    from mlflow.models import Model

    name = settings.mlflow.registered_model
    version = str(version)
    t0 = time.perf_counter()
    # Explicit URIs, never MLflow's process-global ones: a process may hold several settings
    # (tests, the DAG processor), and the registry URI must not come from whoever set it last.
    uri = settings.tracking_uri
    client = client_for(settings)
    try:
        mv = client.get_model_version(name, version)
        # The artifact location itself, not a models:/ URI: resolving the version's logged-model
        # source (models:/m-...) inside download_artifacts falls back to the global registry URI.
        location = client.get_model_version_download_uri(name, version)
    except Exception as exc:
        raise ModelLoadError(
            f"{name} version {version} not found in {redact_text(settings.tracking_uri)}: {exc}"
        ) from exc
    # A private copy: the artifact store may be read-only, shared or remote.
    workdir = Path(tempfile.mkdtemp(prefix=f"mlops-model-v{version}-"))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(workdir), tracking_uri=uri
            )
        )
        meta = Model.load(str(local / "MLmodel"))
        columns = columns_from_signature(meta.signature, set(settings.serving.non_null_features))
        model = mlflow.sklearn.load_model(str(local))
        try:
            example = meta.load_input_example(str(local))
        except Exception:
            example = None
        compiled, parity_rows, compiled_error = _read_compiled(local / compiled_path.ARTIFACT_DIR)
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
            reference = served.predict(served.example)
        except Exception as exc:
            served.warmup_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("model warm-up prediction failed", version=version, error=served.warmup_error)
        else:
            if settings.serving.fast_path:
                _use_fast_path(served, reference)
    _use_compiled(settings, served, model, compiled, parity_rows, compiled_error)
    served.load_seconds = time.perf_counter() - t0
    log.info("model loaded", model=name, version=version, seconds=round(served.load_seconds, 2))
    return served


def _read_compiled(folder: Path) -> tuple[Any, pd.DataFrame | None, str]:
    """The compiled predictor and its parity rows from the downloaded model, or the reason there is none."""
    try:
        predictor = compiled_path.CompiledPredictor.load(folder)
        rows = compiled_path.read_rows(folder)
    except compiled_path.CompileError as exc:
        return None, None, str(exc)
    except Exception as exc:
        return None, None, f"compiled artefact unreadable: {type(exc).__name__}: {exc}"
    return predictor, rows, ""


def _use_compiled(
    settings: Settings,
    served: ServedModel,
    original: Any,
    predictor: Any,
    rows: pd.DataFrame | None,
    error: str,
) -> None:
    """Serve the compiled predictor only if it reproduces the original pipeline here, now.

    The check runs at every load, on the model's input example and the holdout sample that
    training stored beside the compiled artefact: a predictor that drifted from the pipeline
    (another library version, a tampered file) is refused, and ``predictor_reason`` says why.
    """
    if not settings.serving.compiled_predictor:
        served.predictor_reason = "disabled by serving.compiled_predictor"
        return
    if predictor is None:
        served.predictor_reason = error
        return
    if served.warmup_error:
        served.predictor_reason = "the pipeline failed its warm-up prediction: no reference to compare"
        return
    frames = {"input_example": served.example, "holdout_sample": rows}
    if not any(f is not None and not f.empty for f in frames.values()):
        served.predictor_reason = "no input example and no parity rows: parity cannot be checked"
        return
    diffs = compiled_path.parity(predictor.predict, lambda frame: served.predict(frame, original), frames)
    served.parity = diffs
    worst = max(diffs.values())
    if not worst <= compiled_path.PARITY_ATOL:
        worst_frame = max(diffs, key=lambda k: diffs[k])
        served.predictor_reason = (
            f"compiled predictor does not reproduce the pipeline: max abs diff {worst:.3g} on "
            f"{worst_frame} > {compiled_path.PARITY_ATOL:g}"
        )
        log.warning("compiled predictor refused", version=served.version, reason=served.predictor_reason)
        return
    served.compiled = predictor
    log.info("compiled predictor serves", version=served.version, parity_max_abs_diff=worst)


def _use_fast_path(served: ServedModel, reference: np.ndarray) -> None:
    """Serve a copy whose transformers hand numpy arrays between steps, if it predicts identically.

    Training sets ``set_output(transform="pandas")`` on the preprocessing; the DataFrames
    it builds between steps double the cost of a small predict call. The copy changes only
    that container type (no transformation is re-implemented) and is used only when its
    predictions on the model's own input example equal the original's to 1e-12.
    """
    import copy
    import warnings

    if served.example is None:
        return
    try:
        fast = copy.deepcopy(served.model)
        fast.set_output(transform="default")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate = served.predict(served.example, fast)
    except Exception as exc:
        log.info("fast path not used", version=served.version, reason=f"{type(exc).__name__}: {exc}")
        return
    if not np.allclose(candidate, reference, rtol=0, atol=1e-12):
        log.info("fast path not used: predictions differ", version=served.version)
        return
    served.model = fast
    # Estimators fitted on DataFrames warn on every numpy call; the check above is the real one.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    served.fast_path = True
