"""One error base for the whole pipeline, so one rule decides whether a failure is worth a retry.

Every component raises a subclass of :class:`PipelineError`. ``retryable`` says whether trying
again later can succeed: an unreachable server can come back, a rejected batch or a bad training
window fails the same way on every try. The orchestrator (``dags/_common.call``) and the CLIs
read only this flag; no component knows about Airflow's exceptions.
"""

from __future__ import annotations


class PipelineError(RuntimeError):
    """Base class: a step refused to go on, with the cause and where the evidence is."""

    #: Whether trying again later can succeed (an orchestrator retries only these).
    retryable = False


class InvalidInputError(PipelineError, ValueError):
    """A caller-supplied value (batch id, window, file) is malformed; retrying cannot fix it.

    It is also a ``ValueError``, so code that validates arguments the Python way still catches it.
    """


class NothingToDoError(PipelineError):
    """A scheduled run found nothing to act on (its period has no batch, or none yet): skip it.

    Retrying now cannot help, but nothing is wrong either: the orchestrator marks the run skipped
    with this message as its reason, and no failure alert fires. A run asked for explicitly (a
    ``batch_id`` or ``window`` param) never raises it: asking for what does not exist stays an
    :class:`InvalidInputError`.
    """


def is_skip(exc: BaseException) -> bool:
    """True when the step had nothing to do: the run is skipped with the error's reason."""
    return isinstance(exc, NothingToDoError)


def is_final(exc: BaseException) -> bool:
    """True when retrying cannot help: a non-retryable :class:`PipelineError`.

    Anything else (a network error, a bug surfacing as ``KeyError``) keeps the orchestrator's
    retries: failing closed on the first try would turn a transient outage into a lost run.
    """
    return isinstance(exc, PipelineError) and not exc.retryable
