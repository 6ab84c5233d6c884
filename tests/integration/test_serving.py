"""The prediction gateway over real HTTP: protocol, input enforcement, split, admin API, log, restart.

The gateway runs in this process on a uvicorn thread (the same app and HTTP stack as
``python -m pipelines.serving``) against a real MLflow registry; the launcher's
subprocess path is exercised by the canary tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.serving import LABELS_TOKEN, TOKEN, World, build_world, module_env

from pipelines.serving.launcher import free_port

# Free ports of this engineer's range, so concurrent test sessions on one host do not collide.
PORT = free_port(18110, 18124)
PORT_NO_TOKEN = free_port(18125, 18129)
AUTH = {"authorization": f"Bearer {TOKEN}"}
LABELS_AUTH = {"authorization": f"Bearer {LABELS_TOKEN}"}
# The gateway's verified numpy fast path calls estimators fitted on DataFrames (it silences this
# warning in its own process; pytest re-enables warnings per test).
pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


@pytest.fixture(scope="module")
def world(session_root: Path, settings: Any, published_batches: list[dict[str, Any]]) -> World:
    return build_world(session_root, settings, published_batches)


@pytest.fixture(scope="module")
def env(world: World, session_root: Path) -> Iterator[Any]:
    from pipelines.config import load_settings
    from pipelines.serving.routing import RoutingState, RoutingStore

    with module_env(world, session_root / "serving-tests", PORT):
        s = load_settings()
        # The gateway starts on a known champion, independent of the canary tests' aliases.
        state = RoutingState(model_name=s.mlflow.registered_model, champion_version=world.versions.champion)
        state.record("set_champion", reason="test setup")
        RoutingStore(s.paths.serving / "routing.json").save(state)
        yield s


class Running:
    def __init__(self, settings: Any, port: int = PORT, **kwargs: Any) -> None:
        from pipelines.serving.app import create_app
        from pipelines.serving.server import ThreadedServer

        self.app = create_app(
            settings,
            admin_token=kwargs.pop("admin_token", TOKEN),
            labels_token=kwargs.pop("labels_token", LABELS_TOKEN),
            use_env_token=False,
            **kwargs,
        )
        self.server = ThreadedServer(self.app, "127.0.0.1", port).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=60)

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture(scope="module")
def gw(env: Any) -> Iterator[Running]:
    running = Running(env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def rows(env: Any) -> list[dict[str, Any]]:
    from pipelines.serving.traffic import batch_requests, newest_batch

    records, _ = batch_requests(env, newest_batch(env))
    return records[:50]


@pytest.fixture(autouse=True)
def _no_canary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts and ends with the champion alone (a failed test must not leak a canary)."""
    yield
    if "gw" in request.fixturenames:
        g = request.getfixturevalue("gw")
        if g.gateway.state.canary_version is not None:
            g.http.post("/admin/rollback", json={"reason": "test cleanup"}, headers=AUTH)


def invoke(gw: Running, payload: Any, key: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["X-Request-Key"] = key
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return gw.http.post("/invocations", content=body, headers=headers)


def features(env: Any, rec: dict[str, Any]) -> dict[str, Any]:
    return {c: rec[c] for c in env.dataset.features.all}


# --------------------------------------------------------------------------- protocol
def test_every_scoring_format_gives_the_champions_probability(
    gw: Running, env: Any, rows: list[dict], tmp_path: Path
) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    sample = rows[:5]
    cols = list(sample[0])
    feats = env.dataset.features.all
    payloads = {
        "dataframe_split": {
            "dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in sample]}
        },
        "dataframe_records": {"dataframe_records": sample},
        "instances": {"instances": sample},
        "instances_positional": {"instances": [[r[c] for c in feats] for r in sample]},
        "inputs_columnar": {"inputs": {c: [r[c] for r in sample] for c in cols}},
    }
    answers = {}
    for name, payload in payloads.items():
        resp = invoke(gw, payload)
        assert resp.status_code == 200, (name, resp.text)
        body = resp.json()
        assert resp.headers["x-model-variant"] == body["variant"] == "champion"
        assert resp.headers["x-model-version"] == body["model_version"] == gw.gateway.state.champion_version
        answers[name] = body["predictions"]
    # MLflow's own scoring client works unchanged against the gateway.
    import pandas as pd

    host, port = gw.server.url.removeprefix("http://").split(":")
    mlflow_answer = ScoringServerClient(host, int(port)).invoke(
        pd.DataFrame([features(env, r) for r in sample])
    )
    answers["mlflow_client"] = list(mlflow_answer["predictions"])
    # The served value is P(positive class) of the registered sklearn model exactly as MLflow loads it
    # (the gateway's numpy fast path must not change a single prediction), whatever the format.
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow import MlflowClient

    from pipelines.training.features import coerce_features

    version = gw.gateway.state.champion_version
    uri = env.tracking_uri
    location = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_download_uri(
        env.mlflow.registered_model, version
    )
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(tmp_path), tracking_uri=uri
    )
    raw = mlflow.sklearn.load_model(local)
    expected = raw.predict_proba(coerce_features(env.dataset, pd.DataFrame(sample)))[:, 1]
    assert gw.http.get("/version").json()["champion"]["fast_path"] is True
    for name, preds in answers.items():
        np.testing.assert_allclose(preds, expected, rtol=1e-9, err_msg=name)


# The named bad inputs (400/413/415 with the field named) are the corpus of issue 13, in one table:
# tests/integration/test_bad_inputs.py, against a real gateway process.


def test_body_size_limit_and_content_type(gw: Running, env: Any) -> None:
    big = b" " * (env.serving.max_body_bytes + 10)
    resp = gw.http.post("/invocations", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413 and "max_body_bytes" in resp.json()["message"]
    resp = gw.http.post("/invocations", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert resp.status_code == 415
    assert gw.http.get("/health").json()["status"] == "ok"


# --------------------------------------------------------------------------- admin API
def test_admin_api_refuses_without_the_token(gw: Running, env: Any, world: World) -> None:
    before = gw.http.get("/version").json()
    body = {"version": world.versions.good, "weight": 50}
    assert gw.http.post("/admin/canary", json=body).status_code == 401
    assert (
        gw.http.post("/admin/canary", json=body, headers={"authorization": "Bearer nope"}).status_code == 401
    )
    assert gw.http.post("/admin/canary", json=body, headers={"authorization": TOKEN}).status_code == 401
    assert gw.http.post("/admin/rollback", json={}).status_code == 401
    assert gw.http.get("/admin/state").status_code == 401
    assert gw.http.get("/version").json()["canary"] == before["canary"] is None
    # Without a configured token the admin API is disabled (503), never open.
    no_token = Running(env, PORT_NO_TOKEN, admin_token=None)
    try:
        resp = no_token.http.post("/admin/canary", json=body, headers=AUTH)
        assert resp.status_code == 503 and "disabled" in resp.json()["message"]
        assert no_token.http.get("/admin/state").status_code == 503
    finally:
        no_token.stop()


def test_canary_that_fails_to_load_is_refused_and_recorded(
    gw: Running, world: World, rows: list[dict]
) -> None:
    resp = gw.http.post("/admin/canary", json={"version": world.versions.broken, "weight": 50}, headers=AUTH)
    assert resp.status_code == 422
    assert "cannot be loaded" in resp.json()["message"]
    state = gw.http.get("/admin/state", headers=AUTH).json()
    assert state["canary_version"] is None
    last = state["history"][-1]
    assert last["action"] == "set_canary" and last["ok"] is False and last["version"] == world.versions.broken
    assert invoke(gw, {"dataframe_records": rows[:1]}).headers["x-model-variant"] == "champion"


def test_raising_canary_is_answered_by_the_champion_and_counted(
    gw: Running, env: Any, world: World, rows: list[dict]
) -> None:
    from pipelines.core.predlog import read_predictions

    resp = gw.http.post(
        "/admin/canary", json={"version": world.versions.raising, "weight": 100}, headers=AUTH
    )
    assert resp.status_code == 200, resp.text
    ids = []
    for r in rows[:20]:
        out = invoke(gw, {"dataframe_records": [r]})
        assert out.status_code == 200, out.text
        assert out.headers["x-model-variant"] == "champion"
        ids.append(out.headers["x-request-id"])
    metrics = gw.http.get("/metrics").text
    assert 'gateway_errors_total{kind="exception",variant="canary"} 20.0' in metrics
    assert "gateway_canary_fallbacks_total 20.0" in metrics
    assert gw.gateway.flush_log()
    log = read_predictions(env)
    mine = log[log["request_id"].isin(ids)]
    canary_rows = mine[mine["variant"] == "canary"]
    assert len(canary_rows) == 20 and canary_rows["error"].str.contains("raises on every request").all()
    assert canary_rows["model_version"].eq(world.versions.raising).all()
    champion_rows = mine[mine["variant"] == "champion"]
    assert len(champion_rows) == 20 and champion_rows["error"].isna().all()
    assert champion_rows["prediction"].between(0, 1).all()


# --------------------------------------------------------------------------- split


def test_split_converges_to_the_configured_weight(gw: Running, world: World, rows: list[dict]) -> None:
    weight, n = 30, 600
    resp = gw.http.post(
        "/admin/canary", json={"version": world.versions.good, "weight": weight}, headers=AUTH
    )
    assert resp.status_code == 200, resp.text
    bodies = [json.dumps({"dataframe_records": [rows[i % len(rows)]]}).encode() for i in range(n)]
    keys = [uuid.uuid4().hex for _ in range(n)]

    async def fire() -> list[str]:
        sem = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=gw.server.url, timeout=60) as client:

            async def one(body: bytes, key: str) -> str:
                async with sem:
                    r = await client.post(
                        "/invocations",
                        content=body,
                        headers={"content-type": "application/json", "X-Request-Key": key},
                    )
                    assert r.status_code == 200, r.text
                    return r.headers["x-model-variant"]

            return await asyncio.gather(*(one(b, k) for b, k in zip(bodies, keys, strict=True)))

    variants = asyncio.run(fire())
    share = variants.count("canary") / n
    sigma = math.sqrt(weight / 100 * (1 - weight / 100) / n)
    assert abs(share - weight / 100) < 4 * sigma, f"canary share {share:.3f} vs weight {weight}%"
    # Sticky: the same key always lands on the same variant.
    sticky = {
        invoke(gw, {"dataframe_records": rows[:1]}, key=keys[0]).headers["x-model-variant"] for _ in range(10)
    }
    assert sticky == {variants[0]}


# --------------------------------------------------------------------------- state, log, labels
def test_routing_state_and_prediction_log_survive_a_restart(env: Any, world: World, rows: list[dict]) -> None:
    from pipelines.core.predlog import read_predictions

    first = Running(env, PORT_NO_TOKEN)
    try:
        r = first.http.post(
            "/admin/canary", json={"version": world.versions.good, "weight": 42}, headers=AUTH
        )
        assert r.status_code == 200, r.text
        ids = [invoke(first, {"dataframe_records": [row]}).headers["x-request-id"] for row in rows[:30]]
    finally:
        first.stop()  # clean shutdown: the writer drains its queue
    log = read_predictions(env)
    assert log["request_id"].isin(ids).sum() == 30, "rows lost at shutdown"
    second = Running(env, PORT_NO_TOKEN)
    try:
        info = second.http.get("/version").json()
        assert info["canary"]["version"] == world.versions.good and info["canary_weight"] == 42
        assert info["champion"]["version"] == world.versions.champion
        history = second.http.get("/admin/state", headers=AUTH).json()["history"]
        assert history[-1]["action"] == "set_canary" and history[-1]["weight"] == 42
        second.http.post("/admin/rollback", json={"reason": "test"}, headers=AUTH)
        assert second.http.get("/version").json()["canary"] is None
    finally:
        second.stop()


def test_labels_join_predictions_on_the_entity_id(gw: Running, env: Any, rows: list[dict]) -> None:
    from pipelines.core.predlog import read_labelled, read_labels

    id_col = env.dataset.id.column
    sample = rows[30:40]
    for r in sample:
        assert invoke(gw, {"dataframe_records": [r]}).status_code == 200
    labels = [
        {"entity_id": r[id_col], "label": float(i % 2), "available_at": "2013-05-08T00:00:00Z"}
        for i, r in enumerate(sample)
    ]
    post = gw.http.post
    # idempotent: the same labels twice
    assert post("/labels", json={"labels": labels}, headers=LABELS_AUTH).json()["recorded"] == 10
    assert post("/labels", json={"labels": labels}, headers=LABELS_AUTH).json()["recorded"] == 10
    assert post("/labels", json={"labels": [{"label": 1}]}, headers=LABELS_AUTH).status_code == 400
    assert post("/labels", json={"labels": labels}, headers=AUTH).status_code == 401  # not the admin token
    assert gw.gateway.flush_log()
    ids = {r[id_col] for r in sample}
    assert read_labels(env)["entity_id"].isin(ids).sum() == 10
    joined = read_labelled(env, expand_features=True)
    joined = joined[joined["entity_id"].isin(ids)]
    assert len(joined) >= 10 and set(joined["label"]) == {0.0, 1.0}
    assert joined["event_time"].str.endswith("+00:00").all()
    assert "distance" in joined.columns and joined["distance"].notna().all()
    assert read_labelled(env, available_before="2013-05-01")["entity_id"].isin(ids).sum() == 0


def test_metrics_are_labelled_per_variant(gw: Running, world: World, rows: list[dict]) -> None:
    gw.http.post("/admin/canary", json={"version": world.versions.good, "weight": 50}, headers=AUTH)
    for i, r in enumerate(rows[:40]):
        assert invoke(gw, {"dataframe_records": [r]}, key=f"m{i}").status_code == 200
    assert gw.gateway.flush_log()
    text = gw.http.get("/metrics").text
    for variant in ("champion", "canary"):
        served = re.search(rf'gateway_requests_total{{model_version="\d+",variant="{variant}"}} (\d+)', text)
        assert served is not None and float(served.group(1)) > 0, variant
        assert f'gateway_request_latency_seconds_bucket{{le="0.05",variant="{variant}"}}' in text
        assert f'gateway_prediction_count{{variant="{variant}"}}' in text
    assert "gateway_canary_weight_percent 50.0" in text
    assert gw.http.get("/health").json()["prediction_log"]["rows_written"] > 0
