"""Faults on the running compose stack: each ends with the loop recovered without a manual step.

Four faults, on the session's one stack (no extra stack: CI time), after the loop of
``test_stack.py`` (both modules set ``STEPS_IN_FILE_ORDER``, so the conftest orders their steps by
path: the loop first; run alone, this module bootstraps a champion itself):

* the gateway's processes are ``kill -9``-ed under steady load: the restart policy brings it back
  and every acknowledged request (a 200) is in the prediction log, exactly once per row (the
  gateway spools before answering and drains the spool on restart);
* the scheduler's processes are ``kill -9``-ed with DAG runs queued: compose restarts it and the
  runs (and the asset-triggered runs they cause) finish;
* Postgres restarts while a training run trains: the run ends successful (task retries where
  needed) with exactly one new model version, and no published batch is lost;
* MLflow is stopped for ~40 s as a canary release starts: the release retries through it and
  ends promoted or cleanly rolled back, while the champion answers every request.

A ``docker kill`` counts as a manual stop for the ``unless-stopped`` restart policy (the engine
leaves the container down), so a crash is simulated the way a crash happens: every process of
the container is SIGKILLed from inside it, the container exits 137 and the policy restarts it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .conftest import StackHandle
from .helpers import AirflowAPI, E2EError, MlflowAPI, docker, exec_json, wait_for
from .test_stack import BATCHES, CANARY, DAGS, MONITOR_WINDOW, QUALITY, TRAINING, _delete_scheduled_runs

pytestmark = [pytest.mark.e2e, pytest.mark.edges]
STEPS_IN_FILE_ORDER = True


class Faults:
    """State handed from the training fault to the canary fault (one stack per session)."""

    new_version: str | None = None
    challenger: str | None = None


@pytest.fixture(scope="module")
def airflow(stack: StackHandle) -> AirflowAPI:
    return AirflowAPI(stack.url("AIRFLOW_PORT"), "admin", stack.env["AIRFLOW_ADMIN_PASSWORD"])


@pytest.fixture(scope="module")
def mlflow_api(stack: StackHandle) -> MlflowAPI:
    return MlflowAPI(stack.url("MLFLOW_PORT"), "admin", stack.env["MLFLOW_AUTH_ADMIN_PASSWORD"])


@pytest.fixture(scope="module")
def model_name(stack: StackHandle) -> str:
    return str(
        exec_json(
            stack.container("airflow-worker"),
            "import json; from pipelines.config import load_settings; "
            "print(json.dumps(load_settings().mlflow.registered_model))",
        )
    )


@pytest.fixture(scope="module")
def champion(airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str) -> str:
    """The serving champion; bootstraps one through the real loop when this module runs alone."""
    current = _alias(mlflow_api, model_name, "champion")
    if current is None:
        published = set(_published(stack))
        for b in BATCHES:
            if b not in published:
                airflow.trigger(QUALITY, {"batch_id": b}, run_id=f"e2e_faults_quality__{b}")
        for dag_id in DAGS:
            airflow.unpause(dag_id)

        def released() -> str | None:
            _delete_scheduled_runs(airflow, (QUALITY, "automate_drift_monitoring"))
            return _alias(mlflow_api, model_name, "champion")

        current = wait_for("a bootstrap release (quality -> training -> canary)", released, timeout=1800)
    _settle(airflow, (TRAINING, CANARY), timeout=900)
    gateway = stack.url("GATEWAY_PORT")
    wait_for(
        f"the gateway to serve champion v{current}",
        lambda: str(httpx.get(f"{gateway}/health", timeout=10).json().get("champion")) == str(current),
        timeout=300,
    )
    return str(current)


# ------------------------------------------------------------------------------- helpers
def _alias(mlflow_api: MlflowAPI, name: str, alias: str) -> str | None:
    """The version behind ``alias``, None while unset (MLflow answers 400 "alias ... not found"
    when the alias, or the whole registered model, does not exist yet)."""
    try:
        return mlflow_api.alias_version(name, alias)
    except E2EError as exc:
        if "not found" in str(exc):
            return None
        raise


def _published(stack: StackHandle) -> list[str]:
    return list(
        exec_json(
            stack.container("airflow-worker"),
            "import json; from pipelines.config import load_settings; from pipelines.data.validated import "
            "list_published; print(json.dumps(list_published(load_settings())))",
        )
    )


def _settle(airflow: AirflowAPI, dag_ids: tuple[str, ...], timeout: float) -> None:
    """Wait until no run of ``dag_ids`` is queued or running (a fault must not hit another story)."""
    wait_for(
        f"no active run of {dag_ids}",
        lambda: not [r for d in dag_ids for r in airflow.runs(d) if r["state"] in ("queued", "running")],
        timeout=timeout,
        interval=5,
    )


def _asset_training_runs(airflow: AirflowAPI) -> list[dict[str, Any]]:
    return [r for r in airflow.runs(TRAINING) if r["run_type"] == "asset_triggered"]


def _crash(container: str) -> None:
    """SIGKILL every process of ``container`` (``kill -9 -1`` spares only init and the caller):
    the container exits 137 as on a crash, so its restart policy applies (``docker kill`` would
    count as a manual stop)."""
    docker("exec", "-u", "0", container, "sh", "-c", "kill -9 -1", check=False, timeout=60)


def _restart_count(container: str) -> int:
    return int(docker("inspect", "-f", "{{.RestartCount}}", container).stdout.strip())


def _psql(stack: StackHandle, database: str, sql: str) -> list[list[str]]:
    out = docker(
        "exec", stack.container("postgres"), "psql", "-U", "postgres", "-d", database, "-tA", "-F", "\t",
        "-c", sql,
    ).stdout  # fmt: skip
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def _logged_rows(stack: StackHandle, prefix: str) -> Counter[str]:
    """Rows per request id in the prediction log, for the request ids that start with ``prefix``."""
    assert prefix.isalnum(), prefix  # interpolated into SQL below
    rows = _psql(
        stack,
        "mlops",
        f"SELECT request_id, count(*) FROM predictions WHERE request_id LIKE '{prefix}%' GROUP BY 1",
    )
    return Counter({rid: int(n) for rid, n in rows})


def _sample_rows(stack: StackHandle, n: int = 5) -> dict[str, Any]:
    return dict(
        exec_json(
            stack.container("airflow-worker"),
            "import json; from pipelines.config import load_settings; from pipelines.data.validated import "
            f"load_batches; s = load_settings(); df = load_batches(s, ['{MONITOR_WINDOW}']).head({n}); "
            "print(df[s.dataset.features.all].to_json(orient='split', index=False, date_format='iso'))",
        )
    )


@dataclass
class Outcome:
    t: float
    request_id: str
    status: int | None  # None: no answer (connection refused/reset, timeout)
    variant: str = ""
    version: str = ""


@dataclass
class SteadyLoad:
    """Steady scoring traffic from threads; every request carries its own ``X-Request-Id``.

    A 200 is an acknowledgement: that request's rows must be in the prediction log.
    """

    url: str
    rows: dict[str, Any]
    prefix: str
    threads: int = 2
    pause_s: float = 0.05
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        body = {"dataframe_split": {"columns": self.rows["columns"], "data": self.rows["data"]}}
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                rid = f"{self.prefix}{uuid.uuid4().hex}"
                try:
                    r = client.post(f"{self.url}/invocations", json=body, headers={"X-Request-Id": rid})
                    out = Outcome(
                        time.monotonic(),
                        rid,
                        r.status_code,
                        r.headers.get("X-Model-Variant", ""),
                        r.headers.get("X-Model-Version", ""),
                    )
                except httpx.HTTPError:
                    out = Outcome(time.monotonic(), rid, None)
                    time.sleep(0.5)  # the gateway is down: do not spin
                with self._lock:
                    self.outcomes.append(out)
                time.sleep(self.pause_s)

    def __enter__(self) -> SteadyLoad:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for w in self._workers:
            w.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=30)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def acked(self) -> set[str]:
        return {o.request_id for o in self.snapshot() if o.status == 200}

    def ok_after(self, t: float) -> int:
        return sum(1 for o in self.snapshot() if o.status == 200 and o.t > t)


def _wait_logged(stack: StackHandle, load: SteadyLoad, timeout: float = 120) -> tuple[Counter[str], set[str]]:
    """Wait until the prediction log holds every acknowledged request; return what it holds."""
    acked = load.acked()
    per_request = len(load.rows["data"])
    logged: Counter[str] = Counter()

    def complete() -> bool:
        nonlocal logged
        logged = _logged_rows(stack, load.prefix)
        return all(logged[rid] >= per_request for rid in acked)

    with contextlib.suppress(E2EError):  # the caller's assertion names what is missing
        wait_for("the prediction log to hold every acknowledged request", complete, timeout=timeout)
    missing = {rid for rid in acked if logged[rid] < per_request}
    return logged, missing


# ------------------------------------------------------------------------------- the faults
def test_gateway_killed_under_load_loses_no_acknowledged_prediction(
    stack: StackHandle, champion: str
) -> None:
    gateway_url = stack.url("GATEWAY_PORT")
    gateway = stack.container("gateway")
    restarts = _restart_count(gateway)
    with SteadyLoad(gateway_url, _sample_rows(stack), prefix="e2efaultgw") as load:
        wait_for("steady load to be answered", lambda: load.ok_after(0) >= 50, timeout=120, interval=1)
        _crash(gateway)
        t_kill = time.monotonic()  # the exec returns once every process got its SIGKILL
        wait_for(
            "the gateway to come back (restart policy) and answer again",
            lambda: load.ok_after(t_kill) >= 50,
            timeout=240,
            interval=1,
        )
    outcomes = load.snapshot()
    ok_times = sorted(o.t for o in outcomes if o.status == 200)
    outage = max(b - a for a, b in itertools.pairwise(ok_times))  # longest silence
    assert _restart_count(gateway) > restarts, "the gateway container was not restarted by its policy"
    logged, missing = _wait_logged(stack, load)
    acked = load.acked()
    per_request = len(load.rows["data"])
    unanswered = [o for o in outcomes if o.status != 200]
    stack.figures.add("fault gateway kill: outage (s)", round(outage, 1))
    stack.figures.add(
        "fault gateway kill: requests acked / refused or unanswered / acked missing from log",
        f"{len(acked)} / {len(unanswered)} / {len(missing)}",
    )
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged requests not in the log: {sorted(missing)[:5]}"
    )
    duplicated = {rid: n for rid, n in logged.items() if n != per_request and rid in acked}
    assert not duplicated, f"acknowledged requests logged with a wrong row count: {duplicated}"
    assert all(o.status in (None, 200, 503) for o in unanswered), Counter(o.status for o in unanswered)
    assert str(httpx.get(f"{gateway_url}/health", timeout=10).json()["champion"]) == champion


def test_scheduler_killed_with_runs_queued_recovers_and_runs_finish(
    airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str, champion: str
) -> None:
    versions_before = len(mlflow_api.model_versions(model_name))
    scheduler = stack.container("airflow-scheduler")
    restarts = _restart_count(scheduler)
    stamp = int(time.time())
    asset_runs_before = len(_asset_training_runs(airflow))
    # Re-validating published batches is idempotent; each run also emits a validated_batch event,
    # whose asset-triggered training run must be scheduled by the restarted scheduler too.
    batches = BATCHES[-2:]
    run_ids = [
        airflow.trigger(QUALITY, {"batch_id": b}, run_id=f"e2e_fault_sched_{stamp}__{b}") for b in batches
    ]
    t_kill = time.monotonic()
    _crash(scheduler)
    states = {r: airflow.run(QUALITY, r)["state"] for r in run_ids}
    wait_for(
        "the scheduler to be restarted by its policy",
        lambda: _restart_count(scheduler) > restarts and stack.containers("airflow-scheduler"),
        timeout=120,
        interval=2,
    )
    for run_id in run_ids:
        airflow.wait_run(QUALITY, run_id, timeout=600)
    took = time.monotonic() - t_kill
    # The restarted scheduler also turned the new asset events into training runs, which find a
    # champion and stop at should_train (a batch alone does not retrain).
    wait_for(
        "an asset-triggered training run after the quality runs, finished",
        lambda: (
            len(asset_runs := _asset_training_runs(airflow)) > asset_runs_before
            and all(r["state"] in ("success", "failed") for r in asset_runs)
        ),
        timeout=300,
        interval=5,
    )
    failed = [r["dag_run_id"] for r in _asset_training_runs(airflow) if r["state"] != "success"]
    assert not failed, airflow.failure_report(TRAINING, failed[0])
    _settle(airflow, (TRAINING, CANARY), timeout=300)
    stack.figures.add("fault scheduler kill: runs at the kill", states)
    stack.figures.add("fault scheduler kill: kill -> runs finished (s)", round(took))
    assert len(mlflow_api.model_versions(model_name)) == versions_before
    assert set(BATCHES) <= set(_published(stack))


def test_postgres_restarted_during_training_one_new_version(
    airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str, champion: str
) -> None:
    before = {str(v["version"]) for v in mlflow_api.model_versions(model_name)}
    # The new challenger must not start a default-steps canary on its own: the canary fault
    # below releases it with its own short steps. A paused DAG queues no asset event.
    airflow.json("PATCH", f"/dags/{CANARY}", json={"is_paused": True})
    run_id = airflow.trigger(
        TRAINING,
        # Another window than the champion's: new data, so a new version (the same data would
        # reuse the champion's run).
        {"reason": "e2e fault: postgres restart", "window": "2013-02,2013-03", "holdout": "2013-04"},
        run_id=f"e2e_fault_pg__{int(time.time())}",
    )
    wait_for(
        "the training run's train task to run",
        lambda: (airflow.task_instances(TRAINING, run_id).get("train") or {}).get("state") == "running",
        timeout=600,
        interval=1,
    )
    postgres = stack.container("postgres")
    t0 = time.monotonic()
    docker("restart", "-t", "5", postgres, timeout=120)
    wait_for(
        "postgres to accept connections again",
        lambda: docker("exec", postgres, "pg_isready", "-U", "postgres", check=False).returncode == 0,
        timeout=120,
        interval=0.5,
    )
    outage = time.monotonic() - t0
    run = airflow.wait_run(TRAINING, run_id, timeout=1200)
    tis = airflow.task_instances(TRAINING, run_id)
    tries = {tid: int(ti["try_number"]) for tid, ti in tis.items()}
    versions = mlflow_api.model_versions(model_name)
    new = [v for v in versions if str(v["version"]) not in before]
    stack.figures.add("fault postgres restart: outage (s)", round(outage, 1))
    stack.figures.add("fault postgres restart: task tries", tries)
    assert run["state"] == "success"
    assert len(new) == 1, f"expected one new version, got {[(v['version'], v.get('run_id')) for v in new]}"
    run_ids = [v.get("run_id") for v in versions]
    assert len(run_ids) == len(set(run_ids)), f"a training run registered twice: {run_ids}"
    assert set(BATCHES) <= set(_published(stack)), "a published batch was lost"
    Faults.new_version = str(new[0]["version"])
    Faults.challenger = _alias(mlflow_api, model_name, "challenger")


def test_mlflow_stopped_during_canary_release_champion_keeps_serving(
    airflow: AirflowAPI, stack: StackHandle, mlflow_api: MlflowAPI, model_name: str, champion: str
) -> None:
    if Faults.challenger is None:
        # Run alone (or the gate rejected the fault run's candidate): train one first.
        test_postgres_restarted_during_training_one_new_version(
            airflow, stack, mlflow_api, model_name, champion
        )
    if Faults.challenger is None:
        pytest.skip(f"the evaluation gate rejected v{Faults.new_version}: no challenger to release")
    version = Faults.challenger
    gateway_url = stack.url("GATEWAY_PORT")
    airflow.request("DELETE", f"/dags/{CANARY}/assets/queuedEvents")
    run_id = airflow.trigger(
        CANARY, {"version": version, "steps": [100]}, run_id=f"e2e_fault_mlflow__{int(time.time())}"
    )
    mlflow = stack.container("mlflow")
    with SteadyLoad(gateway_url, _sample_rows(stack), prefix="e2efaultml", threads=2, pause_s=0.1) as load:
        airflow.unpause(CANARY)
        wait_for(
            "the canary run to start",
            lambda: airflow.run(CANARY, run_id)["state"] == "running",
            timeout=300,
            interval=1,
        )
        t0 = time.monotonic()
        docker("stop", "-t", "5", mlflow, timeout=120)
        time.sleep(40)
        docker("start", mlflow, timeout=120)
        wait_for(
            "MLflow to answer again",
            lambda: httpx.get(f"{stack.url('MLFLOW_PORT')}/health", timeout=5).status_code == 200,
            timeout=300,
            interval=1,
        )
        outage = time.monotonic() - t0
        run = wait_for(
            f"canary run {run_id} to end",
            lambda: (r := airflow.run(CANARY, run_id))["state"] in ("success", "failed") and r,
            timeout=1200,
            interval=5,
        )
    tis = airflow.task_instances(CANARY, run_id)
    tries = {tid: (ti["state"], int(ti["try_number"])) for tid, ti in tis.items()}
    outcomes = load.snapshot()
    failed = [o for o in outcomes if o.status != 200]
    served = Counter(f"{o.variant} v{o.version}" for o in outcomes if o.status == 200)
    stack.figures.add("fault mlflow stop: outage (s)", round(outage))
    stack.figures.add("fault mlflow stop: canary run", f"{run['state']} {tries}")
    stack.figures.add("fault mlflow stop: answers / failed requests", f"{dict(served)} / {len(failed)}")
    assert not failed, f"{len(failed)} requests failed: {Counter(o.status for o in failed)}"
    _, missing = _wait_logged(stack, load)
    assert not missing, f"{len(missing)} acknowledged requests not in the log"
    state = httpx.get(f"{gateway_url}/health", timeout=10).json()
    registry_champion = _alias(mlflow_api, model_name, "champion")
    if run["state"] == "success":
        assert registry_champion == version, (registry_champion, version)
    else:  # a clean rollback: the old champion kept, the challenger out of traffic and alias-less
        assert registry_champion == champion, airflow.failure_report(CANARY, run_id)
        assert _alias(mlflow_api, model_name, "challenger") is None, airflow.failure_report(CANARY, run_id)
    assert str(state["champion"]) == registry_champion, state
    assert not state.get("canary"), f"a canary is still in traffic after the run: {state}"
    versions = mlflow_api.model_versions(model_name)
    assert len({v.get("run_id") for v in versions}) == len(versions), "a training run registered twice"
