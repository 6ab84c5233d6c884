"""Every DAG file in dags/ (the team's, current and future) parses cleanly and stays thin.

Parsing runs on every scheduler loop, so a DAG file must not import the heavy libraries its
tasks use: those imports belong inside the task callables. The check runs in a fresh
interpreter, where nothing has been imported yet by the test session itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("great_expectations", "mlflow", "evidently", "sklearn", "pandas", "optuna", "statsmodels")

EXPECTED_DAG_IDS = {"standardize_data_quality"}  # the rest of the team adds theirs as they land


def test_there_are_dag_files() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS}"


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED_DAG_IDS
    files_with_dags = {Path(d.fileloc).name for d in dagbag.dags.values()}
    assert files_with_dags == {p.name for p in DAG_FILES}, "a file in dags/ defines no DAG"


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


def test_run_step_ends_final_errors_and_keeps_retries_for_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shared task runner: a refusal that retrying cannot fix fails at once; others propagate."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.syspath_prepend(str(DAGS))
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path))
    from _common import run_step

    from pipelines.canary.release import ReleaseError
    from pipelines.canary.steps import is_final as canary_final
    from pipelines.optimize.steps import is_final as optimize_final
    from pipelines.optimize.tuning import TuningError
    from pipelines.training.errors import TrackingUnavailableError, WindowError
    from pipelines.training.steps import is_final as training_final

    with pytest.raises(AirflowFailException, match="WindowError: holdout batch '2099-02' is not published"):
        run_step(
            "pipelines.training.steps", "resolve_window_step", {"window": "2099-01", "holdout": "2099-02"}
        )
    assert training_final(WindowError("x")) and not training_final(TrackingUnavailableError("down"))
    assert optimize_final(TuningError("x")) and not optimize_final(TrackingUnavailableError("down"))
    assert canary_final(ReleaseError("x")) and not canary_final(ConnectionError("gateway down"))
