"""Registered models load from the configured store, whatever MLflow's process-global URIs say.

A process holds several settings at once (the test session, the DAG processor, the demo's
replay): ``mlflow.set_registry_uri`` is process-global, and a ``models:/<name>/<version>`` URI is
resolved against it. A reader that loads that way gets whichever store was configured last —
the wrong model, or "Registered Model ... not found" (seen in CI when a random test order ran
the monitoring tests after another module had re-pointed the registry). Each reader below is run
with the globals pointing at a *different*, empty store and must still load the right model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def restored_globals() -> Iterator[None]:
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def _register(settings: Any, frame: pd.DataFrame, target: np.ndarray) -> Any:
    """A small real model in the settings' own store, registered and made ``@champion``."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from pipelines.core.registry import CHAMPION, client_for

    uri = settings.tracking_uri
    Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = client_for(settings)
    exp_id = client.create_experiment("isolation", artifact_location=(settings.paths.root / "art").as_uri())
    model = LogisticRegression(random_state=0).fit(frame, target)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run(experiment_id=exp_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=frame.head(2),
            pyfunc_predict_fn="predict_proba",
            registered_model_name=settings.mlflow.registered_model,
        )
    client.set_registered_model_alias(
        settings.mlflow.registered_model, CHAMPION, str(info.registered_model_version)
    )
    return model


def test_registered_versions_load_from_the_configured_store_not_the_global_one(
    isolated_settings: Any, tmp_path: Path, restored_globals: None
) -> None:
    import mlflow

    from pipelines.monitoring.reference import mlflow_scorer
    from pipelines.training.evaluate import load_champion

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    target = (frame["a"] + rng.normal(scale=0.5, size=200) > 0).astype(int).to_numpy()
    model = _register(isolated_settings, frame, target)
    expected = model.predict_proba(frame)[:, 1]

    # Another store becomes the process-global one (as another DAG or test would make it).
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    (tmp_path / "other").mkdir()
    mlflow.set_tracking_uri(other)
    mlflow.set_registry_uri(other)

    scored = mlflow_scorer(isolated_settings, "1")(frame)
    np.testing.assert_allclose(scored, expected, rtol=0, atol=1e-12)

    mlflow.set_tracking_uri(other)  # the scorer pointed the tracking URI back at its store
    mlflow.set_registry_uri(other)
    mv, champion = load_champion(isolated_settings)
    assert mv is not None and str(mv.version) == "1"
    np.testing.assert_allclose(np.asarray(champion.predict(frame))[:, 1], expected, rtol=0, atol=1e-12)


def test_run_documents_load_from_the_given_store_and_leave_the_globals_alone(
    isolated_settings: Any, tmp_path: Path, restored_globals: None
) -> None:
    """``load_evaluation`` (the gate's documents, the champion's feature importance) reads the
    store it is given and does not re-point MLflow for whoever loads next in this process."""
    import mlflow

    from pipelines.core.registry import client_for
    from pipelines.training import load_evaluation

    uri = isolated_settings.tracking_uri
    Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = client_for(isolated_settings)
    exp_id = client.create_experiment("isolation", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(exp_id).info.run_id
    doc = {"run_id": run_id, "candidate": {"metrics": {"roc_auc": 0.71}}}
    client.log_dict(run_id, doc, "evaluation/evaluation.json")
    client.set_terminated(run_id)

    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    (tmp_path / "other").mkdir()
    mlflow.set_tracking_uri(other)
    mlflow.set_registry_uri(other)

    assert load_evaluation(f"runs:/{run_id}/evaluation/evaluation.json", uri) == doc
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (other, other)
