"""Why a release stops: the candidate was judged and rejected, or going on would be unsafe.

Both are final (``retryable = False``): a verdict does not change on a retry, and an
inconsistent registry/gateway needs a person, not another attempt. A refused plan
(steps that are not increasing percentages, a version that does not exist) is a
:class:`~pipelines.core.errors.InvalidInputError`, final too. Gateway and registry outages stay
retryable (their own errors), so the orchestrator retries those.
"""

from __future__ import annotations

from pipelines.core.errors import PipelineError


class CanaryRejectedError(PipelineError):
    """The candidate was rejected (pre-rollout check or a traffic step); the champion keeps serving."""


class ReleaseError(PipelineError):
    """The release could not be carried out safely (inconsistent state, unverifiable promotion)."""
