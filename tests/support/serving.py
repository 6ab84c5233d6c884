"""Shared, expensive setup of the serving and canary tests (built once per pytest process).

A private MLflow store with six registered versions of the same small model family
(champion, a good retrain, a shuffled-label model, and the raising, slow and
unloadable canaries, see ``canary_faults``), plus a per-module runtime root whose
``validated/`` store is the session's GX-validated batches. Each test module gets
its own root (routing state, prediction log, events) so serving and canary tests
cannot see each other's traffic, while sharing the one registry.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TOKEN = "test-admin-token"
LABELS_TOKEN = "test-labels-token"
_WORLD: dict[str, Any] = {}


@dataclass(frozen=True)
class Versions:
    champion: str
    good: str
    shuffled: str
    raising: str
    slow: str
    broken: str


@dataclass(frozen=True)
class World:
    store: Path  # holds mlflow.db and mlartifacts
    tracking_uri: str
    versions: Versions
    validated: Path
    setup_seconds: float


def build_world(session_root: Path, settings: Any, published: list[dict[str, Any]]) -> World:
    """Train and register the test models once per process (memoised)."""
    if "world" in _WORLD:
        return _WORLD["world"]  # type: ignore[no-any-return]
    from pipelines.config import load_settings
    from pipelines.data.validated import load_batches
    from support import canary_faults as cf

    t0 = time.perf_counter()
    store = session_root / "serving-registry"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    import mlflow

    # configure_tracking (used to log like training does) sets MLflow's process-global URIs and
    # experiment; put them back afterwards so later test modules do not inherit this registry.
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS__PATHS__ROOT", str(store))
        mp.setenv("MLOPS__MLFLOW__TRACKING_URI", uri)
        mp.setenv("MLOPS__MLFLOW__EXPERIMENT", "serving-tests")
        s = load_settings()
        batches = [b["batch_id"] for b in published]
        early = load_batches(settings, batches[:1])
        # "good" is a retrain on another sample of the same month: as good as the champion, with
        # predictions close to its (a shifted retrain is covered by the analysis unit tests).
        champion, x = cf.train_pipeline(s, early, seed=1, max_rows=20000)
        good, x2 = cf.train_pipeline(s, early, seed=2, max_rows=20000)
        shuffled, _ = cf.train_pipeline(s, early, shuffle_labels=True, seed=3, max_rows=20000)
        versions = Versions(
            champion=cf.log_and_register(s, champion, x, description="champion"),
            good=cf.log_and_register(s, good, x2, description="good retrain"),
            shuffled=cf.log_and_register(s, shuffled, x, description="shuffled labels"),
            raising=cf.log_and_register(
                s, cf.fault_pipeline("raising", champion, x), x, description="raises", by_value=True
            ),
            slow=cf.log_and_register(
                s,
                cf.fault_pipeline("slow", champion, x, slow_seconds=2.0),
                x,
                description="slow",
                by_value=True,
            ),
            broken=cf.log_and_register(
                s, cf.fault_pipeline("broken", champion, x), x, description="unloadable", by_value=True
            ),
        )
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])
    world = World(
        store=store,
        tracking_uri=uri,
        versions=versions,
        validated=settings.paths.validated,
        setup_seconds=time.perf_counter() - t0,
    )
    _WORLD["world"] = world
    return world


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextmanager
def module_env(world: World, root: Path, port: int, **extra: str) -> Iterator[None]:
    """Environment of one test module: its own runtime root, the shared registry, test-speed canary knobs."""
    root.mkdir(parents=True, exist_ok=True)
    validated = root / "validated"
    if not validated.exists():
        # A hard-linked copy, not a symlink: paths that resolve outside the runtime root are
        # refused (pipelines.core.period_ids.check_under), and hard links cost no copy.
        shutil.copytree(world.validated, validated, copy_function=_link_or_copy)
    env = {
        "MLOPS__PATHS__ROOT": str(root),
        "MLOPS__MLFLOW__TRACKING_URI": world.tracking_uri,
        "MLOPS__MLFLOW__EXPERIMENT": "serving-tests",
        "MLOPS_GATEWAY_ADMIN_TOKEN": TOKEN,
        "MLOPS_LABELS_TOKEN": LABELS_TOKEN,
        "MLOPS__SERVING__PORT": str(port),
        "MLOPS__SERVING__LOG_FLUSH_MS": "50",
        "MLOPS__CANARY__MIN_REQUESTS": "60",
        "MLOPS__CANARY__STEP_WINDOW_S": "1",
        "MLOPS__CANARY__ANALYSIS_INTERVAL_S": "0.5",
        "MLOPS__CANARY__STEP_TIMEOUT_S": "150",
        "MLOPS__CANARY__REPLAY_TRAFFIC": "true",
        "MLOPS__CANARY__REPLAY_RATE": "400",
        "MLOPS__CANARY__QUALITY_MIN_LABELS": "150",
        "MLOPS__CANARY__LATENCY_P99_SLO_MS": "1000",
        "MLOPS__CANARY__LATENCY_MIN_SAMPLES": "30",
        "MLOPS__CANARY__PRECHECK_ROWS": "100",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        **extra,
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield


# --------------------------------------------------------------------------- release states
# The canary tests start from a named state instead of from what an earlier test left: each helper
# puts the registry aliases and the live gateway where a finished release would have put them.
def gateway(settings: Any) -> Any:
    """An admin client of the module's gateway (started if it is not running)."""
    from pipelines.serving import GatewayClient, ensure_gateway

    return GatewayClient(ensure_gateway(settings), TOKEN, labels_token=LABELS_TOKEN)


def _aliases(settings: Any) -> tuple[Any, dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    model = client.get_registered_model(settings.mlflow.registered_model)
    return client, {k: str(v) for k, v in (model.aliases or {}).items()}


def _no_canary_no_challenger(settings: Any, gw: Any) -> None:
    if gw.version().get("canary"):
        gw.rollback(reason="test setup: start without a canary")
    client, aliases = _aliases(settings)
    if "challenger" in aliases:
        client.delete_registered_model_alias(settings.mlflow.registered_model, "challenger")


def no_champion(settings: Any) -> None:
    """Before the first release: no @champion, no @challenger, no canary on the gateway."""
    with gateway(settings) as gw:
        _no_canary_no_challenger(settings, gw)
    client, aliases = _aliases(settings)
    if "champion" in aliases:
        client.delete_registered_model_alias(settings.mlflow.registered_model, "champion")


def serve_champion(settings: Any, version: str, previous: str | None = None) -> str:
    """After a release of ``version``: it is @champion and the gateway serves it alone.

    ``previous`` records the champion it replaced, as a promotion tags it
    (``release.previous_champion``), so a rollback has somewhere to return to.
    """
    name = settings.mlflow.registered_model
    with gateway(settings) as gw:
        _no_canary_no_challenger(settings, gw)
        client, _ = _aliases(settings)
        client.set_registered_model_alias(name, "champion", version)
        if previous is not None:
            client.set_model_version_tag(name, version, "release.previous_champion", previous)
        champion = gw.version().get("champion") or {}
        if str(champion.get("version")) != version:
            gw.set_champion(version, reason="test setup")
    return version
