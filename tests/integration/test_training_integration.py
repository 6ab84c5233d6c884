"""Training on real published months (issue 3): the DAG, the MLflow store, the registry, bad input.

One real DAG run (Jan-Mar 2013 -> holdout Apr) is shared by the module; every other test uses
its own registered model name so the tests stay independent while sharing one MLflow DB.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipelines.config import PathsConfig, Settings, load_settings
from pipelines.core.contracts import from_xcom
from pipelines.core.observability import read_events
from pipelines.core.registry import challenger_version, list_versions, version_location
from pipelines.data.validated import MARKER, load_batches, validated_dir
from pipelines.replay.orchestration import run_dag
from pipelines.training.contracts import TrainedCandidate, TrainingWindow
from pipelines.training.errors import (
    ChampionUnavailableError,
    TrackingUnavailableError,
    TrainingDataError,
)
from pipelines.training.evaluate import evaluate_candidate, load_evaluation
from pipelines.training.features import coerce_features, scores_from_pyfunc
from pipelines.training.steps import run_training
from pipelines.training.train import train_candidate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECOND = REPO / "tests" / "data" / "second_dataset" / "pipeline.yaml"
DAG_MODEL = "test_training_dag_clf"
WINDOW = ["2013-01", "2013-02", "2013-03"]
HOLDOUT = "2013-04"
CONF = {"reason": "integration test", "window": WINDOW, "holdout": HOLDOUT}
FAST = {"max_iter": 30}  # the real config trains 200 rounds; the tests check plumbing, not skill


def _fast(settings: Settings, **mlflow_changes: Any) -> Settings:
    """Settings with a cheap estimator and MLflow changes (model name, tracking URI...)."""
    training = settings.training.model_copy(
        update={"estimator_params": {**settings.training.estimator_params, **FAST}}
    )
    return settings.model_copy(
        update={"training": training, "mlflow": settings.mlflow.model_copy(update=mlflow_changes)}
    )


def _registry_state(settings: Settings) -> tuple[list[str], dict[str, str]]:
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    versions = [str(mv.version) for mv in list_versions(settings, client)]
    try:
        aliases = dict(client.get_registered_model(settings.mlflow.registered_model).aliases)
    except MlflowException:
        aliases = {}
    return versions, {k: str(v) for k, v in aliases.items()}


def _copy_store(src: Settings, dst_root: Path, batches: list[str], relabel: Any = None) -> Settings:
    """Another validated store under dst_root holding copies of src's batches (optionally relabelled)."""
    dst = src.model_copy(
        update={
            "paths": PathsConfig(root=dst_root),
            # keep the session MLflow DB: a fresh one costs seconds to migrate
            "mlflow": src.mlflow.model_copy(update={"tracking_uri": src.tracking_uri}),
        }
    )
    for b in batches:
        df = load_batches(src, [b])
        if relabel is not None:
            df = relabel(b, df)
        folder = validated_dir(dst, b)
        folder.mkdir(parents=True, exist_ok=True)
        df.to_parquet(folder / "accepted.parquet", index=False)
        marker = json.loads((validated_dir(src, b) / MARKER).read_text())
        marker["uri"] = f"file://{folder / 'accepted.parquet'}"
        (folder / MARKER).write_text(json.dumps(marker))
    return dst


@pytest.fixture(scope="module")
def dag_runs(settings, published_batches, dagbag) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """automate_training run twice on the same window (the second must change nothing)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS__MLFLOW__REGISTERED_MODEL", DAG_MODEL)
        mp.setenv("MLOPS__TRAINING__ESTIMATOR_PARAMS", json.dumps(FAST))
        dag = dagbag.dags["automate_training"]
        tasks = ("train", "gate", "register", "emit_challenger")
        first = run_dag(dag, CONF, xcom_tasks=tasks)
        state_after_first = _registry_state(_fast(settings, registered_model=DAG_MODEL))
        second = run_dag(dag, CONF, xcom_tasks=tasks)
    print("TIMING", first.wall_seconds, first.task_seconds, second.wall_seconds, second.task_seconds)
    return {"first": first, "second": second, "state_after_first": state_after_first}


@pytest.fixture(scope="module")
def dag_settings(settings) -> Settings:  # type: ignore[no-untyped-def]
    return _fast(settings, registered_model=DAG_MODEL)


# --------------------------------------------------------------------------- the DAG on real months
def test_dag_wiring(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["automate_training"]
    assert dagbag.import_errors == {}
    chain = ["should_train", "resolve_window", "train", "evaluate", "gate", "register", "has_new_challenger"]
    for up, down in zip(chain, [*chain[1:], "emit_challenger"], strict=True):
        assert down in dag.get_task(up).downstream_task_ids
    assert "mlops://validated-batch" in str(dag.timetable.asset_condition)
    assert [o.name for o in dag.get_task("emit_challenger").outlets] == ["challenger_model"]
    assert set(dag.params) == {"reason", "window", "holdout"}
    assert dag.max_active_runs == 1


def test_dag_registers_a_tagged_version_with_the_challenger_alias(dag_runs, dag_settings) -> None:
    first = dag_runs["first"]
    assert first.ok, first.task_states
    assert set(first.task_states.values()) == {"success"}, first.task_states
    reg = first.xcom["register"]
    assert reg["verdict"] == "passed" and reg["alias"] == "challenger" and not reg["duplicate"]
    assert first.xcom["emit_challenger"] == {
        "model_name": DAG_MODEL,
        "version": reg["version"],
        "run_id": reg["run_id"],
    }

    client = MlflowClient(dag_settings.tracking_uri, dag_settings.tracking_uri)
    mv = client.get_model_version(DAG_MODEL, reg["version"])
    assert mv.aliases == ["challenger"]  # champion is moved only by the canary release
    aliases = {k: str(v) for k, v in client.get_registered_model(DAG_MODEL).aliases.items()}
    assert aliases == {"challenger": reg["version"]}
    tags = mv.tags
    assert tags["data.train_batches"] == ",".join(WINDOW)
    assert tags["data.holdout_batch"] == HOLDOUT
    assert tags["gate.verdict"] == "passed" and tags["gate.failed_criteria"] == "none"
    assert tags["gate.champion_version"] == "none"  # first model: absolute thresholds only
    assert float(tags["metric.roc_auc"]) >= dag_settings.gate.classification.absolute["roc_auc"]
    assert (
        len(tags["data.train_fingerprint"]) == 64 and tags["dedupe_key"] == first.xcom["train"]["dedupe_key"]
    )
    assert tags["code.git_sha"] and len(tags["code.source_hash"]) == 16 and tags["config_hash"]
    assert int(tags["data.train_rows"]) > 50_000

    run = client.get_run(reg["run_id"])
    assert run.data.params["window_batches"] == ",".join(WINDOW)
    assert run.data.params["est.max_iter"] == "30"
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(float(tags["metric.roc_auc"]), abs=1e-5)
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"flights:2013-01..2013-03", "flights:2013-04"}
    train_input = inputs["flights:2013-01..2013-03"]
    assert train_input.dataset.digest == tags["data.train_fingerprint"][:32]
    assert {t.key: t.value for t in train_input.tags}["batches"] == ",".join(WINDOW)
    artifacts = {a.path for a in client.list_artifacts(reg["run_id"], "evaluation")}
    assert {
        "evaluation/roc.png",
        "evaluation/calibration.png",
        "evaluation/feature_importance.png",
        "evaluation/evaluation.json",
        "evaluation/verdict.json",
    } <= artifacts
    evaluation = load_evaluation(
        f"runs:/{reg['run_id']}/evaluation/evaluation.json", dag_settings.tracking_uri
    )
    assert set(evaluation["feature_importance"]) == set(dag_settings.dataset.features.all)
    assert {b["name"] for b in evaluation["behavioural"]} == {c.name for c in dag_settings.gate.behavioural}
    assert {s["column"] for s in evaluation["slices"]} == set(dag_settings.dataset.slice_columns)

    events = {e["kind"]: e for e in read_events(dag_settings.paths.events) if e.get("key") == reg["run_id"]}
    assert events["training_run"]["window"]["train_batches"] == WINDOW
    assert events["gate_verdict"]["verdict"] == "passed"


def test_rerun_on_the_same_window_registers_no_duplicate(dag_runs, dag_settings) -> None:
    first, second = dag_runs["first"], dag_runs["second"]
    assert second.ok, second.task_states
    assert second.xcom["train"]["reused"] is True
    assert second.xcom["train"]["run_id"] == first.xcom["train"]["run_id"]
    assert second.xcom["register"]["duplicate"] is True
    assert second.xcom["register"]["version"] == first.xcom["register"]["version"]
    assert _registry_state(dag_settings) == dag_runs["state_after_first"]
    assert len(dag_runs["state_after_first"][0]) == 1
    client = MlflowClient(dag_settings.tracking_uri, dag_settings.tracking_uri)
    exp = client.get_experiment_by_name(dag_settings.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.dedupe_key = '{first.xcom['train']['dedupe_key']}'")
    assert len(runs) == 1


def test_challenger_loads_by_alias_and_enforces_its_signature(dag_runs, dag_settings) -> None:
    # By alias, resolved in this settings' store: a models:/ URI would resolve against MLflow's
    # process-global registry URI, i.e. whichever store another test configured last.
    challenger = challenger_version(dag_settings)
    assert challenger is not None
    model = mlflow.pyfunc.load_model(version_location(dag_settings, challenger.version))
    contract = dag_settings.dataset
    holdout = load_batches(dag_settings, [HOLDOUT]).head(200)
    x = coerce_features(contract, holdout)
    p = scores_from_pyfunc(model.predict(x), "classification")
    assert p.shape == (200,) and np.all((p >= 0) & (p <= 1))
    assert [c.name for c in model.metadata.get_input_schema().inputs] == contract.features.all

    wrong = x.copy()
    wrong[contract.features.numeric[0]] = "not a number"
    with pytest.raises(MlflowException, match="enforce schema"):
        model.predict(wrong)
    # integer columns (e.g. parsed from JSON) are refused too: MLflow calls int64 -> double
    # unsafe, which is why callers go through coerce_features first
    ints = x.copy()
    ints[contract.features.numeric[0]] = ints[contract.features.numeric[0]].round().astype("int64")
    with pytest.raises(MlflowException, match="int64"):
        model.predict(ints)
    assert model.predict(coerce_features(contract, ints)).shape == (200, 2)


def test_asset_triggered_run_does_not_retrain_while_a_challenger_waits(dag_runs, dag_settings) -> None:
    from pipelines.training.window import should_train

    decision = should_train(dag_settings, reason="", asset_triggered=True)
    assert decision.train is False and "challenger" in decision.why
    assert should_train(dag_settings, reason="drift", asset_triggered=True).train is True


def test_dag_fails_without_registering_when_the_window_is_too_small(dag_runs, dagbag, dag_settings) -> None:
    before = _registry_state(dag_settings)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS__MLFLOW__REGISTERED_MODEL", DAG_MODEL)
        record = run_dag(dagbag.dags["automate_training"], {"reason": "too small", "window": 9})
    assert record.state == "failed"
    assert record.task_states["resolve_window"] == "failed"
    assert record.task_states["register"] == "upstream_failed"
    assert _registry_state(dag_settings) == before


# --------------------------------------------------------------------------- the gate on real models
def test_candidate_trained_on_shuffled_labels_is_rejected_against_the_champion(
    dag_runs, dag_settings, tmp_path
) -> None:
    name = "test_training_shuffled"
    rng = np.random.default_rng(0)
    target = dag_settings.dataset.target.name

    def shuffle(batch: str, df: pd.DataFrame) -> pd.DataFrame:
        if batch == HOLDOUT:
            return df  # judged on real labels
        return df.assign(**{target: rng.permutation(df[target].to_numpy())})

    store = _copy_store(dag_settings, tmp_path / "var", [*WINDOW, HOLDOUT], shuffle)
    shuffled = _fast(store, registered_model=name)
    # the DAG's model becomes this registry's champion (what the canary release would do)
    client = MlflowClient(shuffled.tracking_uri, shuffled.tracking_uri)
    good = dag_runs["first"].xcom["train"]
    client.create_registered_model(name)
    client.create_model_version(name, good["model_uri"], run_id=good["run_id"], model_id=good["model_id"])
    client.set_registered_model_alias(name, "champion", "1")

    result = run_training(shuffled, WINDOW, HOLDOUT, reason="shuffled labels")

    assert result["verdict"] == "rejected" and result["alias"] is None
    failed = "\n".join(result["failures"])
    assert "absolute:roc_auc" in failed and "relative:roc_auc" in failed
    assert "vs champion v1" in failed  # scored against the champion on the same holdout
    versions, aliases = _registry_state(shuffled)
    assert versions == ["1", "2"] and aliases == {"champion": "1"}  # registered, never challenger
    tags = client.get_model_version(name, "2").tags
    assert tags["gate.verdict"] == "rejected" and tags["gate.champion_version"] == "1"
    assert float(tags["metric.roc_auc"]) < 0.56
    assert "absolute:roc_auc" in tags["gate.failed_criteria"]


def test_missing_champion_artifact_fails_closed(dag_runs, dag_settings, tmp_path) -> None:
    name = "test_training_missing_champion"
    gone = tmp_path / "champion-artifact"
    # The logged model's own location: MLflow resolves a models:/m-... URI with the process-global
    # tracking URI whatever tracking_uri download_artifacts is given.
    logged = MlflowClient(dag_settings.tracking_uri).get_logged_model(
        dag_runs["first"].xcom["train"]["model_id"]
    )
    src = mlflow.artifacts.download_artifacts(
        logged.artifact_location, tracking_uri=dag_settings.tracking_uri
    )
    shutil.copytree(src, gone)
    settings = _fast(dag_settings, registered_model=name)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.create_registered_model(name)
    client.create_model_version(name, str(gone))
    client.set_registered_model_alias(name, "champion", "1")
    shutil.rmtree(gone)
    before = _registry_state(settings)

    with pytest.raises(
        ChampionUnavailableError, match=rf"champion {name} v1 cannot be loaded \(source {gone}"
    ):
        evaluate_candidate(settings, from_xcom(TrainedCandidate, dag_runs["first"].xcom["train"]))
    assert _registry_state(settings) == before == (["1"], {"champion": "1"})


def test_single_class_window_is_refused_before_anything_is_logged(
    dag_settings, published_batches, tmp_path
) -> None:
    target = dag_settings.dataset.target.name
    store = _copy_store(
        dag_settings,
        tmp_path / "var",
        [*WINDOW, HOLDOUT],
        lambda b, df: df if b == HOLDOUT else df.assign(**{target: 0.0}),
    )
    settings = _fast(store, registered_model="test_training_single_class")
    with pytest.raises(TrainingDataError, match=f"single-class training window.*{target}=\\[0\\]"):
        train_candidate(settings, TrainingWindow(tuple(WINDOW), HOLDOUT), "single class")
    assert _registry_state(settings) == ([], {})


def test_too_few_rows_is_refused(dag_settings, published_batches) -> None:
    settings = dag_settings.model_copy(
        update={"training": dag_settings.training.model_copy(update={"min_rows": 10_000_000})}
    )
    with pytest.raises(
        TrainingDataError, match=r"training window too small: \d+ labelled rows < training.min_rows"
    ):
        train_candidate(settings, TrainingWindow(("2013-01",), "2013-02"), "too small")


def test_unreachable_tracking_server_fails_fast_and_names_it(dag_settings, published_batches) -> None:
    down = dag_settings.model_copy(
        update={
            "mlflow": dag_settings.mlflow.model_copy(
                update={"tracking_uri": "http://127.0.0.1:9", "connect_timeout_s": 2.0}
            )
        }
    )
    before = _registry_state(dag_settings)
    t0 = time.perf_counter()
    with pytest.raises(TrackingUnavailableError, match=r"http://127.0.0.1:9 is unreachable"):
        run_training(down, WINDOW, HOLDOUT, reason="server down")
    assert time.perf_counter() - t0 < 15
    assert TrackingUnavailableError.retryable  # Airflow may retry this one, not the others
    assert _registry_state(dag_settings) == before


# --------------------------------------------------------------------------- a regression dataset
def test_second_dataset_regression_trains_and_is_gated(dag_settings, tmp_path, monkeypatch) -> None:
    from pipelines.data.landing import land_batch
    from pipelines.quality import validate_batch

    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    second = load_settings(SECOND)
    for b in second.dataset.batches[:4]:
        land_batch(second, b)
        validate_batch(second, b)
    settings = _fast(
        second, tracking_uri=dag_settings.tracking_uri, registered_model="test_training_regression"
    )
    result = run_training(settings, reason="second dataset")

    evaluation = load_evaluation(result["evaluation_uri"], settings.tracking_uri)
    assert evaluation["task"] == "regression"
    assert evaluation["window"] == {"train_batches": second.dataset.batches[:3], "holdout_batch": "2023-04"}
    r2 = evaluation["candidate"]["metrics"]["r2"]
    assert {"r2", "rmse", "mae"} <= set(evaluation["candidate"]["metrics"])
    assert result["passed"] is (r2 >= settings.gate.regression.absolute["r2"])
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert "evaluation/residuals.png" in {
        a.path for a in client.list_artifacts(result["run_id"], "evaluation")
    }
    model = mlflow.pyfunc.load_model(version_location(settings, result["version"]))
    frame = coerce_features(second.dataset, load_batches(second, ["2023-04"]))
    values = scores_from_pyfunc(model.predict(frame), "regression")
    assert values.shape == (len(frame),) and np.isfinite(values).all()


def test_cli_show_lists_versions_aliases_and_verdicts(dag_runs, capsys, monkeypatch) -> None:
    from pipelines.training.cli import main

    monkeypatch.setenv("MLOPS__MLFLOW__REGISTERED_MODEL", DAG_MODEL)
    assert main(["show", "--tags"]) == 0
    out = capsys.readouterr().out
    version = dag_runs["first"].xcom["register"]["version"]
    assert f"v{version}" in out and "@challenger" in out and "passed" in out
    assert "data.train_fingerprint = " in out
