"""Why an optimization step refused to go on, and whether trying again can help.

Each error subclasses :class:`pipelines.core.errors.PipelineError`, so ``dags/_common.call`` and
the CLI read one flag (``retryable``) to decide between failing the task at once and Airflow's
retries. What is final is what it was before the kernel: a tuning request that cannot run fails
at once; a load test or a scaling request that met an engine or an instance that was not there
keeps its retries.
"""

from __future__ import annotations

from pipelines.core.errors import PipelineError


class TuningError(PipelineError):
    """The tuning request cannot run (search space does not fit the estimator, no data)."""


class LoadTestError(PipelineError):
    """The load test could not produce a throughput figure (no success, instance did not start)."""

    retryable = True


class ScalingError(PipelineError):
    """Scaling was requested but cannot be done safely (engine unreachable, service missing)."""

    retryable = True
