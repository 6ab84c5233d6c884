"""No secret leaves: known secret values in the environment, every surface run, every byte scanned.

The environment carries one distinct, recognisable value per secret the project knows (admin and
labels tokens, the prediction-log and MLflow passwords, the webhook URL, Airflow's keys), the
prediction-log URL embeds its password and points at a database that is down (so the write
path fails and logs, the case that leaked the DSN 53 times in 10 s). Then the surfaces run:

* a real gateway process: ``/version``, ``/health``, ``/metrics``, ``/admin/state``, an admin
  error, scoring (whose log writes fail), a label write (refused: the database is down), and a
  clean stop (what it could not write is reported);
* the CLI: ``mlops serving status``, ``mlops serving traffic`` (requests and label feedback
  with the labels token), ``mlops config check``;
* the reports: ``mlops optimize scorecard`` (text and HTML) and a JSON event record.

The test fails if any secret string appears in any HTTP answer, any line the processes printed,
or any file under the runtime root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gateway_process import GatewayProcess, running_gateway
from support.serving import World, build_world

from pipelines.serving.launcher import free_port

pytestmark = [pytest.mark.edges, pytest.mark.filterwarnings("ignore:X does not have valid feature names")]

PORTS = (18340, 18349)
SECRETS = {
    "MLOPS_GATEWAY_ADMIN_TOKEN": "adm1n-T0ken-7f3a9c",
    "MLOPS_LABELS_TOKEN": "lab3ls-T0ken-2b8e41",
    "MLOPS_DB_PASSWORD": "pgPassw0rd-9d2c7e",
    "MLFLOW_TRACKING_PASSWORD": "mlfl0wPass-5a1f3b",
    "MLOPS_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hooks/T0K3N-wh-8c4d2a",
    "AIRFLOW__CORE__FERNET_KEY": "fern3tKey-0e6b5d",
    "EVIDENTLY_SECRET": "ev1dently-S3cret-4f7a",
}
# What a leak looks like: each value, and the webhook's secret path alone.
NEEDLES = [*SECRETS.values(), "T0K3N-wh-8c4d2a"]
DB_URL = f"postgresql+psycopg2://mlops:{SECRETS['MLOPS_DB_PASSWORD']}@127.0.0.1:9/mlops"


def _leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.fixture(scope="module")
def world(session_root: Path, settings: Any, published_batches: list[dict[str, Any]]) -> World:
    return build_world(session_root, settings, published_batches)


@pytest.fixture(scope="module")
def stack(world: World, session_root: Path) -> Iterator[tuple[GatewayProcess, Any, Path]]:
    root = session_root / "secrets"
    env = {
        **SECRETS,
        "MLOPS__SERVING__PREDICTION_LOG_URL": DB_URL,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    with running_gateway(world, root, free_port(*PORTS), **env) as (gw, settings):
        yield gw, settings, root


def _cli(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        check=False,
    )
    return f"$ mlops {' '.join(args)} (exit {done.returncode})\n{done.stdout}\n{done.stderr}"


def test_no_secret_in_any_answer_line_or_file(stack: tuple[GatewayProcess, Any, Path], world: World) -> None:
    from pipelines.core.observability import record_event
    from pipelines.serving.traffic import batch_requests, newest_batch

    gw, settings, root = stack
    admin = {"authorization": f"Bearer {SECRETS['MLOPS_GATEWAY_ADMIN_TOKEN']}"}
    labels = {"authorization": f"Bearer {SECRETS['MLOPS_LABELS_TOKEN']}"}
    out: list[str] = []
    surfaces: list[str] = []

    def answer(name: str, resp: Any) -> Any:
        surfaces.append(name)
        out.append(f"{name}: {resp.status_code} {resp.text}")
        return resp

    # The gateway: every read endpoint, an admin error, scoring with a failing log, a label write.
    version = answer("GET /version", gw.http.get("/version")).json()
    assert version["instance"]["prediction_log"] == "postgresql+psycopg2://mlops:***@127.0.0.1:9/mlops"
    answer("GET /metrics", gw.http.get("/metrics"))
    answer("GET /admin/state", gw.http.get("/admin/state", headers=admin))
    err = answer(
        "POST /admin/canary (unknown version)",
        gw.http.post("/admin/canary", json={"version": "424242", "weight": 5}, headers=admin),
    )
    assert err.status_code == 422
    records, label_records = batch_requests(settings, newest_batch(settings))
    for r in records[:30]:
        answer("POST /invocations", gw.http.post("/invocations", json={"dataframe_records": [r]}))
    lab = answer(
        "POST /labels (database down)",
        gw.http.post("/labels", json={"labels": label_records[:5]}, headers=labels),
    )
    assert lab.status_code == 503 and "send them again" in lab.json()["message"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the writer has tried (and failed) to reach the database
        health = gw.http.get("/health").json()
        if (health.get("prediction_log") or {}).get("last_error"):
            break
        time.sleep(0.5)
    answer("GET /health", gw.http.get("/health"))
    assert (gw.http.get("/health").json().get("prediction_log") or {}).get("last_error"), (
        "no write failure seen"
    )

    # The CLI and the reports, in this environment.
    out.append(_cli("serving", "status"))
    traffic = _cli("serving", "traffic", "--requests", "20", "--label-delay-s", "0")
    assert "(exit 0)" in traffic, traffic[-2000:]
    out.append(traffic)
    out.append(_cli("config", "check"))
    out.append(_cli("optimize", "scorecard"))
    surfaces += [
        "mlops serving status",
        "mlops serving traffic",
        "mlops config check",
        "mlops optimize scorecard",
    ]
    record_event(
        settings.paths.events,
        "secret_probe",
        "probe",
        url=DB_URL,
        tracking=f"http://admin:{SECRETS['MLFLOW_TRACKING_PASSWORD']}@mlflow",
    )
    surfaces.append("record_event")

    gw.stop()  # a clean stop reports what the log writer could not write
    out.append(gw.logs(tail=10**7))
    surfaces.append("gateway process output")

    leaks = {name: _leaks(text) for name, text in zip(range(len(out)), out, strict=True) if _leaks(text)}
    assert not leaks, {k: (v, out[k][:1500]) for k, v in leaks.items()}
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 3, files
    leaked_files = {
        str(p): found for p in files if (found := _leaks(p.read_bytes().decode("utf-8", "replace")))
    }
    assert not leaked_files, leaked_files
    # The surfaces really said something about the things whose secrets they hold.
    text = "\n".join(out)
    assert "postgresql+psycopg2://mlops:***@127.0.0.1:9/mlops" in text
    assert "scorecard" in text.lower()
    print(
        f"secret_scan_surfaces={len(set(surfaces))} files_scanned={len(files)} secrets={len(NEEDLES)} leaks=0"
    )
    print("surfaces: " + ", ".join(dict.fromkeys(surfaces)))
