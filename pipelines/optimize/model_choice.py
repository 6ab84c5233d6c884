"""Latency- and cost-aware model choice across the configured model families.

Each family is fitted on the same rows as a tuning trial (the training window
minus its newest batch, which validates; the gate's holdout is never used), then
measured on four axes:

* **quality**: the gate's primary metric on the validation batch;
* **p99 single-row latency** through the gateway's own request path: a JSON body
  in MLflow's scoring format → ``serving.inputs.parse_body`` → ``serving.inputs.validate``
  against the model's signature → ``ServedModel.predict`` (what ``Gateway.score``
  runs for every request, minus the asynchronous prediction-log hand-off);
* **training time** (wall and CPU seconds of the fit);
* **model size**: bytes of the model serialized the way the registry stores it.

The Pareto front and the policy's pick (``optimize.model_choice``) are computed by
``pareto.py`` from the table; table, plot and pick are logged to MLflow. A family
that cannot be built or fitted appears as a "skipped because ..." row with no
numbers. With ``propose=True`` the pick is trained by the normal training chain
(evaluation gate, ``@challenger`` only if it passes; :mod:`pipelines.optimize.propose`).
The latency measurement itself is :mod:`pipelines.optimize.serving_path`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import ModelFamily, Settings
from pipelines.core.observability import get_logger, log_context, record_event, write_json_atomic
from pipelines.optimize.cost import measure_resources
from pipelines.optimize.experiment import inner_split, optimize_experiment, report_dir
from pipelines.optimize.pareto import Objective, pareto_front, select
from pipelines.optimize.propose import family_training_config, propose_family
from pipelines.optimize.serving_path import (
    SERVING_PATH,
    model_size_bytes,
    request_bodies,
    served_model,
    serving_path_latencies,
)

log = get_logger(__name__)

CHOICE_EVENT = "optimize_model_choice"
OBJECTIVES = [
    Objective("quality", "max"),
    Objective("p99_latency_ms", "min"),
    Objective("train_seconds", "min"),
    Objective("model_size_bytes", "min"),
]


def fit_family(
    settings: Settings, family: ModelFamily, train: Any, valid: Any, metric: str
) -> tuple[dict[str, Any], Any]:
    """Fit and score one family: (row, servable model), or a "skipped because ..." row and None."""
    from pipelines import training
    from pipelines.training import build_pipeline, predict_scores

    task = settings.dataset.target.task
    row: dict[str, Any] = {"name": family.name, "estimator": family.estimator, "params": family.params}
    stage = "build"
    try:
        model = build_pipeline(settings.dataset, family_training_config(settings, family))
        stage = "fit"
        with measure_resources(f"fit-{family.name}", country_iso_code="", energy=False) as usage:
            model.fit(train.x, train.y)
        stage = "score"
        quality = training.metrics.compute(task, valid.y.to_numpy(), predict_scores(model, valid.x, task))
        stage = "serving wrapper"
        served = served_model(settings, family.name, model, train.x)
        stage = "serialization"
        size = model_size_bytes(settings, model)
    except Exception as exc:
        why = f"skipped because {stage} failed: {type(exc).__name__}: {exc}"
        row.update(status="skipped", reason=why[:500])
        log.warning("model family skipped", family=family.name, reason=row["reason"])
        return row, None
    if metric not in quality:
        row.update(status="skipped", reason=f"skipped because {metric} is undefined on the validation rows")
        return row, None
    row.update(
        status="ok",
        reason="",
        quality=quality[metric],
        metrics=quality,
        train_seconds=usage.wall_seconds,
        train_cpu_seconds=usage.cpu_seconds,
        model_size_bytes=size,
    )
    return row, served


def add_latencies(
    settings: Settings, rows: list[dict[str, Any]], served: list[Any], bodies: list[bytes]
) -> None:
    """Fill p50/p99 of the fitted rows (interleaved measurement); a failure skips the row."""
    live = [i for i, m in enumerate(served) if m is not None]
    results = serving_path_latencies(
        settings, [served[i] for i in live], bodies, settings.optimize.model_choice.warmup_requests
    )
    for i, res in zip(live, results, strict=True):
        row = rows[i]
        if isinstance(res, str):
            row.update(status="skipped", reason=f"skipped because the serving path failed: {res}"[:500])
            for k in ("quality", "train_seconds", "train_cpu_seconds", "model_size_bytes"):
                row.pop(k, None)
            continue
        wall, cpu_ms = res
        row.update(
            p50_latency_ms=float(np.percentile(wall, 50)),
            p99_latency_ms=float(np.percentile(wall, 99)),
            cpu_ms_per_request=float(cpu_ms),
            latency_requests=len(wall),
        )


def _plot(rows: list[dict[str, Any]], front: list[int], pick: int | None, budget: float, metric: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(rows):
        if r.get("status") != "ok":
            continue
        on_front = i in front
        ax.scatter(
            r["p99_latency_ms"],
            r["quality"],
            s=40 + r["model_size_bytes"] / 2e4,
            c="tab:blue" if on_front else "tab:gray",
            edgecolors="black" if i == pick else "none",
            linewidths=2,
            zorder=3,
        )
        label = f"{r['name']} ({r['train_seconds']:.1f}s fit)" + (" ← pick" if i == pick else "")
        ax.annotate(label, (r["p99_latency_ms"], r["quality"]), textcoords="offset points", xytext=(6, 4))
    ax.axvline(budget, color="tab:red", linestyle="--", label=f"p99 budget {budget:g} ms")
    ax.set_xlabel("p99 single-row latency through the serving path (ms)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("Model families: blue = Pareto front, marker size ~ model size")
    ax.margins(x=0.35, y=0.2)  # room for the labels
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def choose_model(
    settings: Settings,
    window: list[str] | int | str | None = None,
    holdout: str | None = None,
    *,
    propose: bool = False,
) -> dict[str, Any]:
    """Compare the families, compute the front, apply the policy; log everything to MLflow.

    Returns the report (also JSON + PNG under ``reports/optimize/model_choice/``).
    """
    import mlflow
    from threadpoolctl import threadpool_limits

    from pipelines.training import resolve_window

    cfg = settings.optimize.model_choice
    task = settings.dataset.target.task
    metric = settings.gate.for_task(task).primary_metric
    resolved = resolve_window(settings, window, holdout)
    families = [f for f in cfg.families if f.task == task]
    not_applicable = [f"{f.name} ({f.task})" for f in cfg.families if f.task != task]
    if not families:
        raise ValueError(
            f"optimize.model_choice.families has no family for task {task!r} (configured: {not_applicable})"
        )
    train, valid, how = inner_split(settings, resolved.train_batches)
    bodies = request_bodies(valid.x, cfg.latency_requests + cfg.warmup_requests)
    exp_id = optimize_experiment(settings)
    rows: list[dict[str, Any]] = []
    with (
        mlflow.start_run(run_name=f"model choice {resolved.label}", experiment_id=exp_id) as parent,
        log_context(run_id=parent.info.run_id),
        threadpool_limits(settings.optimize.threads),
    ):
        mlflow.set_tags({"mlops.kind": "model_choice", "mlops.window": resolved.label, "validation": how})
        mlflow.log_params(
            {
                "policy": cfg.policy,
                "latency_budget_ms": cfg.latency_budget_ms,
                "quality_tolerance": cfg.quality_tolerance,
                "latency_requests": cfg.latency_requests,
                "threads": settings.optimize.threads,
            }
        )
        served: list[Any] = []
        for family in families:
            row, model = fit_family(settings, family, train, valid, metric)
            rows.append(row)
            served.append(model)
        add_latencies(settings, rows, served, bodies)
        for family, row in zip(families, rows, strict=True):
            with mlflow.start_run(run_name=family.name, nested=True, experiment_id=exp_id):
                mlflow.set_tags({"mlops.kind": "model_choice_family", "status": row["status"]})
                mlflow.log_params(
                    {"estimator": family.estimator, **{f"est.{k}": v for k, v in family.params.items()}}
                )
                if row["status"] == "ok":
                    mlflow.log_metrics(
                        {
                            f"valid_{metric}": row["quality"],
                            "p50_latency_ms": row["p50_latency_ms"],
                            "p99_latency_ms": row["p99_latency_ms"],
                            "cpu_ms_per_request": row["cpu_ms_per_request"],
                            "train_seconds": row["train_seconds"],
                            "train_cpu_seconds": row["train_cpu_seconds"],
                            "model_size_bytes": float(row["model_size_bytes"]),
                        }
                    )
                else:
                    mlflow.set_tag("skipped_reason", row["reason"][:4900])
        front = pareto_front(rows, OBJECTIVES)
        pick = select(
            rows,
            policy=cfg.policy,
            quality="quality",
            latency="p99_latency_ms",
            latency_budget=cfg.latency_budget_ms,
            quality_tolerance=cfg.quality_tolerance,
            tie_breakers=[Objective("train_seconds", "min"), Objective("model_size_bytes", "min")],
        )
        for i, r in enumerate(rows):
            r["pareto"] = i in front
            r["picked"] = i == pick.index
        table = pd.DataFrame([{k: v for k, v in r.items() if k not in {"params", "metrics"}} for r in rows])
        mlflow.log_table(table, artifact_file="model_choice/comparison.json")
        mlflow.log_text(table.to_string(index=False), "model_choice/comparison.txt")
        fig = _plot(rows, front, pick.index, cfg.latency_budget_ms, metric)
        mlflow.log_figure(fig, "model_choice/pareto.png")
        out_dir = report_dir(settings, "model_choice")
        out_dir.mkdir(parents=True, exist_ok=True)
        png = out_dir / f"{parent.info.run_id}.png"
        fig.savefig(png, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
        mlflow.set_tags(
            {
                "model_choice.pick": rows[pick.index]["name"] if pick.index is not None else "none",
                "model_choice.reason": pick.reason[:4900],
                "model_choice.pareto": ",".join(rows[i]["name"] for i in front) or "none",
            }
        )
    report: dict[str, Any] = {
        "dataset": settings.dataset.name,
        "parent_run_id": parent.info.run_id,
        "window": resolved.to_dict(),
        "validation": how,
        "metric": metric,
        "policy": cfg.policy,
        "latency_budget_ms": cfg.latency_budget_ms,
        "serving_path": SERVING_PATH,
        "rows": rows,
        "pareto_front": [rows[i]["name"] for i in front],
        "pick": rows[pick.index]["name"] if pick.index is not None else None,
        "pick_reason": pick.reason,
        "not_applicable": not_applicable,
        "plot": str(png),
        "candidate": None,
    }
    if propose and pick.index is not None:
        chosen = families[pick.index]
        report["candidate"] = propose_family(settings, chosen, resolved.to_dict(), parent.info.run_id)
    path = out_dir / f"{parent.info.run_id}.json"
    report["report_path"] = str(path)
    write_json_atomic(path, report)
    record_event(
        settings.paths.events,
        CHOICE_EVENT,
        parent.info.run_id,
        pick=report["pick"],
        pick_reason=pick.reason,
        pareto_front=report["pareto_front"],
        report_path=str(path),
        candidate=report["candidate"],
    )
    log.info("model choice done", pick=report["pick"], front=report["pareto_front"], reason=pick.reason)
    return report


def read_report(path: str | Path) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))
