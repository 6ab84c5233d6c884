"""Why a training run refused to go on.

Every error names the cause and where the evidence is (batch ids, run id, model
version, artifact path), so an operator reading a failed Airflow task log knows
what to fix without re-running anything. Each is raised *before* the registry is
written, which is what keeps the registry and its aliases unchanged on bad input.

All are final (``retryable = False``, see :mod:`pipelines.core.errors`) except
:class:`TrackingUnavailableError`: a server that is down may come back.
"""

from __future__ import annotations

from pipelines.core.errors import PipelineError


class TrainingError(PipelineError):
    """Base class: training, evaluation or registration refused to continue."""


class WindowError(TrainingError):
    """The requested training window / holdout cannot be formed from published batches."""


class TrainingDataError(TrainingError):
    """The window's data cannot train a model (too few rows, a single class...)."""


class TrainingConfigError(TrainingError):
    """The training or gate configuration does not fit the dataset contract."""


class TrackingUnavailableError(TrainingError):
    """The MLflow tracking / registry server cannot be reached."""

    retryable = True


class ChampionUnavailableError(TrainingError):
    """A champion alias exists but its model cannot be loaded or cannot score the holdout.

    Failing here (instead of treating the candidate as a first model) is deliberate:
    skipping the comparison would let a worse model through just because the
    champion's artifact went missing.
    """
