"""Observability: alert rules under promtool, Prometheus / Alertmanager / web configs, the
dashboard's queries, and the live path injected fault -> Prometheus -> Alertmanager -> webhook.

promtool and amtool run from the stack's own images (``docker run --rm``), or from local binaries
when ``promtool`` / ``amtool`` are on PATH; without either the tests skip and say why (``.ci/run``
always has the engine).

The live test runs the three real services of the compose stack (same images, same
``prometheus.yml`` but for the target addresses, same rule files and Alertmanager template) on the
host network, bound to loopback, next to a real in-process gateway whose champion raises on every
request, and the real quality gate rejecting a broken batch. It proves the path end to end: the
gateway's error counter and the pushed rejection each become an alert that the webhook receives.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytestmark = pytest.mark.observability

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "monitoring" / "prometheus"
RULES_DIR = PROM_DIR / "rules"
DASHBOARD = REPO / "monitoring" / "grafana" / "mlops-operations.json"
PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.25.0"
PUSHGATEWAY_IMAGE = "prom/pushgateway:v1.5.1"


def _engine() -> tuple[bool, str]:
    if not shutil.which("docker"):
        return False, "the docker CLI is not installed"
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return False, f"no Docker engine answers `docker info`: {probe.stderr.strip()[:200]}"
    return True, ""


def _tool(name: str, image: str, args: list[str], mounts: dict[Path, str], shell: str | None = None) -> str:
    """Run promtool/amtool (a local binary if on PATH, else in ``image``); its output; fails on rc != 0."""
    local = shutil.which(name)
    if local and shell is None:
        proc = subprocess.run([local, *args], capture_output=True, text=True, cwd=next(iter(mounts), REPO))
    else:
        ok, why = _engine()
        if not ok:
            pytest.skip(f"{name} is not installed and {why}")
        cmd = ["docker", "run", "--rm"]
        for src, dst in mounts.items():
            cmd += ["-v", f"{src}:{dst}:ro"]
        if shell is not None:
            cmd += ["--entrypoint", "/bin/sh", image, "-c", shell]
        else:
            cmd += ["-w", next(iter(mounts.values())), "--entrypoint", f"/bin/{name}", image, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{name} {' '.join(args) or shell} failed (rc {proc.returncode}):\n{out}"
    return out


def _alert_names() -> set[str]:
    names = set()
    for f in RULES_DIR.glob("*.rules.yml"):
        for group in yaml.safe_load(f.read_text())["groups"]:
            names |= {r["alert"] for r in group["rules"] if "alert" in r}
    return names


# ------------------------------------------------------------------------------- rules
def test_every_alert_rule_passes_its_promtool_unit_tests() -> None:
    tests = sorted(p.name for p in RULES_DIR.glob("*.test.yml"))
    out = _tool("promtool", PROMETHEUS_IMAGE, ["test", "rules", *tests], {RULES_DIR: "/rules"})
    assert out.count("SUCCESS") == len(tests), out


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    """A rule tested only where it fires could fire always; one tested only silent could never fire."""
    fires: set[str] = set()
    silent: set[str] = set()
    for f in RULES_DIR.glob("*.test.yml"):
        for case in yaml.safe_load(f.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = _alert_names()
    assert len(names) >= 17
    assert not names - fires, f"no test where these fire: {sorted(names - fires)}"
    assert not names - silent, f"no test where these stay silent: {sorted(names - silent)}"
    assert not (fires | silent) - names, f"tests name unknown alerts: {sorted((fires | silent) - names)}"


def test_prometheus_config_and_web_config_are_valid(tmp_path: Path) -> None:
    """The entrypoint renders the web config from `make env`'s hash; promtool accepts both files."""
    values = _make_env_values(tmp_path)
    shell = (
        f"PROMETHEUS_ADMIN_PASSWORD='{values['PROMETHEUS_ADMIN_PASSWORD']}' "
        f"PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64='{values['PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64']}' "
        "sh /etc/mlops/prometheus/prometheus-entrypoint.sh --render-only && "
        "promtool check web-config /tmp/prometheus-web/web.yml && "
        "promtool check config /etc/mlops/prometheus/prometheus.yml"
    )
    out = _tool("promtool", PROMETHEUS_IMAGE, [], {PROM_DIR: "/etc/mlops/prometheus"}, shell=shell)
    assert "2 rule files found" in out and "is valid prometheus config file" in out, out
    assert "web.yml SUCCESS" in out, out


def test_alertmanager_config_is_valid_with_and_without_a_webhook() -> None:
    for url in ("http://receiver:8080/hooks/mlops?a=1&b=2", ""):
        shell = (
            f"MLOPS_ALERT_WEBHOOK_URL='{url}' "
            "sh /etc/mlops/prometheus/alertmanager-entrypoint.sh --render-only"
            " && amtool check-config /tmp/alertmanager-config/alertmanager.yml"
            " && grep -E '^  receiver:|url:' /tmp/alertmanager-config/alertmanager.yml"
        )
        out = _tool("amtool", ALERTMANAGER_IMAGE, [], {PROM_DIR: "/etc/mlops/prometheus"}, shell=shell)
        assert "SUCCESS" in out, out
        if url:
            assert "receiver: webhook" in out and f'url: "{url}"' in out, out
        else:
            assert "receiver: none" in out, out


def _make_env_values(tmp_path: Path) -> dict[str, str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_obs_make_env", REPO / "scripts" / "make_env.py")
    assert spec is not None and spec.loader is not None
    make_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_env)
    path = tmp_path / "stack.env"
    assert make_env.main(["--output", str(path)]) == 0
    return dict(make_env.existing_values(path))


# ------------------------------------------------------------------------------- dashboard
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
}


def _dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def _metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers outside strings, matchers, ranges and label
    lists, not followed by ``(`` (a function) and not a keyword or a number."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", e):
        if m.group(2) or m.group(1) in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", m.group(1)):
            continue
        names.add(m.group(1))
    return names


def test_dashboard_queries_name_only_documented_metrics() -> None:
    metrics_md = (REPO / "monitoring" / "METRICS.md").read_text()
    documented = set(re.findall(r"^\|\s*`([A-Za-z_:][A-Za-z0-9_:]*)`", metrics_md, re.M))
    queries = _dashboard_queries()
    assert len(queries) >= 30
    for title, expr in queries:
        names = _metric_names(expr)
        unknown = {n for n in names if n not in documented and not any(d.startswith(n) for d in documented)}
        # a histogram's series (_bucket/_count) are documented under the family name
        unknown = {n for n in unknown if re.sub(r"_(bucket|count|sum)$", "", n) not in documented}
        assert not unknown, f"panel {title!r} queries undocumented metrics {sorted(unknown)}: {expr}"
    assert _metric_names('sum by (le) (rate(gateway_request_latency_seconds_bucket{le="0.25"}[5m]))') == {
        "gateway_request_latency_seconds_bucket"
    }


def test_dashboard_queries_parse_with_promtool(tmp_path: Path) -> None:
    """Each query becomes a recording rule; `promtool check rules` parses every expression."""
    grafana_vars = {"$__rate_interval": "5m", "$__range": "1d", "$__interval": "1m"}
    rules = []
    for i, (_, expr) in enumerate(_dashboard_queries()):
        for var, value in grafana_vars.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:panel_{i}", "expr": expr})
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    tmp_path.chmod(0o755)  # promtool runs as nobody in the image
    (tmp_path / "dashboard.rules.yml").chmod(0o644)
    out = _tool("promtool", PROMETHEUS_IMAGE, ["check", "rules", "dashboard.rules.yml"], {tmp_path: "/rules"})
    assert f"SUCCESS: {len(rules)} rules found" in out, out


# ------------------------------------------------------------------------------- live path
def _free_ports(n: int) -> list[int]:
    from support.webhook import free_port

    ports: list[int] = []
    import socket

    socks = []
    for _ in range(n):
        port = free_port()
        s = socket.socket()
        s.bind(("127.0.0.1", port))  # hold it so the next free_port() differs
        socks.append(s)
        ports.append(port)
    for s in socks:
        s.close()
    return ports


# How long the alerts the live test waits for must hold (``for``) in its copy of the rules. The live
# path proves fault -> metric -> rule -> Alertmanager -> webhook; how long each rule holds is proven
# on the unmodified files by promtool (test_every_alert_rule_passes_its_promtool_unit_tests), so the
# live test does not sit out the fast burn's 2 minutes (as it does not wait 15 s scrape intervals).
LIVE_HOLDS = {"GatewayErrorBudgetBurnFast": "10s"}


def _shorten_holds(rules_dir: Path, holds: dict[str, str]) -> None:
    """Set ``for`` of the named alerts in the rule files under ``rules_dir`` (a copy); every name
    must be found with a ``for`` to shorten, so a renamed rule cannot make this a silent no-op."""
    found = set()
    for f in rules_dir.glob("*.rules.yml"):
        doc = yaml.safe_load(f.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in holds and "for" in rule:
                    rule["for"] = holds[rule["alert"]]
                    found.add(rule["alert"])
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert found == set(holds), f"alerts to shorten not found with a `for`: {set(holds) - found}"


class MiniStack:
    """Pushgateway, Alertmanager and Prometheus as in docker-compose.yml, on the host's loopback."""

    def __init__(self, workdir: Path, gateway_port: int, webhook_url: str) -> None:
        self.suffix = uuid.uuid4().hex[:8]
        self.prom, self.am, self.pg = _free_ports(3)
        self.password = "obs-test-" + self.suffix
        cfg = workdir / "prometheus"
        shutil.copytree(PROM_DIR, cfg)
        text = (PROM_DIR / "prometheus.yml").read_text()
        for name, port in (("localhost:9090", self.prom), ("gateway:8088", gateway_port)):
            text = text.replace(name, f"127.0.0.1:{port}")
        text = text.replace("pushgateway:9091", f"127.0.0.1:{self.pg}").replace(
            "alertmanager:9093", f"127.0.0.1:{self.am}"
        )
        text = text.replace("scrape_interval: 15s", "scrape_interval: 2s").replace(
            "evaluation_interval: 15s", "evaluation_interval: 2s"
        )
        (cfg / "prometheus.yml").write_text(text)
        _shorten_holds(cfg / "rules", LIVE_HOLDS)
        cfg.chmod(0o755)
        self.names: list[str] = []
        mount = ["-v", f"{cfg}:/etc/mlops/prometheus:ro"]
        self._run("pushgateway", PUSHGATEWAY_IMAGE, [], [f"--web.listen-address=127.0.0.1:{self.pg}"])
        self._run(
            "alertmanager",
            ALERTMANAGER_IMAGE,
            [*mount, "-e", f"MLOPS_ALERT_WEBHOOK_URL={webhook_url}", "--entrypoint", "/bin/sh"],
            ["/etc/mlops/prometheus/alertmanager-entrypoint.sh", f"--web.listen-address=127.0.0.1:{self.am}"],
        )
        env = _bcrypt_env(self.password)
        self._run(
            "prometheus",
            PROMETHEUS_IMAGE,
            [*mount, *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], "--entrypoint", "/bin/sh"],
            ["/etc/mlops/prometheus/prometheus-entrypoint.sh", f"--web.listen-address=127.0.0.1:{self.prom}"],
        )

    def _run(self, service: str, image: str, opts: list[str], args: list[str]) -> None:
        name = f"mlops-obs-test-{service}-{self.suffix}"
        subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "host",
                "--tmpfs",
                "/tmp",
                *opts,
                image,
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        self.names.append(name)

    def prometheus(self, path: str, auth: bool = True) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{self.prom}{path}", auth=("admin", self.password) if auth else None, timeout=10
        )

    def logs(self) -> str:
        out = []
        for name in self.names:
            proc = subprocess.run(["docker", "logs", "--tail", "20", name], capture_output=True, text=True)
            out.append(f"--- {name}\n{proc.stdout}{proc.stderr}")
        return "\n".join(out)

    def close(self) -> None:
        for name in self.names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def _bcrypt_env(password: str) -> dict[str, str]:
    import base64
    import importlib.util

    spec = importlib.util.spec_from_file_location("_obs_make_env2", REPO / "scripts" / "make_env.py")
    assert spec is not None and spec.loader is not None
    make_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_env)
    hashed = base64.b64decode(make_env._bcrypt_b64(password)).decode()
    assert hashed.startswith("$2")
    return {
        "PROMETHEUS_ADMIN_PASSWORD": password,
        "PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64": base64.b64encode(hashed.encode()).decode(),
    }


def _wait(what: str, probe: Any, timeout: float, stack: MiniStack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{stack.logs()}")


@pytest.fixture(scope="module")
def world(session_root: Path, settings: Any, published_batches: list[dict[str, Any]]) -> Any:
    from support.serving import build_world

    return build_world(session_root, settings, published_batches)


@pytest.fixture
def raising_gateway(world: Any, session_root: Path) -> Iterator[tuple[Any, int]]:
    """An in-process gateway whose champion raises on every prediction (the injected fault)."""
    from support.serving import LABELS_TOKEN, TOKEN, module_env

    from pipelines.config import load_settings
    from pipelines.serving.app import create_app
    from pipelines.serving.routing import RoutingState, RoutingStore
    from pipelines.serving.server import ThreadedServer

    (port,) = _free_ports(1)
    with module_env(world, session_root / f"observability-{uuid.uuid4().hex[:6]}", port):
        s = load_settings()
        state = RoutingState(model_name=s.mlflow.registered_model, champion_version=world.versions.raising)
        state.record("set_champion", reason="observability test: a champion that raises")
        RoutingStore(s.paths.serving / "routing.json").save(state)
        app = create_app(s, admin_token=TOKEN, labels_token=LABELS_TOKEN, use_env_token=False)
        server = ThreadedServer(app, "127.0.0.1", port).start()
        try:
            yield s, port
        finally:
            server.stop()


def test_injected_faults_reach_the_webhook_through_prometheus_and_alertmanager(
    raising_gateway: tuple[Any, int],
    receiver: Any,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok, why = _engine()
    if not ok:
        pytest.skip(why)
    session_settings = settings  # its root holds the session's validated batches (the request rows)
    settings, gw_port = raising_gateway
    stack = MiniStack(tmp_path, gw_port, receiver.url)
    http = httpx.Client(base_url=f"http://127.0.0.1:{gw_port}", timeout=30)
    try:
        _wait("Prometheus to answer", lambda: _ready(stack), 90, stack)
        assert stack.prometheus("/api/v1/targets", auth=False).status_code == 401  # basic auth on

        # Fault 1: every prediction fails (the champion raises) -> the fast error-budget burn.
        from pipelines.serving.traffic import batch_requests, newest_batch

        records, _ = batch_requests(session_settings, newest_batch(session_settings))
        body = json.dumps({"dataframe_records": records[:20]}).encode()
        statuses: list[int] = []
        json_type = {"content-type": "application/json"}

        def send_traffic() -> None:
            # Steady failing traffic: rate() only sees errors counted after the first scrape.
            for _ in range(5):
                statuses.append(http.post("/invocations", content=body, headers=json_type).status_code)

        send_traffic()
        assert statuses and all(s >= 500 for s in statuses), statuses

        # Fault 2: a batch the real quality gate rejects -> its pushed metric and DataBatchRejected.
        monkeypatch.setenv("MLOPS__OBSERVABILITY__PUSHGATEWAY_URL", f"http://127.0.0.1:{stack.pg}")
        rejected = _reject_a_batch(tmp_path, monkeypatch)

        def metric_seen() -> bool:
            query = f'mlops_quality_batch_status{{status="rejected",batch="{rejected}"}} == 1'
            r = httpx.get(
                f"http://127.0.0.1:{stack.prom}/api/v1/query",
                params={"query": query},
                auth=("admin", stack.password),
                timeout=10,
            )
            return r.status_code == 200 and bool(r.json()["data"]["result"])

        _wait("the rejected batch's metric in Prometheus", metric_seen, 60, stack)

        def alerts_received() -> set[str]:
            send_traffic()
            names = set()
            for post in receiver.posts:
                for alert in post["body"].get("alerts", []):
                    if alert["status"] == "firing":
                        names.add(alert["labels"]["alertname"])
            return names if {"GatewayErrorBudgetBurnFast", "DataBatchRejected"} <= names else set()

        # GatewayErrorBudgetBurnFast holds LIVE_HOLDS (2 minutes in the shipped rules) before it fires.
        got = _wait("both alerts at the webhook", alerts_received, 240, stack)
        assert {"GatewayErrorBudgetBurnFast", "DataBatchRejected"} <= got
        batch_alerts = [
            a
            for p in receiver.posts
            for a in p["body"]["alerts"]
            if a["labels"]["alertname"] == "DataBatchRejected"
        ]
        assert batch_alerts[0]["labels"]["batch"] == rejected
        assert batch_alerts[0]["labels"]["dataset"] == settings.dataset.name
        assert receiver.posts[0]["body"]["version"] == "4"  # Alertmanager's webhook payload
        assert all(s >= 500 for s in statuses), set(statuses)
    finally:
        http.close()
        stack.close()


def _ready(stack: MiniStack) -> bool:
    try:
        if stack.prometheus("/-/ready").status_code != 200:
            return False
        targets = stack.prometheus("/api/v1/targets").json()["data"]["activeTargets"]
        return all(t["health"] == "up" for t in targets if t["labels"]["job"] in ("pushgateway", "gateway"))
    except httpx.HTTPError:
        return False


def _reject_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Land a file without the contract's columns as a batch and run the real validate step.

    In a runtime root of its own: the gateway's root links the session's validated store, which
    the gate refuses to look into (a path leaving the root).
    """
    from pipelines.config import load_settings

    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "quality-root"))
    from pipelines.data.landing import land_file
    from pipelines.quality import BatchRejected
    from pipelines.quality.steps import validate

    settings = load_settings()
    batch = "2013-03"
    broken = settings.paths.root / "incoming" / "broken.csv"  # landing reads only under the root
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("not_a_column,nor_this\n1,2\n3,4\n")
    landed = land_file(settings, batch, broken, origin="observability test")
    with pytest.raises(BatchRejected):
        validate(landed)
    return batch
