"""The evaluation gate's decisions on real months (issue 12): bad challengers are rejected by the
criterion that names their defect; equal retrains pass.

A seed-42 champion is trained on 2013-01..03 (holdout 2013-04) with the configured estimator and
given ``@champion``; every candidate then goes through ``evaluate_candidate`` → ``gate_candidate``
→ ``register_candidate`` (the DAG's code). The corpus (``tests/support/gate_corpus.py``) is shared
with ``benchmarks/decisions_gate.py``. Own registered model and experiment: independent of the
other integration modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from support import gate_corpus as corpus

from pipelines.config import Settings
from pipelines.core.observability import read_events
from pipelines.training.contracts import TrainedCandidate, TrainingWindow
from pipelines.training.train import train_candidate

pytestmark = [pytest.mark.integration, pytest.mark.decisions]

MODEL = "test_gate_decisions_clf"
WINDOW = TrainingWindow(("2013-01", "2013-02", "2013-03"), "2013-04")


@pytest.fixture(scope="module")
def gate_settings(settings: Settings, published_batches: list[dict]) -> Settings:
    return settings.model_copy(
        update={
            "mlflow": settings.mlflow.model_copy(
                update={"registered_model": MODEL, "experiment": "test-gate-decisions"}
            )
        }
    )


@pytest.fixture(scope="module")
def champion(gate_settings: Settings) -> TrainedCandidate:
    trained, _ = corpus.make_champion(corpus.with_seed(gate_settings, 42), WINDOW)
    return trained


def _version_tags(settings: Settings, version: str) -> dict[str, str]:
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    return dict(client.get_model_version(settings.mlflow.registered_model, version).tags)


def _criterion(record: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(c for c in record["criteria"] if c["kind"] == kind and (name is None or c["name"] == name))


@pytest.mark.parametrize("kind", list(corpus.EXPECTED))
def test_bad_challenger_is_rejected_by_its_criterion(
    kind: str, gate_settings: Settings, champion: TrainedCandidate, tmp_path: Path
) -> None:
    settings, bad = corpus.build_bad(gate_settings, champion, kind, tmp_path)
    verdict, registration, record = corpus.judge(settings, bad)  # never raises, whatever the model does

    assert not verdict.passed, f"{kind} was accepted: {record['criteria']}"
    assert corpus.caught(kind, verdict.failed_criteria), (kind, verdict.failures)
    # recorded like any other rejection: a version without @challenger, tags and a gate_verdict event
    assert registration.alias is None and registration.verdict == "rejected"
    tags = _version_tags(settings, registration.version)
    assert tags["gate.verdict"] == "rejected"
    assert corpus.EXPECTED[kind] in tags["gate.failed_criteria"]
    events = [e for e in read_events(settings.paths.events, "gate_verdict") if e.get("key") == bad.run_id]
    assert events and events[-1]["verdict"] == "rejected"
    # the failing criterion shows its evidence in the verdict and in the run's tags
    failed = next(c for c in record["criteria"] if not c["passed"] and c["kind"] in corpus.EXPECTED[kind])
    assert {"estimate", "interval", "margin", "p_value"} <= set(failed["figures"])
    run_tags = MlflowClient(settings.tracking_uri).get_run(bad.run_id).data.tags
    assert run_tags["gate.verdict"] == "rejected"
    assert any(
        k.startswith(f"gate.criterion.{failed['kind']}.") and v.startswith("fail")
        for k, v in run_tags.items()
    )

    if kind == "slice_broken":  # good overall: only the slice gives it away
        assert _criterion(record, "relative")["passed"], record["criteria"]
        assert _criterion(record, "absolute", "roc_auc")["passed"]
    if kind == "leaky_slice_broken":  # far better overall, broken on one carrier
        rel = _criterion(record, "relative")
        assert rel["passed"] and rel["figures"]["estimate"] > 0.1
    if corpus.EXPECTED[kind].startswith("predict_contract"):
        assert [c["kind"] for c in record["criteria"]] == ["predict_contract"]


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_equal_retrain_passes(seed: int, gate_settings: Settings, champion: TrainedCandidate) -> None:
    """Same pipeline, same window, another seed: an equally good model must become @challenger.

    Seed 4 is the one the point-estimate gate rejected (issue 12: precip +0.2 moved P(late) by
    -0.017); its behaviour is within the stated tolerance once judged against it.
    """
    settings = corpus.with_seed(gate_settings, seed)
    trained = train_candidate(settings, WINDOW, f"issue 12: equal retrain seed {seed}")
    assert trained.run_id != champion.run_id
    verdict, registration, record = corpus.judge(settings, trained)
    assert verdict.passed, verdict.failures
    assert registration.alias == "challenger"
    rel = _criterion(record, "relative")
    assert rel["figures"]["p_adjusted"] >= rel["figures"]["p_value"]
    assert rel["figures"]["method"] == "delong_paired"
    assert abs(rel["figures"]["estimate"]) < 0.01
    slices = [c for c in record["criteria"] if c["kind"] == "slice"]
    assert len(slices) >= 10  # carriers and origins with >= slice_min_rows rows are all judged
    assert all(c["figures"]["margin"] == settings.gate.slice_tolerance for c in slices)
