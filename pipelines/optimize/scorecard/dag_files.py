"""Which DAG files define the DAG of each lifecycle stage, in a DAG folder the *driver* names.

The scorecard names no DAG and assumes no folder: the scorecard DAG passes its
stage → DAG id map (``LIFECYCLE_STAGES``, declared in that DAG file) and the folder Airflow
parsed it from; the CLI and the replay, which drive the pipeline from a checkout, pass the
checkout's ``dags/`` and read the same map from it (:func:`declared_stages`, a literal read of
the assignment: no DAG file is imported or executed). So the image scores what Airflow runs,
and only ``dags/`` knows DAG ids.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

from pipelines.optimize.contracts import StageDag

#: The module-level name under which a DAG file declares ``{lifecycle stage: DAG id}``.
STAGES_NAME = "LIFECYCLE_STAGES"


def declared_stages(folder: Path) -> dict[str, str]:
    """The ``LIFECYCLE_STAGES`` literal of the first DAG file in ``folder`` that declares one."""
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id == STAGES_NAME:
                return {str(k): str(v) for k, v in dict(ast.literal_eval(value)).items()}
    return {}


def defines_dag(file_name: str, text: str, dag_id: str) -> bool:
    """A file defines ``dag_id`` when it is named after it, passes it as ``dag_id=`` or has its function."""
    return Path(file_name).stem == dag_id or f'dag_id="{dag_id}"' in text or f"def {dag_id}(" in text


def stage_dags(folder: Path, stages: Mapping[str, str]) -> tuple[StageDag, ...]:
    """Each stage with its DAG id and the files of ``folder`` that define that DAG (in folder order)."""
    files = [(p.name, p.read_text()) for p in folder.glob("*.py")]
    return tuple(
        StageDag(stage, dag_id, tuple(name for name, text in files if defines_dag(name, text, dag_id)))
        for stage, dag_id in stages.items()
    )


def checkout_stage_dags(folder: Path) -> tuple[StageDag, ...]:
    """For the drivers that run from a checkout: the folder's declared stages and their files."""
    return stage_dags(folder, declared_stages(folder))
