"""Every DAG file in dags/ parses cleanly, defines the DAG it is named after, and stays thin.

The expected DAGs are the files themselves (every ``dags/*.py`` but ``_common.py``, each
defining the DAG named after it), so deleting or renaming a DAG file fails here; ``DAGS_TABLE``
pins each DAG's task ids and schedule, so a changed wiring is a deliberate edit of this table.

Parsing runs on every scheduler loop, so a DAG file must not import the heavy libraries its
tasks use: those imports belong inside the task callables (``_common.call(steps.x, ...)`` is
called inside the task). The check runs in a fresh interpreter, where nothing has been imported
yet by the test session itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("great_expectations", "mlflow", "evidently", "sklearn", "pandas", "optuna", "statsmodels")

EXPECTED_DAG_IDS = {p.stem for p in DAG_FILES}  # one DAG per file, named after it

# dag id -> (schedule, task ids). A schedule is a cron preset, None (triggered by hand or by another
# DAG), or the assets whose events start a run.
DAGS_TABLE: dict[str, tuple[str | None, set[str]]] = {
    # period DAGs: the cron of the contract's batch_frequency (config/pipeline.yaml: month)
    "standardize_data_quality": ("0 0 1 * *", {"land", "validate", "publish"}),
    "automate_training": (
        "assets: validated_batch",
        {
            "should_train",
            "resolve_window",
            "train",
            "evaluate",
            "gate",
            "register",
            "has_new_challenger",
            "emit_challenger",
        },
    ),
    "automate_canary_release": (
        "assets: challenger_model",
        {"plan_release", "choose_path", "rollback", "pre_rollout_check", "traffic_steps", "promote"},
    ),
    "automate_drift_monitoring": (
        "0 0 1 * *",
        {"collect", "monitor", "decide", "choose", "no_retrain", "trigger_training"},
    ),
    "optimize_tuning": (None, {"tune", "has_new_challenger", "emit_challenger"}),
    "optimize_model_choice": (None, {"compare", "has_new_challenger", "emit_challenger"}),
    "optimize_capacity": ("@weekly", {"plan"}),
    "optimize_scorecard": ("@daily", {"wants_cost", "cost", "scorecard"}),
}


def _schedule(dag: Any) -> str | None:
    schedule = dag.schedule
    if schedule is None or isinstance(schedule, str):
        return schedule
    assets = [schedule] if hasattr(schedule, "name") else list(schedule)
    return "assets: " + ", ".join(sorted(a.name for a in assets))


def test_there_are_dag_files() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS}"


def test_every_dag_file_defines_its_dag_without_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAG_IDS
    files = {dag_id: Path(d.fileloc).name for dag_id, d in dagbag.dags.items()}
    assert files == {p.stem: p.name for p in DAG_FILES}, "each file in dags/ defines the DAG named after it"


def test_the_table_lists_every_dag_file() -> None:
    assert set(DAGS_TABLE) == EXPECTED_DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAGS_TABLE))
def test_dag_has_its_tasks_and_schedule(dagbag, dag_id: str) -> None:
    schedule, tasks = DAGS_TABLE[dag_id]
    dag = dagbag.dags[dag_id]
    assert {t.task_id for t in dag.tasks} == tasks
    assert _schedule(dag) == schedule


def test_dags_have_docs_and_an_owner(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"


_PROBE = textwrap.dedent(
    """
    import json, runpy, sys
    dags, heavy, files = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    sys.path.insert(0, dags)
    found = {}
    for f in files:
        before = {m for m in heavy if m in sys.modules}
        runpy.run_path(f)
        found[f] = sorted(m for m in heavy if m in sys.modules and m not in before)
    print(json.dumps(found))
    """
)


def test_dag_files_do_not_import_heavy_libraries_at_top_level() -> None:
    # One fresh interpreter for all files (importing airflow.sdk costs ~6 s per process); each
    # file's new heavy modules are recorded separately, so an offender is named exactly.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS), ",".join(HEAVY), *map(str, DAG_FILES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(found) == {str(p) for p in DAG_FILES}
    offenders = {Path(f).name: mods for f, mods in found.items() if mods}
    assert offenders == {}, f"DAG files importing heavy libraries at parse time: {offenders}"


def test_call_ends_final_errors_and_keeps_retries_for_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shared task runner: a refusal that retrying cannot fix fails at once; others propagate."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.syspath_prepend(str(DAGS))
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path))
    from _common import call

    from pipelines.canary import ReleaseError
    from pipelines.core.errors import is_final
    from pipelines.optimize import TuningError
    from pipelines.training import steps
    from pipelines.training.errors import TrackingUnavailableError, WindowError

    with pytest.raises(AirflowFailException, match="WindowError: holdout batch '2099-02' is not published"):
        call(steps.resolve_window, {"window": "2099-01", "holdout": "2099-02"}, [])

    def gateway_down() -> None:
        raise ConnectionError("gateway down")

    with pytest.raises(ConnectionError, match="gateway down"):
        call(gateway_down)
    assert is_final(WindowError("x")) and not is_final(TrackingUnavailableError("down"))
    assert is_final(TuningError("x")) and not is_final(TrackingUnavailableError("down"))
    assert is_final(ReleaseError("x")) and not is_final(ConnectionError("gateway down"))
