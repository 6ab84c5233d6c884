"""End to end through the real compose stack: one loop of the pipeline on Airflow's own engine.

What only this test exercises: the Celery workers, the scheduler's asset wiring (a validated batch
*triggers* training, a registered challenger *triggers* the canary release: ``dag.test()`` never runs
consumers), MLflow's server with auth and proxied artifacts, the gateway as a separate service, the
prediction log in Postgres, and recovery when a worker dies in the middle of training.

The tests share one stack (session fixture) and run in file order; each step asserts on the services'
own answers (REST APIs, the registry, the gateway), not on what the DAG code says it did.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from .conftest import StackHandle
from .helpers import AirflowAPI, MlflowAPI, docker, exec_json, wait_for

pytestmark = pytest.mark.e2e
# One loop in steps over one stack: the steps run in file order even under pytest-randomly
# (see conftest.py); each step asserts the state the previous one left.
STEPS_IN_FILE_ORDER = True

QUALITY = "standardize_data_quality"
TRAINING = "automate_training"
CANARY = "automate_canary_release"
MONITORING = "automate_drift_monitoring"
DAGS = (QUALITY, TRAINING, CANARY, MONITORING)
# 3 batches train (training.window_batches) and the 4th is the holdout: the smallest bootstrap.
BATCHES = ("2013-01", "2013-02", "2013-03", "2013-04")
MONITOR_WINDOW = "2013-04"


class Loop:
    """State shared by the ordered steps of the loop (one stack per session)."""

    training_run: str | None = None
    killed_container: str | None = None
    model_version: str | None = None
    t0: float = 0.0


@pytest.fixture(scope="module")
def airflow(stack: StackHandle) -> AirflowAPI:
    return AirflowAPI(stack.url("AIRFLOW_PORT"), "admin", stack.env["AIRFLOW_ADMIN_PASSWORD"])


@pytest.fixture(scope="module")
def mlflow_api(stack: StackHandle) -> MlflowAPI:
    return MlflowAPI(stack.url("MLFLOW_PORT"), "admin", stack.env["MLFLOW_AUTH_ADMIN_PASSWORD"])


@pytest.fixture(scope="module")
def model_name(stack: StackHandle) -> str:
    name = exec_json(
        stack.container("airflow-worker"),
        "import json; from pipelines.config import load_settings; "
        "print(json.dumps(load_settings().mlflow.registered_model))",
    )
    return str(name)


# ------------------------------------------------------------------------------- security
def test_services_demand_credentials(stack: StackHandle, airflow: AirflowAPI) -> None:
    base = stack.url("AIRFLOW_PORT")
    assert httpx.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
    bad = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
    assert bad.status_code == 401, f"Airflow accepted admin/admin: {bad.status_code}"
    assert airflow.token()  # the generated password works

    mlflow = stack.url("MLFLOW_PORT")
    assert (
        httpx.get(f"{mlflow}/api/2.0/mlflow/experiments/search", params={"max_results": 1}).status_code == 401
    )
    ok = httpx.get(
        f"{mlflow}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=("admin", stack.env["MLFLOW_AUTH_ADMIN_PASSWORD"]),
        timeout=30,
    )
    assert ok.status_code == 200, ok.text[:300]

    gateway = stack.url("GATEWAY_PORT")
    state = httpx.get(f"{gateway}/admin/state", timeout=30)
    assert state.status_code == 401, f"gateway admin API without token: {state.status_code}"
    authed = httpx.get(
        f"{gateway}/admin/state",
        headers={"Authorization": f"Bearer {stack.env['MLOPS_GATEWAY_ADMIN_TOKEN']}"},
        timeout=30,
    )
    assert authed.status_code == 200, authed.text[:300]


def test_published_ports_are_loopback_only_and_services_not_root(stack: StackHandle) -> None:
    ids = [s.id for s in stack.stack.states() if s.status == "running"]
    inspected = json.loads(docker("inspect", *ids).stdout)
    published = []
    for c in inspected:
        for bindings in (c["HostConfig"].get("PortBindings") or {}).values():
            for b in bindings or []:
                published.append((c["Name"], b.get("HostIp"), b.get("HostPort")))
    assert published, "no published ports found"
    assert all(ip == "127.0.0.1" for _, ip, _ in published), published
    root_ok = {"postgres"}  # its entrypoint drops to the postgres user after fixing PGDATA ownership
    for c in inspected:
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        if service in root_ok:
            continue
        uid = docker("exec", c["Id"], "id", "-u").stdout.strip()
        assert uid != "0", f"{service} runs as root"


# ------------------------------------------------------------------------------- the loop
def test_dags_parsed_without_errors(airflow: AirflowAPI) -> None:
    dag_ids = wait_for(
        "the four DAGs to be parsed",
        lambda: DAGS if set(DAGS) <= airflow.dag_ids() else None,
        timeout=300,
        interval=5,
    )
    assert set(dag_ids) <= airflow.dag_ids()
    assert airflow.import_errors() == []


def test_quality_runs_publish_batches(airflow: AirflowAPI, stack: StackHandle) -> None:
    Loop.t0 = time.monotonic()
    # Trigger first, unpause second: our runs are queued before the scheduler adds its own
    # "latest interval" run (catchup=False), which is then deleted: it would land a month the
    # 2013 dataset does not have.
    run_ids = [airflow.trigger(QUALITY, {"batch_id": b}, run_id=f"e2e_quality__{b}") for b in BATCHES]
    for dag_id in DAGS:
        airflow.unpause(dag_id)
    # Meanwhile delete the scheduler's own runs of the current interval as they appear.
    pending = set(run_ids)
    deadline = time.monotonic() + 900
    while pending and time.monotonic() < deadline:
        _delete_scheduled_runs(airflow, (QUALITY, MONITORING))
        for run_id in sorted(pending):
            if airflow.run(QUALITY, run_id)["state"] in ("success", "failed"):
                airflow.wait_run(QUALITY, run_id, timeout=10)  # raises with the logs if it failed
                pending.discard(run_id)
        time.sleep(5)
    assert not pending, f"quality runs still unfinished after 900s: {sorted(pending)}"
    published = exec_json(
        stack.container("airflow-worker"),
        "import json; from pipelines.config import load_settings; from pipelines.data.validated import "
        "list_published; print(json.dumps(list_published(load_settings())))",
    )
    assert set(BATCHES) <= set(published), published
    stack.figures.add("quality: 4 batches validated (s)", round(time.monotonic() - Loop.t0))


def _delete_scheduled_runs(airflow: AirflowAPI, dag_ids: tuple[str, ...]) -> None:
    """The scheduler adds a run for the current interval on unpausing (catchup=False): delete it."""
    for dag_id in dag_ids:
        for run in airflow.runs(dag_id):
            if run["run_type"] == "scheduled":
                airflow.request("DELETE", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}")


def test_asset_event_triggers_training_and_worker_kill_is_survived(
    airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str
) -> None:
    t0 = time.monotonic()

    def training_running() -> tuple[str, dict[str, Any]] | None:
        for run in airflow.runs(TRAINING):
            if run["run_type"] != "asset_triggered":
                continue
            ti = airflow.task_instances(TRAINING, run["dag_run_id"]).get("train")
            if ti and ti["state"] == "running" and ti.get("hostname"):
                return run["dag_run_id"], ti
        return None

    run_id, ti = wait_for(
        "an asset-triggered automate_training run to start its train task",
        training_running,
        timeout=900,
        interval=1,
        on_timeout=lambda: f"runs: {[(r['dag_run_id'], r['state']) for r in airflow.runs(TRAINING)]}",
    )
    Loop.training_run = run_id
    first_try = int(ti["try_number"])
    hostname = str(ti["hostname"])
    victim = next((s for s in stack.containers("airflow-worker") if hostname.startswith(s.id[:12])), None)
    assert victim is not None, f"train runs on {hostname}, which is no worker container of this stack"
    assert len(stack.containers("airflow-worker")) >= 2, "the kill test needs a second worker to retry on"
    docker("kill", victim.name)  # SIGKILL: no graceful shutdown, no chance to report the task
    Loop.killed_container = victim.name

    run = airflow.wait_run(TRAINING, run_id, timeout=1500)
    tis = airflow.task_instances(TRAINING, run_id)
    assert tis["train"]["state"] == "success"
    assert int(tis["train"]["try_number"]) > first_try, (
        f"train was not retried after its worker was killed: {tis['train']}"
    )
    assert tis["register"]["state"] == "success", airflow.failure_report(TRAINING, run_id)
    stack.figures.add("training incl. worker kill + retry (s)", round(time.monotonic() - t0))

    versions = mlflow_api.model_versions(model_name)
    assert len(versions) == 1, (
        f"expected exactly one registered version after one (retried) training run, got "
        f"{[(v['version'], v.get('run_id')) for v in versions]}"
    )
    Loop.model_version = str(versions[0]["version"])
    assert run["state"] == "success"


def test_challenger_triggers_canary_release_to_champion(
    airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str
) -> None:
    assert Loop.model_version is not None, "training step did not register a model"
    t0 = time.monotonic()
    assert mlflow_api.alias_version(model_name, "challenger") in (Loop.model_version, None)
    canary_run = wait_for(
        "the challenger_model asset event to trigger automate_canary_release",
        lambda: next((r for r in airflow.runs(CANARY) if r["run_type"] == "asset_triggered"), None),
        timeout=300,
        interval=3,
    )
    airflow.wait_run(CANARY, canary_run["dag_run_id"], timeout=1200)
    assert mlflow_api.alias_version(model_name, "champion") == Loop.model_version
    stack.figures.add("canary release (s)", round(time.monotonic() - t0))


def test_champion_answers_invocations_through_the_gateway(stack: StackHandle) -> None:
    assert Loop.model_version is not None
    rows = exec_json(
        stack.container("airflow-worker"),
        "import json; from pipelines.config import load_settings; from pipelines.data.validated import "
        f"load_batches; s = load_settings(); df = load_batches(s, ['{MONITOR_WINDOW}']).head(5); "
        "cols = s.dataset.features.all; "
        "print(df[cols].to_json(orient='split', index=False, date_format='iso'))",
    )
    gateway = stack.url("GATEWAY_PORT")
    health = httpx.get(f"{gateway}/health", timeout=30).json()
    assert str(health["champion"]) == Loop.model_version, health
    r = httpx.post(
        f"{gateway}/invocations",
        json={"dataframe_split": {"columns": rows["columns"], "data": rows["data"]}},
        timeout=60,
    )
    assert r.status_code == 200, r.text[:500]
    predictions = r.json()["predictions"]
    assert len(predictions) == 5
    assert all(0.0 <= float(p) <= 1.0 for p in predictions), predictions  # P(late), classification
    assert r.headers.get("X-Model-Version") == Loop.model_version


def test_monitoring_run_decides_on_served_traffic(
    airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str
) -> None:
    t0 = time.monotonic()
    worker = stack.container("airflow-worker")
    # Replayed traffic of the window through the gateway service (features + labels fed back):
    # what monitoring reads back from the prediction log in Postgres.
    # 1500 predictions: above monitoring.min_window_rows (1000), so the window is really judged.
    replay = docker(
        "exec", worker, "mlops", "serving", "traffic", "--batch", MONITOR_WINDOW,
        "--requests", "300", "--rows-per-request", "5",
        timeout=600,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr[-2000:]
    run_id = airflow.trigger(MONITORING, {"window": MONITOR_WINDOW}, run_id=f"e2e_monitor__{MONITOR_WINDOW}")
    airflow.wait_run(MONITORING, run_id, timeout=900)
    decision = exec_json(
        worker,
        "import json; from pipelines.config import load_settings; s = load_settings(); "
        f"p = s.paths.events / 'retrain_decision' / '{MONITOR_WINDOW}.json'; "
        "print(json.dumps(json.loads(p.read_text())))",
    )
    assert decision["action"] in {"retrain", "no_retrain"}, decision  # judged, not "insufficient data"
    # monitoring judged the model the gateway served, read back from the prediction log
    assert str(decision["model_version"]) == Loop.model_version, decision
    tis = airflow.task_instances(MONITORING, run_id)
    assert tis["monitor"]["state"] == "success"
    # The Evidently UI serves the workspace the monitoring run wrote to (shared volume).
    projects = httpx.get(f"{stack.url('EVIDENTLY_PORT')}/api/projects", timeout=30)
    assert projects.status_code == 200 and projects.json(), projects.text[:300]
    stack.figures.add("monitoring (replay + run) (s)", round(time.monotonic() - t0))
    mem = stack.stack.stats()
    stack.figures.add("memory after loop (MiB, total)", round(sum(mem.values())))
    stack.figures.add("memory after loop per container", {k: round(v) for k, v in sorted(mem.items())})
    # Still exactly the one version the loop registered, unless monitoring asked for a retrain.
    if decision["action"] != "retrain":
        versions = mlflow_api.model_versions(model_name)
        assert len(versions) == 1, [v["version"] for v in versions]
