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


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_runs_the_whole_loop_and_every_stage_decides(example: str, tmp_path: Path) -> None:
    root = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS__", "MLOPS_CONFIG"))}
    env.update(
        MLOPS_CONFIG=str(EXAMPLES[example]),
        MLOPS__PATHS__ROOT=str(root),
        MLOPS__SERVING__PORT=str(_free_port()),
        # a canary step on 37-88 labelled rows is decided (or found undecidable) within seconds
        MLOPS__CANARY__STEP_TIMEOUT_S="45",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.replay", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
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
