"""The two worked examples go through the whole loop on the embedded path and make real decisions.

``python -m pipelines.replay --quick`` with each example's config (a fresh runtime root, its own
embedded Airflow home and gateway port): config check, quality gate on every batch, training and
the evaluation gate, the canary release, served traffic, Evidently monitoring and the retrain
policy. The examples are small (442 rows over six months), so the loop is short; what is asserted
is that no stage went inert: a gate verdict, a release decision, and retrain decisions that judged
the window (``retrain`` / ``no_retrain`` with reasons, never ``no_decision``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.template

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "regression": REPO / "tests" / "data" / "second_dataset" / "pipeline.yaml",
    "classification": REPO / "tests" / "data" / "second_dataset_classification" / "pipeline.yaml",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Disjoint halves of serving.instance_ports: the two replays run at once, and their pre-rollout
# instances must not race for one port.
INSTANCE_PORTS = {"classification": "[18150, 18174]", "regression": "[18175, 18199]"}


def _start(example: str, root: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS__", "MLOPS_CONFIG"))}
    env.update(
        MLOPS_CONFIG=str(EXAMPLES[example]),
        MLOPS__PATHS__ROOT=str(root),
        MLOPS__SERVING__PORT=str(_free_port()),
        MLOPS__SERVING__INSTANCE_PORTS=INSTANCE_PORTS[example],
        # two replays share the host: a gateway or pre-rollout instance may start slowly
        MLOPS__SERVING__START_TIMEOUT_S="300",
        # a canary step on 37-88 labelled rows is decided (or found undecidable) within seconds
        MLOPS__CANARY__STEP_TIMEOUT_S="45",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.replay", "--quick"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def replays(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[subprocess.Popen[str], Path]]]:
    """Every example this session selected, started at once (each in its own root, Airflow home
    and gateway port, nothing shared): much of a replay waits (canary step windows, label delays,
    gateway starts), so two run in about the time of the longer one instead of the sum."""
    selected = sorted(
        {
            item.callspec.params["example"]
            for item in request.session.items
            if item.path == request.path and hasattr(item, "callspec")
        }
    )
    started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for example in selected:
        root = tmp_path_factory.mktemp(f"template-{example}") / "var"
        started[example] = (_start(example, root), root)
    yield started
    for proc, _ in started.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_runs_the_whole_loop_and_every_stage_decides(
    example: str, replays: dict[str, tuple[subprocess.Popen[str], Path]]
) -> None:
    proc, root = replays[example]
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, out[-4000:] + err[-4000:]
    check = [line.strip() for line in out.splitlines() if line.startswith("  ") and ": " in line][:9]
    assert [line.split(":")[0] for line in check][:2] == ["data", "quality"]
    assert all(": ok: " in line for line in check), check

    events = root / "events"
    verdicts = sorted((events / "gate_verdict").glob("*.json"))
    assert verdicts, f"no gate verdict under {events}"
    assert "canary promoted" in out or "canary rolled back" in out, out[-3000:]
    decisions = {
        p.stem: json.loads(p.read_text()) for p in sorted((events / "retrain_decision").glob("*.json"))
    }
    assert set(decisions) >= {"2023-05", "2023-06"}, sorted(decisions)
    for window, record in decisions.items():
        action = str(record.get("action") or record.get("decision", {}).get("action"))
        assert action in {"retrain", "no_retrain"}, f"{window}: {action} ({record.get('reasons')})"
