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
(evaluation gate, ``@challenger`` only if it passes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import ModelFamily, Settings
from pipelines.core.observability import get_logger, log_context, record_event, write_json_atomic
from pipelines.optimize.cost import measure_resources
from pipelines.optimize.pareto import Objective, pareto_front, select
from pipelines.optimize.tuning import _optimize_experiment, inner_split, report_dir

log = get_logger(__name__)

CHOICE_EVENT = "optimize_model_choice"
SERVING_PATH = "JSON body -> serving.inputs.parse_body -> serving.inputs.validate -> ServedModel.predict"
OBJECTIVES = [
    Objective("quality", "max"),
    Objective("p99_latency_ms", "min"),
    Objective("train_seconds", "min"),
    Objective("model_size_bytes", "min"),
]


def request_bodies(x: pd.DataFrame, n: int) -> list[bytes]:
    """``n`` single-row scoring requests built from real rows, as a client would send them."""
    rows = x.head(n) if len(x) >= n else x.sample(n, replace=True, random_state=0)
    out = []
    cols = list(x.columns)
    for rec in rows.itertuples(index=False):
        values = [None if isinstance(v, float) and np.isnan(v) else v for v in rec]
        out.append(json.dumps({"dataframe_split": {"columns": cols, "data": [values]}}).encode())
    return out


def served_model(settings: Settings, name: str, model: Any, x: pd.DataFrame) -> Any:
    """Wrap an in-memory fitted pipeline as the gateway's ``ServedModel`` (signature included)."""
    from mlflow.models import infer_signature

    from pipelines.serving.models import ServedModel, columns_from_signature

    task = settings.dataset.target.task
    fn = model.predict_proba if task == "classification" else model.predict
    signature = infer_signature(x, fn(x.head(5)))
    columns = columns_from_signature(signature, set(settings.serving.non_null_features))
    return ServedModel(name=name, version=name, task=task, columns=columns, model=model)


def serving_path_latencies(
    settings: Settings, served: list[Any], bodies: list[bytes], warmup: int
) -> list[tuple[np.ndarray, float] | str]:
    """Milliseconds per request through parse → validate → predict, per model.

    Models take turns request by request (rotating who goes first), so a burst of
    load from elsewhere on the host hits every model alike instead of whichever
    happened to be measured at the time. Returns (wall ms per request, mean CPU ms per
    request) per model, or the error text for a model that failed. CPU time is the
    steadier figure on a shared host: wall time includes waiting for a core.
    """
    from pipelines.serving.inputs import parse_body, validate

    passthrough = {settings.dataset.id.column, settings.dataset.event_time}
    max_rows, allow_extra = settings.serving.max_rows, settings.serving.allow_extra_columns

    def one(model: Any, body: bytes) -> None:
        table = parse_body(body, max_rows, model.column_names)
        checked = validate(table, model.columns, passthrough=passthrough, allow_extra=allow_extra)
        model.predict(checked.frame)

    n = len(served)
    times = np.full((n, len(bodies) - warmup), np.nan)
    cpu = np.zeros(n)
    failed: dict[int, str] = {}
    for i, body in enumerate(bodies):
        for k in range(n):
            j = (i + k) % n
            if j in failed:
                continue
            c0, t0 = time.thread_time(), time.perf_counter()
            try:
                one(served[j], body)
            except Exception as exc:
                failed[j] = f"{type(exc).__name__}: {exc}"
                continue
            if i >= warmup:
                times[j, i - warmup] = (time.perf_counter() - t0) * 1000.0
                cpu[j] += (time.thread_time() - c0) * 1000.0
    timed = max(times.shape[1], 1)
    return [failed[j] if j in failed else (times[j], cpu[j] / timed) for j in range(n)]


def model_size_bytes(settings: Settings, model: Any) -> int:
    if settings.mlflow.serialization == "skops":
        import skops.io

        return len(skops.io.dumps(model))
    import cloudpickle

    return len(cloudpickle.dumps(model))


def family_training_config(settings: Settings, family: ModelFamily) -> Any:
    """The training section with the family's estimator (and encoding, when it sets one)."""
    update: dict[str, Any] = {"estimator": family.estimator, "estimator_params": family.params}
    if family.categorical_encoding is not None:
        update["categorical_encoding"] = family.categorical_encoding
    return settings.training.model_copy(update=update)


def fit_family(
    settings: Settings, family: ModelFamily, train: Any, valid: Any, metric: str
) -> tuple[dict[str, Any], Any]:
    """Fit and score one family: (row, servable model), or a "skipped because ..." row and None."""
    from pipelines.training import metrics as tm
    from pipelines.training.features import build_pipeline, predict_scores

    task = settings.dataset.target.task
    row: dict[str, Any] = {"name": family.name, "estimator": family.estimator, "params": family.params}
    stage = "build"
    try:
        model = build_pipeline(settings.dataset, family_training_config(settings, family))
        stage = "fit"
        with measure_resources(f"fit-{family.name}", country_iso_code="", energy=False) as usage:
            model.fit(train.x, train.y)
        stage = "score"
        quality = tm.compute(task, valid.y.to_numpy(), predict_scores(model, valid.x, task))
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

    from pipelines.training.window import resolve_window

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
    exp_id = _optimize_experiment(settings)
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


def propose_family(
    settings: Settings, family: ModelFamily, window: dict[str, Any], parent_run_id: str
) -> dict[str, Any]:
    """Train the picked family through the unchanged training chain (evaluation + gate)."""
    from pipelines.training.steps import run_training

    chosen = settings.model_copy(update={"training": family_training_config(settings, family)})
    return run_training(
        chosen,
        list(window["train_batches"]),
        window["holdout_batch"],
        reason=f"model choice: {family.name} picked in MLflow run {parent_run_id}",
    )


def read_report(path: str | Path) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))
