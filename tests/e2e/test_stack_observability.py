"""End to end through the compose stack's observability: Prometheus, the Pushgateway, Alertmanager.

Runs on the session stack after the loop of ``test_stack.py`` (both modules set
``STEPS_IN_FILE_ORDER``; the conftest keeps their steps in path order, and ``test_stack.py`` sorts
first), so the loop's DAG runs have pushed their decisions and a champion is served. It proves:

* Prometheus' UI/API asks for the basic-auth login ``make env`` generated, and scrapes the
  gateway, the Pushgateway, Alertmanager and itself;
* the loop's decisions (data-gate verdicts, task outcomes, the evaluation gate, the release) are
  in Prometheus through the Pushgateway;
* a batch the real gate rejects -> its metric in Prometheus -> ``DataBatchRejected`` at the alert
  webhook, through Alertmanager;
* injected gateway errors (the gateway is told to serve a registered model that raises) ->
  ``GatewayErrorBudgetBurnFast`` at the webhook. The served champion is restored afterwards.

The webhook (``MLOPS_ALERT_WEBHOOK_URL`` of the stack, set by the conftest) is a receiver
container on the stack's network (``tests/support/alert_receiver.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import REPO, StackHandle
from .helpers import docker, exec_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.observability]
STEPS_IN_FILE_ORDER = True

RECEIVER_ALIAS = "alert-receiver"  # MLOPS_ALERT_WEBHOOK_URL in conftest.env_file
REJECTED_BATCH = "2013-11"  # no step of the loop touches it
RECEIVER_IMAGE = "python:3.11-slim-bookworm"


@pytest.fixture(scope="module")
def receiver(stack: StackHandle) -> Iterator[str]:
    """The alert webhook: a container on the stack's network, named as the stack's env says."""
    name = f"{stack.stack.project}-alert-receiver"
    docker("rm", "-f", name, check=False)
    script = REPO / "tests" / "support" / "alert_receiver.py"
    docker(
        "run", "-d", "--name", name, "--network", f"{stack.stack.project}_default",
        "--network-alias", RECEIVER_ALIAS, "-v", f"{script}:/receiver.py:ro",
        RECEIVER_IMAGE, "python", "/receiver.py", "8080",
    )  # fmt: skip
    yield name
    docker("rm", "-f", name, check=False)


def _posts(receiver: str) -> list[dict[str, Any]]:
    proc = docker(
        "exec", receiver, "python", "-c",
        "import urllib.request as u; "
        "print(u.urlopen('http://127.0.0.1:8080/posts', timeout=10).read().decode())",
    )  # fmt: skip
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def _firing(receiver: str, alertname: str) -> list[dict[str, Any]]:
    return [
        a
        for p in _posts(receiver)
        for a in (p["body"] or {}).get("alerts", [])
        if a.get("labels", {}).get("alertname") == alertname and a.get("status") == "firing"
    ]


class Prometheus:
    def __init__(self, stack: StackHandle) -> None:
        self.url = stack.url("PROMETHEUS_PORT")
        self.auth = ("admin", stack.env["PROMETHEUS_ADMIN_PASSWORD"])

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, auth=self.auth, timeout=30)
        assert r.status_code == 200, f"{promql}: {r.status_code} {r.text[:300]}"
        return list(r.json()["data"]["result"])


@pytest.fixture(scope="module")
def prometheus(stack: StackHandle) -> Prometheus:
    return Prometheus(stack)


def test_prometheus_requires_its_login_and_scrapes_every_target(
    stack: StackHandle, prometheus: Prometheus
) -> None:
    assert httpx.get(f"{prometheus.url}/api/v1/targets", timeout=30).status_code == 401
    assert httpx.get(f"{prometheus.url}/-/healthy", auth=("admin", "wrong"), timeout=30).status_code == 401

    def all_up() -> dict[str, float] | None:
        up = {r["metric"]["job"]: float(r["value"][1]) for r in prometheus.query("up")}
        return (
            up
            if set(up) >= {"gateway", "pushgateway", "alertmanager", "prometheus"}
            and all(v == 1 for v in up.values())
            else None
        )

    up = wait_for("every scrape target up", all_up, timeout=120)
    assert up is not None
    mem = stack.stack.stats()
    services = ("prometheus", "pushgateway", "alertmanager")
    extra = {k: round(v) for k, v in mem.items() if any(s in k for s in services)}
    stack.figures.add("observability services memory (MiB)", extra)
    stack.figures.add("observability services memory total (MiB)", sum(extra.values()))


def test_the_loop_decisions_reached_prometheus_through_the_pushgateway(prometheus: Prometheus) -> None:
    verdicts = prometheus.query('mlops_quality_batch_status{status=~"passed|passed_with_warnings"} == 1')
    assert {r["metric"]["batch"] for r in verdicts} >= {"2013-01", "2013-02", "2013-03", "2013-04"}, verdicts
    assert all(r["metric"]["job"] == "mlops_quality" for r in verdicts)
    tasks = prometheus.query("mlops_airflow_task_last_success")
    assert {r["metric"]["dag_id"] for r in tasks} >= {"standardize_data_quality", "automate_training"}, tasks
    assert prometheus.query("mlops_training_gate_passed == 1"), "no evaluation-gate verdict pushed"
    assert prometheus.query('mlops_canary_release_outcome{outcome="promoted"} == 1'), "no promotion pushed"


def test_rejected_batch_metric_and_alert_reach_the_webhook(
    stack: StackHandle, prometheus: Prometheus, receiver: str
) -> None:
    out = exec_json(
        stack.container("airflow-worker"),
        "import json; from pathlib import Path; from pipelines.config import load_settings; "
        "from pipelines.data.landing import land_file; from pipelines.quality import BatchRejected; "
        "from pipelines.quality.steps import validate; s = load_settings(); "
        "p = s.paths.root / 'incoming' / 'e2e-broken-batch.csv'; "
        "p.parent.mkdir(parents=True, exist_ok=True); "
        "p.write_text('not_a_column,nor_this\\n1,2\\n3,4\\n'); "
        f"landed = land_file(s, '{REJECTED_BATCH}', p, origin='e2e fault injection')\n"
        "try:\n    validate(landed)\n    print(json.dumps({'rejected': False}))\n"
        "except BatchRejected as exc:\n    print(json.dumps({'rejected': True, 'message': str(exc)[:300]}))",
    )
    assert out["rejected"] is True, out
    query = f'mlops_quality_batch_status{{batch="{REJECTED_BATCH}",status="rejected"}} == 1'
    wait_for("the rejected batch's metric in Prometheus", lambda: prometheus.query(query), timeout=90)
    alerts = wait_for(
        "DataBatchRejected at the webhook", lambda: _firing(receiver, "DataBatchRejected"), timeout=180
    )
    mine = [a for a in alerts if a["labels"].get("batch") == REJECTED_BATCH]
    assert mine, alerts
    assert mine[0]["labels"]["severity"] == "warning"
    assert REJECTED_BATCH in mine[0]["annotations"]["summary"]


_RAISING_MODEL = """
import json
import mlflow, mlflow.sklearn
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from pipelines.config import load_settings
from pipelines.data.validated import load_batches
from pipelines.training.tracking import configure_tracking

def fault(x):
    raise RuntimeError("e2e fault injection: this model raises on every request")

s = load_settings()
name = s.mlflow.registered_model
configure_tracking(s)
champion = MlflowClient().get_model_version_by_alias(name, "champion")
base = mlflow.sklearn.load_model(f"models:/{name}/{champion.version}")
info = mlflow.models.get_model_info(f"models:/{name}/{champion.version}")
x = load_batches(s, ["2013-04"]).head(5)[list(s.dataset.features.all)]
step = FunctionTransformer(fault).fit(x)
with mlflow.start_run(run_name="e2e fault injection: raising model"):
    logged = mlflow.sklearn.log_model(
        Pipeline([("fault", step), ("model", base)]), name="model", signature=info.signature,
        serialization_format="cloudpickle", pyfunc_predict_fn="predict_proba",
        registered_model_name=name,
    )
print(json.dumps({"version": str(logged.registered_model_version), "champion": str(champion.version)}))
"""


def test_injected_gateway_errors_alert_reaches_the_webhook(
    stack: StackHandle, prometheus: Prometheus, receiver: str
) -> None:
    versions = exec_json(stack.container("airflow-worker"), _RAISING_MODEL, timeout=600)
    gateway = stack.url("GATEWAY_PORT")
    admin = {"Authorization": f"Bearer {stack.env['MLOPS_GATEWAY_ADMIN_TOKEN']}"}
    rows = exec_json(
        stack.container("airflow-worker"),
        "import json; from pipelines.config import load_settings; from pipelines.data.validated import "
        "load_batches; s = load_settings(); df = load_batches(s, ['2013-04']).head(5); "
        "print(df[s.dataset.features.all].to_json(orient='split', index=False, date_format='iso'))",
    )
    body = {"dataframe_split": {"columns": rows["columns"], "data": rows["data"]}}
    r = httpx.post(
        f"{gateway}/admin/champion",
        json={"version": versions["version"], "reason": "e2e: inject gateway errors"},
        headers=admin,
        timeout=300,
    )
    assert r.status_code == 200, r.text[:500]
    try:
        t0 = time.monotonic()
        statuses: list[int] = []
        while not _firing(receiver, "GatewayErrorBudgetBurnFast"):
            assert time.monotonic() - t0 < 420, (
                f"GatewayErrorBudgetBurnFast did not reach the webhook in 7 min; statuses {set(statuses)}; "
                f"ratio {prometheus.query('gateway:request_errors:ratio_rate5m')}"
            )
            for _ in range(10):
                statuses.append(httpx.post(f"{gateway}/invocations", json=body, timeout=60).status_code)
            time.sleep(3)
        assert statuses and all(s >= 500 for s in statuses), set(statuses)
        stack.figures.add("injected errors -> alert at the webhook (s)", round(time.monotonic() - t0))
        (alert,) = _firing(receiver, "GatewayErrorBudgetBurnFast")[:1]
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["slo"] == "availability"
        errors = prometheus.query('sum(gateway_errors_total{variant="champion"})')
        assert errors and float(errors[0]["value"][1]) >= 10, errors
    finally:
        restore = httpx.post(
            f"{gateway}/admin/champion",
            json={"version": versions["champion"], "reason": "e2e: fault injection over"},
            headers=admin,
            timeout=300,
        )
        assert restore.status_code == 200, restore.text[:500]
    ok = httpx.post(f"{gateway}/invocations", json=body, timeout=60)
    assert ok.status_code == 200 and ok.headers.get("X-Model-Version") == versions["champion"], ok.text[:300]
