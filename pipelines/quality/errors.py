"""Why the quality gate refused to go on.

Only :class:`BatchRejected` is final (``retryable = False``, see :mod:`pipelines.core.errors`):
the batch is already quarantined and trying again reads the same bytes. The others stay
retryable because the orchestrator has always retried them: the suite or a landed file can be
fixed between tries, and a row-accounting bug re-runs the whole gate rather than publishing.
"""

from __future__ import annotations

from typing import Any

from pipelines.core.errors import PipelineError


class BatchRejected(PipelineError):  # noqa: N818 -- named as the verdict it reports
    """A batch failed the gate; it is already quarantined. ``verdict`` is the full gate report."""

    def __init__(self, message: str, verdict: dict[str, Any]) -> None:
        super().__init__(message)
        self.verdict = verdict


class NothingLostError(PipelineError):
    """Accepted + quarantined rows do not add up to the rows read: a bug, never publish."""

    retryable = True


class SuiteError(PipelineError, ValueError):
    """The expectation suite is malformed or does not match the dataset contract."""

    retryable = True


class VersionMismatchError(PipelineError):
    """The landed or published version is not the one handed over by the previous task."""

    retryable = True


class UntypedRowsError(PipelineError):
    """Accepted rows cannot take the published schema: the suite lacks a type rule for a column."""

    retryable = True
