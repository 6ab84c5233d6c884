"""What the training DAG's tasks hand each other: references, never data.

Each task's result is one of these frozen dataclasses; ``dags/_common.call`` turns it into JSON
for XCom and the next step gets it back as the same type (``pipelines.core.contracts.invoke``).
So a reader can see from a step's signature exactly what crosses a task boundary, and mypy
checks that the chain fits. What travels: batch ids, run ids, URIs, hashes and row counts — the
frames, models and evaluation documents stay in the validated store and the MLflow run.

The chain::

    resolve_window -> TrainingRequest -> train -> TrainedCandidate -> evaluate -> EvaluationRef
    -> gate -> GateVerdict -> register -> Registration

Kept light (no pandas, no MLflow): ``steps`` imports it at module level, and so may any caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingWindow:
    """Batch ids only: this is what travels between tasks and into tags."""

    train_batches: tuple[str, ...]
    holdout_batch: str

    def to_dict(self) -> dict[str, Any]:
        """The form stored in the evaluation document and read by the optimization reports."""
        d = asdict(self)
        d["train_batches"] = list(self.train_batches)
        return d

    @property
    def label(self) -> str:
        """Compact form for tags and names: ``2013-01..2013-03->2013-04``."""
        first, last = self.train_batches[0], self.train_batches[-1]
        span = first if first == last else f"{first}..{last}"
        return f"{span}->{self.holdout_batch}"


@dataclass(frozen=True)
class TrainingRequest:
    """A resolved window and why it is trained (recorded on the run and the model version)."""

    window: TrainingWindow
    reason: str


@dataclass(frozen=True)
class CodeVersion:
    """The code a model was trained with: git sha (``-dirty`` when the model code changed) and the
    hash of that code's source, which also works without git (in an image)."""

    git_sha: str
    source_hash: str


@dataclass(frozen=True)
class TrainedCandidate:
    """A trained (or reused) candidate: its MLflow run and logged model, and what went into it.

    ``dedupe_key`` hashes the data fingerprints, the code and the model configuration: the same
    key means the same model, so a retried task reuses the run (``reused``) instead of training.
    """

    window: TrainingWindow
    dedupe_key: str
    train_fingerprint: str
    holdout_fingerprint: str
    train_rows: int
    dropped_null_target: int
    reason: str
    code: CodeVersion
    config_hash: str
    run_id: str
    model_uri: str
    model_id: str | None
    reused: bool


@dataclass(frozen=True)
class EvaluationRef:
    """Where the candidate's evaluation document is (``evaluation_uri``, a ``runs:/`` URI), with
    the headline figures for the task log; the gate reads the document itself."""

    candidate: TrainedCandidate
    evaluation_uri: str
    primary_metric: str
    candidate_primary: float | None
    champion_version: str | None
    champion_primary: float | None
    cached: bool

    @property
    def run_id(self) -> str:
        return self.candidate.run_id


@dataclass(frozen=True)
class GateVerdict:
    """The evaluation gate's verdict on a candidate, without its criteria list.

    Every criterion with its numbers is in the candidate's run (``evaluation/verdict.json``);
    the hand-off keeps what registration tags the version with.
    """

    candidate: TrainedCandidate
    evaluation_uri: str
    passed: bool
    champion_version: str | None
    failed_criteria: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """``passed`` or ``rejected``: the word in tags, events and the CLI output."""
        return "passed" if self.passed else "rejected"

    @property
    def run_id(self) -> str:
        return self.candidate.run_id


@dataclass(frozen=True)
class Registration:
    """The model version a candidate became.

    ``alias`` is ``"challenger"`` only when this registration left ``@challenger`` on the version
    (it passed and is not already the champion); ``duplicate`` when the same dedupe key was
    registered before and only its tags were refreshed.
    """

    model_name: str
    version: str
    run_id: str
    passed: bool
    verdict: str
    alias: str | None
    duplicate: bool
    champion_version: str | None
