"""Data quality gate (standardization phase): GX validation with severities, quarantine, reports.

The anatomy: :mod:`~pipelines.quality.verdict` decides (pure: failures and row counts in, a
frozen verdict out); :mod:`~pipelines.quality.gate` gathers its inputs (:mod:`reader`,
:mod:`gx_runner`) and carries it out (:mod:`store`, :mod:`report`, event records);
:mod:`~pipelines.quality.contracts` holds what the DAG's tasks hand each other;
:mod:`~pipelines.quality.steps` are the DAG's entry points; :mod:`~pipelines.quality.cli` the
shell's. Great Expectations is imported lazily, only when a batch is actually validated, and this
package's names are imported on first use (see :mod:`pipelines.core.lazy`).
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.quality.contracts import BatchVerdict, LandedBatch, PublishedBatch
    from pipelines.quality.errors import BatchRejected, NothingLostError, SuiteError
    from pipelines.quality.gate import read_report, validate_batch
    from pipelines.quality.paths import GatePaths, gate_paths
    from pipelines.quality.suite import load_suite
    from pipelines.quality.verdict import PASSED, PASSED_WITH_WARNINGS, REJECTED, DataVerdict, decide

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "BatchRejected": "errors",
    "BatchVerdict": "contracts",
    "DataVerdict": "verdict",
    "GatePaths": "paths",
    "LandedBatch": "contracts",
    "NothingLostError": "errors",
    "PASSED": "verdict",
    "PASSED_WITH_WARNINGS": "verdict",
    "PublishedBatch": "contracts",
    "REJECTED": "verdict",
    "SuiteError": "errors",
    "decide": "verdict",
    "gate_paths": "paths",
    "load_suite": "suite",
    "read_report": "gate",
    "validate_batch": "gate",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "PASSED",
    "PASSED_WITH_WARNINGS",
    "REJECTED",
    "BatchRejected",
    "BatchVerdict",
    "DataVerdict",
    "GatePaths",
    "LandedBatch",
    "NothingLostError",
    "PublishedBatch",
    "SuiteError",
    "decide",
    "gate_paths",
    "load_suite",
    "read_report",
    "validate_batch",
]
