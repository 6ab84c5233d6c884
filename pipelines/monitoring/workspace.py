"""The Evidently workspace that ``evidently ui --workspace <monitoring>/workspace`` opens.

One project per dataset/model; every window adds a ``drift`` snapshot (and a
``performance`` snapshot once labels matured), stamped with the window's *business*
start so the dashboard's time axis is the replayed calendar, not the wall clock.

Re-running a window replaces its snapshots instead of adding duplicates: the
(window, kind) -> snapshot id index lives next to the projects (``mlops_index.json``;
the UI only reads UUID-named folders). The dashboard is rebuilt from the config on
every run with deterministic panel ids, so it converges instead of accumulating panels.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.core.observability import get_logger, write_json_atomic

log = get_logger(__name__)

_NS = uuid.UUID("6f1d8a52-3c1e-4c57-9a8e-5b0e6c2f7d41")
INDEX_FILE = "mlops_index.json"


def workspace_path(settings: Settings) -> Path:
    return settings.paths.monitoring / "workspace"


def project_name(settings: Settings) -> str:
    return settings.monitoring.workspace_project or (
        f"{settings.dataset.name} / {settings.mlflow.registered_model}"
    )


def _open(settings: Settings) -> tuple[Any, Any]:
    from evidently.sdk.models import ProjectModel
    from evidently.ui.workspace import Workspace

    path = workspace_path(settings)
    path.mkdir(parents=True, exist_ok=True)
    ws = Workspace.create(str(path))
    name = project_name(settings)
    pid = uuid.uuid5(_NS, name)
    project = ws.get_project(pid)
    if project is None:
        project = ws.add_project(
            ProjectModel(
                id=pid,
                name=name,
                description=f"Drift and performance monitoring of {settings.mlflow.registered_model} "
                f"on dataset {settings.dataset.name!r}, one snapshot per window (pipelines/monitoring).",
            )
        )
    return ws, project


def dashboard_model(important: list[str], performance_metric: str | None) -> Any:
    """Panels: drift share, important-feature drift, prediction drift, performance, volume."""
    from evidently.sdk.models import DashboardModel, DashboardPanelPlot, DashboardTabModel, PanelMetric

    def panel(title: str, values: list[Any], plot: str = "line", size: str = "half", sub: str = "") -> Any:
        return DashboardPanelPlot(
            id=uuid.uuid5(_NS, title),
            title=title,
            subtitle=sub or None,
            size=size,
            values=values,
            plot_params={"plot_type": plot},
        )

    panels = [
        panel(
            "Share of drifted features",
            [
                PanelMetric(
                    legend="drifted share",
                    tags=["drift"],
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
            sub="All features, per-column methods from monitoring config. Informational: seasonal "
            "weather moves it every month; it does not trigger retraining.",
        ),
        panel(
            "Drift of important features",
            [
                PanelMetric(legend=c, tags=["drift"], metric="ValueDrift", metric_labels={"column": c})
                for c in important
            ],
            sub="Score per feature (distance: drift at >= its threshold). These can trigger a retrain.",
        ),
        panel(
            "Prediction drift",
            [
                PanelMetric(
                    legend="prediction",
                    tags=["drift"],
                    metric="ValueDrift",
                    metric_labels={"column": "prediction"},
                )
            ],
            sub="Champion's served scores vs its scores on the reference window.",
        ),
    ]
    if performance_metric:
        panels.append(
            panel(
                f"Model performance on matured labels ({performance_metric})",
                [PanelMetric(legend=performance_metric, tags=["performance"], metric=performance_metric)],
                sub="Champion predictions whose labels were available by the window's as-of time.",
            )
        )
    panels.append(
        panel(
            "Rows monitored per window",
            [PanelMetric(legend="rows (sampled)", tags=["drift"], metric="RowCount")],
            plot="bar",
        )
    )
    tab = DashboardTabModel(
        id=uuid.uuid5(_NS, "tab:monitoring"), title="Monitoring", panels=[p.id for p in panels]
    )
    return DashboardModel(tabs=[tab], panels=panels)


def publish(
    settings: Settings,
    window: str,
    snapshots: dict[str, Any],
    important: list[str],
    performance_metric: str | None,
) -> dict[str, str]:
    """Add (or replace) the window's snapshots in the project; returns kind -> snapshot id."""
    ws, project = _open(settings)
    index_path = workspace_path(settings) / INDEX_FILE
    index: dict[str, str] = json.loads(index_path.read_text()) if index_path.exists() else {}
    existing = {str(s) for s in ws.list_runs(project.id)}
    out: dict[str, str] = {}
    for kind, snap in snapshots.items():
        key = f"{window}/{kind}"
        ref = ws.add_run(project.id, snap, include_data=False, name=f"{window} {kind}")
        old = index.get(key)
        index[key] = str(ref.id)
        write_json_atomic(index_path, index)
        if old and old in existing and old != str(ref.id):
            ws.delete_run(project.id, old)
        out[kind] = str(ref.id)
    # The workspace mirrors the window's latest run: a kind this run did not produce (no
    # matured labels now) must not survive from an earlier run.
    for key in [k for k in index if k.startswith(f"{window}/") and k.split("/", 1)[1] not in snapshots]:
        stale = index.pop(key)
        write_json_atomic(index_path, index)
        if stale in existing:
            ws.delete_run(project.id, stale)
    ws.save_dashboard(project.id, dashboard_model(important, performance_metric))
    log.info("workspace updated", project=project.name, window=window, snapshots=out)
    return out
