"""Canary release: a challenger goes live through a pre-rollout check and traffic steps, or not at all.

The release DAG calls :mod:`pipelines.canary.steps` (one function per task); people call
``mlops canary release|rollback`` (also ``mlops serving release|rollback``). Other code uses
this package's API:

* ``run_release(settings, version, steps) -> dict`` — the whole release in-process (summary);
* ``rollback_release(settings, reason, to_version) -> Rollback`` — abort a running canary, or
  return ``@champion`` and the gateway to the last good champion;
* ``analyse(...) -> Analysis`` — the pure step analysis on prediction-log frames;
* the contracts (``ReleasePlan``, ``PrecheckResult``, ``Stepped``, ``Promotion``, ``Rollback``,
  ``ReleasePath``) and the errors (``CanaryRejectedError``, ``ReleaseError``).

Modules: ``plan`` (pure rules), ``contracts``, ``release`` (plan against the registry, whole
release), ``precheck``, ``stepping`` + ``evidence`` + ``analysis`` + ``stats`` (traffic steps
and their judgement), ``promotion`` (every alias and traffic move), ``gateway`` (handles on
serving), ``steps`` (DAG tasks), ``cli``.
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.canary.analysis import Analysis, Check, analyse
    from pipelines.canary.contracts import (
        PrecheckResult,
        Promotion,
        ReleaseAction,
        ReleasePath,
        ReleasePlan,
        Rollback,
        Stepped,
        StepResult,
    )
    from pipelines.canary.errors import CanaryRejectedError, ReleaseError
    from pipelines.canary.promotion import rollback_release
    from pipelines.canary.release import plan_release, run_release

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "Analysis": "analysis",
    "CanaryRejectedError": "errors",
    "Check": "analysis",
    "PrecheckResult": "contracts",
    "Promotion": "contracts",
    "ReleaseAction": "contracts",
    "ReleaseError": "errors",
    "ReleasePath": "contracts",
    "ReleasePlan": "contracts",
    "Rollback": "contracts",
    "StepResult": "contracts",
    "Stepped": "contracts",
    "analyse": "analysis",
    "plan_release": "release",
    "rollback_release": "promotion",
    "run_release": "release",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "Analysis",
    "CanaryRejectedError",
    "Check",
    "PrecheckResult",
    "Promotion",
    "ReleaseAction",
    "ReleaseError",
    "ReleasePath",
    "ReleasePlan",
    "Rollback",
    "StepResult",
    "Stepped",
    "analyse",
    "plan_release",
    "rollback_release",
    "run_release",
]
