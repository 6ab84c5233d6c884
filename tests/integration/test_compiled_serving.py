"""The compiled serving path on real months (issue 16): trained and logged with the model version,
served only when it reproduces the pipeline, and a refused or absent copy visible in /version.

Each test registers under its own model name in the session's MLflow store.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from pipelines.config import Settings
from pipelines.core import compiled
from pipelines.core.registry import version_location
from pipelines.data.validated import load_batches
from pipelines.training.contracts import TrainedCandidate, TrainingWindow
from pipelines.training.features import coerce_features, predict_scores
from pipelines.training.train import train_candidate

pytestmark = [pytest.mark.integration, pytest.mark.performance]

WINDOW = TrainingWindow(("2013-01",), "2013-02")


def _settings(settings: Settings, model: str, **training: Any) -> Settings:
    cfg = settings.training.model_copy(
        update={"estimator_params": {**settings.training.estimator_params, "max_iter": 30}, **training}
    )
    return settings.model_copy(
        update={
            "training": cfg,
            "mlflow": settings.mlflow.model_copy(update={"registered_model": model, "experiment": model}),
        }
    )


def _register(settings: Settings, trained: TrainedCandidate, source: str | None = None) -> str:
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    name = settings.mlflow.registered_model
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(name)
    mv = client.create_model_version(
        name,
        source=source or trained.model_uri,
        run_id=trained.run_id,
        model_id=None if source else (trained.model_id or None),
    )
    return str(mv.version)


def _real_rows(settings: Settings) -> pd.DataFrame:
    """Holdout rows plus real rows with a numeric NaN, a missing category and an unseen category."""
    x = coerce_features(settings.dataset, load_batches(settings, ["2013-02"])).head(240)
    edge = x.head(3).copy()
    edge.loc[edge.index[0], "wind_gust"] = np.nan
    edge.loc[edge.index[1], "carrier"] = None
    edge.loc[edge.index[2], "dest"] = "ZZZ"
    return pd.concat([x, edge], ignore_index=True)


@pytest.fixture(scope="module")
def compiled_version(settings: Settings, published_batches: list[dict[str, Any]]) -> tuple[Settings, str]:
    s = _settings(settings, "test_compiled_clf")
    trained = train_candidate(s, WINDOW, "compiled serving test")
    return s, _register(s, trained)


def test_training_logs_a_compiled_copy_that_serves_within_1e_6(
    compiled_version: tuple[Settings, str],
) -> None:
    from pipelines.serving import load_served_model

    settings, version = compiled_version
    local = Path(mlflow.artifacts.download_artifacts(version_location(settings, version)))
    record = json.loads((local / compiled.ARTIFACT_DIR / compiled.PARITY_FILE).read_text())
    assert record["compiled"] is True, record
    assert max(record["max_abs_diff"].values()) <= compiled.PARITY_ATOL
    assert record["rows"]["holdout_sample"] > 500  # the sample plus missing and edge rows

    served = load_served_model(settings, version)
    info = served.describe()
    assert info["predictor"] == compiled.ENGINE, info["predictor_reason"]
    assert info["parity_max_abs_diff"] <= compiled.PARITY_ATOL
    assert set(info["parity"]) == {"input_example", "holdout_sample"}

    pipeline = mlflow.sklearn.load_model(str(local))
    rows = _real_rows(settings)
    expected = predict_scores(pipeline, rows, "classification")
    assert len(rows) <= 256  # one batch the gateway hands to the compiled copy
    assert compiled.max_abs_diff(served.predict(rows), expected) <= 1e-6
    assert compiled.max_abs_diff(served.compiled.predict(rows), expected) <= 1e-6
    # a large batch goes to the pipeline itself, with the same scores
    big = pd.concat([rows] * 3, ignore_index=True)
    assert compiled.max_abs_diff(served.predict(big), np.tile(expected, 3)) <= 1e-6


def test_the_gateway_answers_http_requests_with_the_compiled_copy(
    compiled_version: tuple[Settings, str],
) -> None:
    """Through /invocations: the request path's validated columns (NaN, an unseen level) reach the
    compiled copy, which answers as the pipeline does; /version names it. (A null carrier is refused
    with 400 before any model: the signature says the column was never missing.)"""
    from pipelines.serving.app import create_app

    settings, version = compiled_version
    rows = _real_rows(settings).tail(20)
    rows = rows[rows["carrier"].notna()]
    local = Path(mlflow.artifacts.download_artifacts(version_location(settings, version)))
    expected = predict_scores(mlflow.sklearn.load_model(str(local)), rows, "classification")
    with TestClient(create_app(settings, ephemeral_version=version, use_env_token=False)) as http:
        champ = http.get("/version").json()["champion"]
        assert champ["predictor"] == compiled.ENGINE, champ["predictor_reason"]
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        resp = http.post("/invocations", json=body)
        assert resp.status_code == 200, resp.text
        batch = np.asarray(resp.json()["predictions"])
        records = json.loads(rows.tail(2).to_json(orient="records"))
        single = [
            http.post("/invocations", json={"dataframe_records": [r]}).json()["predictions"][0]
            for r in records
        ]
    assert compiled.max_abs_diff(batch, expected) <= 1e-6
    assert compiled.max_abs_diff(np.asarray(single), expected[-2:]) <= 1e-6


def test_a_compiled_copy_that_does_not_reproduce_is_refused_and_version_says_why(
    compiled_version: tuple[Settings, str], tmp_path: Path
) -> None:
    from pipelines.serving.app import create_app

    settings, version = compiled_version
    local = Path(mlflow.artifacts.download_artifacts(version_location(settings, version)))
    tampered = tmp_path / "model"
    shutil.copytree(local, tampered)
    spec_path = tampered / compiled.ARTIFACT_DIR / compiled.SPEC_FILE
    spec = json.loads(spec_path.read_text())
    spec["fill"] = {col: value + 1000.0 for col, value in spec["fill"].items()}  # wrong imputed values
    codes = spec["codes"]["origin"]
    first, second = sorted(codes)[:2]
    codes[first], codes[second] = codes[second], codes[first]
    spec_path.write_text(json.dumps(spec))
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    run_id = client.get_model_version(settings.mlflow.registered_model, version).run_id
    bad = str(
        client.create_model_version(
            settings.mlflow.registered_model, source=str(tampered), run_id=run_id
        ).version
    )

    app = create_app(settings, ephemeral_version=bad, use_env_token=False)
    with TestClient(app) as http:
        champ = http.get("/version").json()["champion"]
        assert champ["version"] == bad
        assert champ["predictor"] == "sklearn"
        assert "does not reproduce the pipeline" in champ["predictor_reason"]
        assert champ["parity_max_abs_diff"] > compiled.PARITY_ATOL
        rows = _real_rows(settings).head(3)
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        preds = np.asarray(http.post("/invocations", json=body).json()["predictions"])
    pipeline = mlflow.sklearn.load_model(str(local))
    assert compiled.max_abs_diff(preds, predict_scores(pipeline, rows, "classification")) <= 1e-9


def test_a_model_that_cannot_be_compiled_still_trains_registers_and_serves(
    settings: Settings, published_batches: list[dict[str, Any]]
) -> None:
    from pipelines.serving import load_served_model

    s = _settings(
        settings,
        "test_compiled_fallback_clf",
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 300},
        categorical_encoding="onehot",
    )
    trained = train_candidate(s, WINDOW, "not compilable")
    version = _register(s, trained)
    run = MlflowClient(s.tracking_uri, s.tracking_uri).get_run(trained.run_id)
    assert run.data.tags["mlops.predictor"] == "sklearn"

    served = load_served_model(s, version)
    info = served.describe()
    assert info["predictor"] == "sklearn" and served.compiled is None
    assert "training recorded: not compiled" in info["predictor_reason"]
    rows = _real_rows(s)
    local = Path(mlflow.artifacts.download_artifacts(version_location(s, version)))
    expected = predict_scores(mlflow.sklearn.load_model(str(local)), rows, "classification")
    assert compiled.max_abs_diff(served.predict(rows), expected) <= 1e-9
