"""The canary split under load (issue 16): a slow canary cannot stall the champion.

A real gateway (uvicorn thread, real registry) serves the champion and the test world's
slow canary (its predict sleeps 2 s). Concurrent callers hashed to the champion must be
answered at the champion's speed while the canary's calls sleep (the predictor turns wait
for it at most once, briefly); callers hashed to the canary get the champion's answer
once ``serving.canary_timeout_s`` expires, counted as canary ``timeout`` errors and logged
against the canary, never as a champion failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.serving import LABELS_TOKEN, TOKEN, World, build_world, module_env

from pipelines.serving.launcher import free_port

pytestmark = [
    pytest.mark.performance,
    pytest.mark.filterwarnings("ignore:X does not have valid feature names"),
]
PORT = free_port(18100, 18109)
AUTH = {"authorization": f"Bearer {TOKEN}"}
CANARY_TIMEOUT_S = 0.6


@pytest.fixture(scope="module")
def env(session_root: Path, settings: Any, published_batches: list[dict[str, Any]]) -> Iterator[Any]:
    from pipelines.config import load_settings
    from pipelines.serving.routing import RoutingState, RoutingStore

    world = build_world(session_root, settings, published_batches)
    extra = {"MLOPS__SERVING__CANARY_TIMEOUT_S": str(CANARY_TIMEOUT_S)}
    with module_env(world, session_root / "serving-split-tests", PORT, **extra):
        s = load_settings()
        state = RoutingState(model_name=s.mlflow.registered_model, champion_version=world.versions.champion)
        state.record("set_champion", reason="test setup")
        RoutingStore(s.paths.serving / "routing.json").save(state)
        yield s, world


def test_slow_canary_does_not_stall_the_champion_and_its_callers_time_out_to_the_champion(
    env: tuple[Any, World],
) -> None:
    from pipelines.core.predlog import read_predictions
    from pipelines.serving.app import create_app
    from pipelines.serving.routing import goes_to_canary
    from pipelines.serving.server import ThreadedServer
    from pipelines.serving.traffic import batch_requests, newest_batch

    settings, world = env
    assert settings.serving.canary_timeout_s == CANARY_TIMEOUT_S
    records, _ = batch_requests(settings, newest_batch(settings))
    app = create_app(settings, admin_token=TOKEN, labels_token=LABELS_TOKEN, use_env_token=False)
    server = ThreadedServer(app, "127.0.0.1", PORT).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            resp = http.post(
                "/admin/canary", json={"version": world.versions.slow, "weight": 50}, headers=AUTH
            )
            assert resp.status_code == 200, resp.text
            salt = world.versions.slow
            keys = [f"split-{i}" for i in range(400)]
            to_canary = [k for k in keys if goes_to_canary(50, k, salt)][:12]
            to_champion = [k for k in keys if not goes_to_canary(50, k, salt)][:60]
            assert len(to_canary) == 12 and len(to_champion) == 60

            def call(i: int, key: str) -> tuple[str, float, int, str, str]:
                body = json.dumps({"dataframe_records": [records[i % len(records)]]})
                headers = {"content-type": "application/json", "X-Request-Key": key}
                t0 = time.perf_counter()
                r = http.post("/invocations", content=body, headers=headers)
                return (
                    key,
                    time.perf_counter() - t0,
                    r.status_code,
                    r.headers.get("x-model-variant", ""),
                    (r.headers.get("x-request-id", "")),
                )

            with ThreadPoolExecutor(8) as pool:
                # Canary callers first, so the slow canary's calls are sleeping while the champion serves.
                canary_futs = [pool.submit(call, i, k) for i, k in enumerate(to_canary)]
                time.sleep(0.05)
                champion_futs = [pool.submit(call, i, k) for i, k in enumerate(to_champion)]
                canary_out = [f.result() for f in canary_futs]
                champion_out = [f.result() for f in champion_futs]
        metrics_text = httpx.get(f"{server.url}/metrics").text
        assert app.state.gateway.flush_log()
    finally:
        server.stop()

    champion_lat = np.array([o[1] for o in champion_out])
    assert all(o[2] == 200 and o[3] == "champion" for o in champion_out), champion_out
    # The canary sleeps 2 s per call: a champion caller that waited on it would take >= 2 s.
    # The bound leaves room for a loaded host and the pool's own queueing (8 workers, 4 of them
    # stuck on canary callers at a time).
    assert np.median(champion_lat) < 0.5 and champion_lat.max() < 1.5, sorted(champion_lat)

    # The canary's callers: answered by the champion after the canary's timeout, not after its 2 s.
    assert all(o[2] == 200 and o[3] == "champion" for o in canary_out), canary_out
    canary_lat = np.array([o[1] for o in canary_out])
    assert canary_lat.min() >= CANARY_TIMEOUT_S * 0.9 and canary_lat.max() < 2.0 + CANARY_TIMEOUT_S, (
        canary_lat
    )
    assert f'gateway_errors_total{{kind="timeout",variant="canary"}} {float(len(to_canary))}' in metrics_text
    assert 'gateway_errors_total{kind="exception",variant="champion"}' not in metrics_text

    log = read_predictions(settings)
    ids = {o[4] for o in canary_out}
    timed_out = log[log["request_id"].isin(ids) & (log["variant"] == "canary")]
    assert len(timed_out) == len(to_canary)
    assert timed_out["error"].str.contains("canary_timeout_s").all()
    assert timed_out["model_version"].eq(world.versions.slow).all()
