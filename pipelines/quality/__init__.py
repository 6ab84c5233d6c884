"""Data quality gate (standardization phase): GX validation with severities, quarantine, reports.

Entry points: :func:`validate_batch` (the step), :mod:`pipelines.quality.steps` (what the
DAG tasks call) and :mod:`pipelines.quality.cli`. Great Expectations is imported lazily,
only when a batch is actually validated.
"""

from pipelines.quality.gate import (
    PASSED,
    PASSED_WITH_WARNINGS,
    REJECTED,
    BatchRejected,
    NothingLostError,
    gate_paths,
    read_report,
    validate_batch,
)
from pipelines.quality.suite import SuiteError, load_suite

__all__ = [
    "PASSED",
    "PASSED_WITH_WARNINGS",
    "REJECTED",
    "BatchRejected",
    "NothingLostError",
    "SuiteError",
    "gate_paths",
    "load_suite",
    "read_report",
    "validate_batch",
]
