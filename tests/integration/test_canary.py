"""Canary releases end to end: the DAG, the pre-rollout check, the steps' analysis, promotion, rollback.

Everything is real: the gateway is the subprocess ``ensure_gateway`` starts, the
pre-rollout checks start fresh serving subprocesses, the registry is MLflow, traffic
is replayed from GX-validated batches with labels fed back, and the DAG runs through
Airflow's ``dag.test()``. The tests tell one story — bootstrap (first champion) → good
canary promoted → one-command rollback → shuffled-label canary rolled back (DAG) →
unloadable, raising and slow canaries rejected → rollback param aborts a running canary —
but each test starts from the state it names (``no_champion_yet``, ``champion``,
``good_promoted``, ``release_traffic``), so any test runs alone and in any order.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.serving import TOKEN, World, build_world, module_env, no_champion, serve_champion

from pipelines.serving.launcher import free_port

PORT = free_port(18130, 18149)  # a free port of this engineer's range (concurrent sessions)
AUTH = {"authorization": f"Bearer {TOKEN}"}
# The gateway's verified numpy fast path calls estimators fitted on DataFrames (it silences this
# warning in its own process; pytest re-enables warnings per test).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:X does not have valid feature names"),
]


@pytest.fixture(scope="module")
def world(session_root: Path, settings: Any, published_batches: list[dict[str, Any]]) -> World:
    return build_world(session_root, settings, published_batches)


@pytest.fixture(scope="module")
def env(world: World, session_root: Path) -> Iterator[Any]:
    from pipelines.config import load_settings
    from pipelines.serving.launcher import ensure_gateway, stop_gateway

    with module_env(world, session_root / "canary-tests", PORT):
        s = load_settings()
        # Start the gateway while Airflow warms up; the first task that needs it then finds it
        # healthy (ensure_gateway serialises launches, so nothing starts twice).
        starter = threading.Thread(target=ensure_gateway, args=(s,), daemon=True)
        starter.start()
        yield s
        starter.join()
        stop_gateway(s)


def registry(env: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)


def alias(env: Any, name: str) -> str | None:
    from pipelines.core.registry import alias_version_number

    return alias_version_number(env, name)


def served(env: Any) -> dict[str, Any]:
    from pipelines.serving.launcher import gateway_url

    return dict(httpx.get(f"{gateway_url(env)}/version", timeout=30).json())


def events(env: Any, kind: str) -> list[dict[str, Any]]:
    from pipelines.core.observability import read_events

    return read_events(env.paths.events, kind)


def run_dag(dagbag: Any, conf: dict[str, Any]) -> Any:
    dag = dagbag.dags["automate_canary_release"]
    dr = dag.test(run_conf=conf)
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


# --------------------------------------------------------------------------- starting states
@pytest.fixture
def no_champion_yet(env: Any) -> None:
    """Before the first release: no @champion, no @challenger, no canary."""
    no_champion(env)


@pytest.fixture
def champion(env: Any, world: World) -> str:
    """The champion model is @champion and served alone."""
    return serve_champion(env, world.versions.champion)


@pytest.fixture
def good_promoted(env: Any, world: World) -> str:
    """The good retrain was promoted over the champion (the state a successful release leaves)."""
    serve_champion(env, world.versions.champion)
    return serve_champion(env, world.versions.good, previous=world.versions.champion)


@pytest.fixture
def release_traffic(env: Any, world: World, dagbag: Any) -> None:
    """A canary release sent its traffic through the gateway (releases the good retrain if none has)."""
    released = (world.versions.good, world.versions.shuffled)
    if any(e["version"] in released and e["step"] != "precheck" for e in events(env, "canary_step")):
        return
    serve_champion(env, world.versions.champion)
    registry(env).set_registered_model_alias(env.mlflow.registered_model, "challenger", world.versions.good)
    dr, states = run_dag(dagbag, {})
    assert str(dr.state) == "success", states


# --------------------------------------------------------------------------- the tests
def test_dag_is_wired_thin(dagbag: Any) -> None:
    dag = dagbag.dags["automate_canary_release"]
    assert not [e for e in dagbag.import_errors if "canary" in e]
    assert {t.task_id for t in dag.tasks} == {
        "plan_release",
        "choose_path",
        "rollback",
        "pre_rollout_check",
        "traffic_steps",
        "promote",
    }
    assert "challenger_model" in repr(dag.timetable.asset_condition)
    assert set(dag.params) == {"version", "steps", "rollback", "reason"}


def test_bootstrap_promotes_the_first_challenger_after_the_precheck(
    env: Any, world: World, dagbag: Any, no_champion_yet: None
) -> None:
    v = world.versions.champion
    assert alias(env, "champion") is None
    registry(env).set_registered_model_alias(env.mlflow.registered_model, "challenger", v)
    dr, states = run_dag(dagbag, {})
    assert str(dr.state) == "success", states
    assert states["rollback"] == "skipped"
    assert alias(env, "champion") == v and alias(env, "challenger") is None
    info = served(env)
    assert info["champion"]["version"] == v and info["canary"] is None
    release = [e for e in events(env, "release") if e["version"] == v][-1]
    assert release["action"] == "bootstrap" and "no traffic to compare with" in release["reason"]
    assert release["served"]["invocation_version"] == v
    tags = registry(env).get_model_version(env.mlflow.registered_model, v).tags
    assert tags["release.previous_champion"] == "none" and "bootstrap" in tags["release.reason"]


def test_good_canary_walks_the_steps_and_is_promoted(
    env: Any, world: World, dagbag: Any, champion: str
) -> None:
    old, new = world.versions.champion, world.versions.good
    registry(env).set_registered_model_alias(env.mlflow.registered_model, "challenger", new)
    dr, states = run_dag(dagbag, {})
    assert str(dr.state) == "success", states
    steps = {e["step"]: e for e in events(env, "canary_step") if e["version"] == new}
    assert steps["precheck"]["verdict"] == "success"
    for weight in env.canary.steps:
        step = steps[weight]
        assert step["verdict"] == "success", step["reason"]
        assert step["figures"]["errors.requests"] >= env.canary.min_requests
        assert step["figures"]["errors.failures"] == 0
    # The registry and the live gateway agree on the new champion; the audit trail is on the version.
    assert alias(env, "champion") == new and alias(env, "challenger") is None
    tags = registry(env).get_model_version(env.mlflow.registered_model, new).tags
    assert tags["release.previous_champion"] == old and tags["canary.verdict"] == "promoted"
    assert "10%" in tags["release.reason"] and "errors.rate" in tags["release.analysis"]
    assert (
        registry(env).get_model_version(env.mlflow.registered_model, old).tags["release.superseded_by"] == new
    )
    info = served(env)
    assert info["champion"]["version"] == new and info["canary"] is None
    body = httpx.post(
        f"{served_url(env)}/invocations", json={"dataframe_records": [sample_row(env)]}, timeout=30
    )
    assert body.headers["x-model-version"] == new


def served_url(env: Any) -> str:
    from pipelines.serving.launcher import gateway_url

    return gateway_url(env)


def sample_row(env: Any) -> dict[str, Any]:
    from pipelines.serving.traffic import batch_requests, newest_batch

    return batch_requests(env, newest_batch(env))[0][0]


def test_rollback_is_one_command(env: Any, world: World, good_promoted: str) -> None:
    env_vars = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env_vars.setdefault("PYTHONPYCACHEPREFIX", str(env.paths.root / "cache" / "pycache"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serving",
            "rollback",
            "--reason",
            "test: one-command rollback",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env_vars,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    v = world.versions.champion
    assert alias(env, "champion") == v
    assert served(env)["champion"]["version"] == v
    record = [e for e in events(env, "rollback") if e.get("scope") == "champion"][-1]
    assert record["from"] == world.versions.good and record["to"] == v
    assert record["reason"] == "test: one-command rollback" and record["served"]["invocation_version"] == v


def test_shuffled_label_canary_is_rolled_back_by_the_dag(
    env: Any, world: World, dagbag: Any, champion: str
) -> None:
    bad = world.versions.shuffled
    registry(env).set_registered_model_alias(env.mlflow.registered_model, "challenger", bad)
    # Steps 50 -> 100: the canary collects the labels a significant verdict needs in fewer requests.
    dr, states = run_dag(dagbag, {"steps": [50, 100]})
    assert str(dr.state) == "failed" and states["traffic_steps"] == "failed", states
    assert states["promote"] != "success"
    record = [e for e in events(env, "rollback") if e.get("version") == bad][-1]
    assert record["stage"].startswith("step")
    assert "quality" in record["reason"], record["reason"]
    assert record["figures"]["quality.canary"] < record["figures"]["quality.champion"]
    assert record["figures"]["quality.ci_high"] < 0
    assert alias(env, "champion") == world.versions.champion and alias(env, "challenger") is None
    info = served(env)
    assert info["champion"]["version"] == world.versions.champion and info["canary"] is None
    assert (
        registry(env).get_model_version(env.mlflow.registered_model, bad).tags["canary.verdict"] == "rejected"
    )


def _plan(env: Any, version: str) -> Any:
    from pipelines.canary.release import plan_release

    plan = plan_release(env, version=version)
    assert plan.action == "release" and plan.champion_version is not None
    return plan


def test_unloadable_canary_is_rejected_at_the_precheck(env: Any, world: World, champion: str) -> None:
    from pipelines.canary import CanaryRejectedError
    from pipelines.canary.precheck import pre_rollout_check

    bad = world.versions.broken
    with pytest.raises(CanaryRejectedError, match=r"failed to load in a fresh instance.*cannot be loaded"):
        pre_rollout_check(env, _plan(env, bad))
    record = [e for e in events(env, "rollback") if e.get("version") == bad][-1]
    assert record["stage"] == "pre-rollout check" and "cannot be loaded" in record["reason"]
    assert served(env)["champion"]["version"] == world.versions.champion


def test_raising_canary_is_rejected_by_the_precheck_and_by_the_steps(
    env: Any, world: World, champion: str
) -> None:
    from pipelines.canary import CanaryRejectedError, PrecheckResult
    from pipelines.canary.precheck import pre_rollout_check
    from pipelines.canary.stepping import run_traffic_steps

    bad = world.versions.raising
    with pytest.raises(CanaryRejectedError, match=r"HTTP 500.*raises on every request"):
        pre_rollout_check(env, _plan(env, bad))
    # Had it slipped through, the first step catches it: users are answered by the champion.
    with pytest.raises(CanaryRejectedError, match="errors: error rate 100"):
        run_traffic_steps(env, PrecheckResult(_plan(env, bad)))
    step = [e for e in events(env, "canary_step") if e["version"] == bad and e["step"] == 10][-1]
    traffic = step["traffic"][0]
    assert traffic["statuses"] == {"200": traffic["requests"]}
    assert set(traffic["variants"]) == {"champion"}
    info = served(env)
    assert info["champion"]["version"] == world.versions.champion and info["canary"] is None


def test_slow_canary_is_rolled_back_on_latency(env: Any, world: World, champion: str) -> None:
    from dataclasses import replace

    from pipelines.canary import CanaryRejectedError, PrecheckResult
    from pipelines.canary.stepping import run_traffic_steps

    bad = world.versions.slow  # sleeps 2 s per request; the tests' SLO is 1 s (a loaded CI host)
    # More concurrent callers and fewer required requests: the verdict needs ~20 slow answers.
    quick = env.model_copy(deep=True)
    quick.canary.replay_concurrency, quick.canary.min_requests = 16, 30
    with pytest.raises(CanaryRejectedError, match="latency"):
        run_traffic_steps(quick, PrecheckResult(replace(_plan(env, bad), steps=(50, 100))))
    record = [e for e in events(env, "rollback") if e.get("version") == bad][-1]
    assert record["figures"]["latency.p50_ms"] > env.canary.latency_p99_slo_ms
    assert record["figures"]["latency.canary_slower_pvalue"] < env.canary.latency_alpha
    assert served(env)["canary"] is None


def test_rollback_param_aborts_a_running_canary(env: Any, world: World, dagbag: Any, champion: str) -> None:
    url = served_url(env)
    r = httpx.post(
        f"{url}/admin/canary", json={"version": world.versions.good, "weight": 20}, headers=AUTH, timeout=120
    )
    assert r.status_code == 200, r.text
    dr, states = run_dag(dagbag, {"rollback": True, "reason": "test: abort"})
    assert str(dr.state) == "success", states
    assert states["rollback"] == "success" and states["pre_rollout_check"] == "skipped"
    info = served(env)
    assert info["canary"] is None and info["champion"]["version"] == world.versions.champion
    record = [e for e in events(env, "rollback") if e.get("scope") == "canary"][-1]
    assert record["aborted"] == world.versions.good and record["reason"] == "test: abort"


def test_prediction_log_holds_the_release_traffic(env: Any, world: World, release_traffic: None) -> None:
    from pipelines.core.predlog import read_labelled, read_predictions
    from pipelines.serving.launcher import ensure_gateway, stop_gateway

    url = ensure_gateway(env)
    assert ensure_gateway(env) == url  # healthy gateway reused, no second process
    assert stop_gateway(env)
    log = read_predictions(env)
    assert {"champion", "canary"} <= set(log["variant"])
    assert log["model_version"].isin([world.versions.good, world.versions.shuffled]).any()
    labelled = read_labelled(env)
    assert len(labelled) > 100 and labelled["label"].isin([0.0, 1.0]).all()
