"""Cost and energy per 1,000 predictions and per training run, for each model version.

*Per 1,000 predictions*: the version is loaded the way the gateway loads it
(``serving.load_served_model``) and answers ``optimize.cost.predictions``
single-row requests of real rows through the gateway's request path (parse,
validate, predict) while CPU time and CodeCarbon's offline tracker run.

*Per training run*: a version trained through ``optimize`` (tuning, model choice)
already carries ``training_*`` metrics measured when it was trained. For the
others the fit is **re-measured**: the version's own configuration (estimator and
parameters from its run's params) is fitted again on its own training batches
(from its tags), which reproduces the training computation on this machine; the
figure is tagged as re-measured, with the date. The training step itself could
log the same metrics at fit time with :func:`pipelines.optimize.cost.measure_resources`.

Figures are logged on the version's run (metrics ``serving_*_per_1k`` and
``training_*``; tag ``cost.measured_at``), so the registry shows them per version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from pipelines.config import Settings
from pipelines.core.observability import get_logger, record_event, write_json_atomic
from pipelines.optimize.cost import cost_metrics, measure_resources

log = get_logger(__name__)

COST_EVENT = "optimize_cost"
USAGE_KEYS = ("cpu_seconds", "wall_seconds", "energy_kwh", "emissions_kg")


def _param(value: str) -> Any:
    """MLflow params are strings; YAML gives back the number / bool / None they were."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def training_config_of_run(settings: Settings, params: dict[str, str]) -> Any:
    """The TrainingConfig a run was trained with, rebuilt from its logged params."""
    est_params = {k.removeprefix("est."): _param(v) for k, v in params.items() if k.startswith("est.")}
    update: dict[str, Any] = {"estimator": params.get("estimator") or None, "estimator_params": est_params}
    for key in ("seed", "categorical_encoding", "max_categories"):
        if key in params:
            update[key] = _param(params[key])
    return settings.training.model_copy(update=update)


def measure_serving(settings: Settings, version: str, batch_id: str, n: int) -> dict[str, Any]:
    """CPU / energy of ``n`` single-row requests through the gateway path, per 1,000."""
    import json

    from threadpoolctl import threadpool_limits

    from pipelines.optimize.serving_path import serving_path_latencies
    from pipelines.serving import batch_requests, load_served_model

    served = load_served_model(settings, version)
    records, _ = batch_requests(settings, batch_id)
    bodies = [json.dumps({"dataframe_records": [records[i % len(records)]]}).encode() for i in range(n + 20)]
    with threadpool_limits(settings.optimize.threads):
        serving_path_latencies(settings, [served], bodies[:20], 20)  # warm-up, not measured
        with measure_resources(
            f"serving-v{version}", country_iso_code=settings.optimize.cost.country_iso_code
        ) as usage:
            res = serving_path_latencies(settings, [served], bodies[20:], 0)[0]
    if isinstance(res, str):
        raise RuntimeError(f"version {version} failed on the serving path: {res}")
    return {
        "usage": usage.to_dict(),
        "predictions": n,
        "per_1k": usage.per(n),
        "metrics": cost_metrics("serving", usage, n),
    }


def measure_training(settings: Settings, params: dict[str, str], tags: dict[str, str]) -> dict[str, Any]:
    """Re-fit the version's configuration on its own training batches and measure the fit."""
    from threadpoolctl import threadpool_limits

    from pipelines.training import build_pipeline, load_window, prepare_xy

    batches = [b for b in tags.get("data.train_batches", "").split(",") if b]
    if not batches:
        raise ValueError("the version has no data.train_batches tag: its training data is unknown")
    cfg = training_config_of_run(settings, params)
    data = prepare_xy(settings.dataset, load_window(settings, batches).drop(columns="__batch_id"))
    model = build_pipeline(settings.dataset, cfg)
    with (
        threadpool_limits(settings.optimize.threads),
        measure_resources(
            "training-refit", country_iso_code=settings.optimize.cost.country_iso_code
        ) as usage,
    ):
        model.fit(data.x, data.y)
    return {
        "usage": usage.to_dict(),
        "rows": data.rows,
        "batches": batches,
        "metrics": cost_metrics("training", usage),
    }


def version_costs(
    settings: Settings,
    versions: list[str] | None = None,
    *,
    remeasure_training: bool = True,
    predictions: int | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Serving and training cost of each version, measured once and logged on its run.

    A version whose run already carries the figures is reported from them (the cost
    of a version does not change; re-running gives the same table) unless ``refresh``
    or the version is named explicitly in ``versions``.
    """
    from pipelines.core.registry import client_for, list_versions
    from pipelines.serving import newest_batch
    from pipelines.training import configure_tracking

    configure_tracking(settings)
    client = client_for(settings)
    n = predictions or settings.optimize.cost.predictions
    all_versions = {str(mv.version): mv for mv in list_versions(settings, client)}
    refresh = refresh or versions is not None
    wanted = versions or list(all_versions)
    unknown = [v for v in wanted if v not in all_versions]
    if unknown:
        raise ValueError(
            f"model versions {unknown} are not registered under {settings.mlflow.registered_model}"
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    path = settings.paths.reports / "optimize" / "cost" / "latest.json"
    if not wanted:
        empty = {"measured_at": now, "versions": [], "reason": "no registered model version to measure"}
        write_json_atomic(path, empty)
        return {**empty, "report_path": str(path)}
    batch_id = newest_batch(settings)
    rows: list[dict[str, Any]] = []
    for v in wanted:
        mv = all_versions[v]
        run_id = str(mv.run_id)
        run = client.get_run(run_id)
        m, tags = run.data.metrics, run.data.tags
        row: dict[str, Any] = {"version": v, "run_id": run_id, "aliases": list(mv.aliases or [])}
        if "serving_cpu_seconds_per_1k" in m and not refresh:
            row["serving_per_1k"] = {k: m.get(f"serving_{k}_per_1k") for k in USAGE_KEYS}
            row["serving_source"] = f"logged on the run at {tags.get('cost.measured_at')}"
        else:
            try:
                serving = measure_serving(settings, v, batch_id, n)
                row["serving_per_1k"] = serving["per_1k"]
                row["serving_source"] = (
                    f"measured at {now}: {n} single-row requests of {batch_id}, "
                    f"{serving['usage']['energy_source']}"
                )
                for k, val in serving["metrics"].items():
                    client.log_metric(run_id, k, val)
                client.set_tag(run_id, "cost.measured_at", now)
                client.set_tag(run_id, "cost.country_iso_code", settings.optimize.cost.country_iso_code)
            except Exception as exc:
                row["serving_per_1k"] = None
                row["serving_source"] = f"skipped because {type(exc).__name__}: {exc}"[:400]
        if "training_cpu_seconds" in m:
            row["training"] = {
                "source": "measured when trained (optimize path: train + evaluate + gate + register)",
                **{k: m.get(f"training_{k}") for k in USAGE_KEYS},
            }
        elif "refit_training_cpu_seconds" in m and not refresh:
            row["training"] = {
                "source": f"re-measured fit, logged on the run at {tags.get('cost.training_remeasured_at')}",
                **{k: m.get(f"refit_training_{k}") for k in USAGE_KEYS},
            }
        elif remeasure_training:
            try:
                t = measure_training(settings, run.data.params, dict(mv.tags or {}))
                row["training"] = {
                    "source": f"re-measured fit on {','.join(t['batches'])} ({t['rows']} rows) at {now}",
                    **{k: t["usage"][k] for k in USAGE_KEYS},
                }
                for k, val in t["metrics"].items():
                    client.log_metric(run_id, f"refit_{k}", val)
                client.set_tag(run_id, "cost.training_remeasured_at", now)
            except Exception as exc:
                row["training"] = {"source": f"skipped because {type(exc).__name__}: {exc}"[:400]}
        else:
            row["training"] = {"source": "not measured (predates cost tracking; remeasure_training=False)"}
        if "fit_seconds" in m:
            row["training"]["fit_seconds_logged_by_training"] = m["fit_seconds"]
        rows.append(row)
    out = {"measured_at": now, "predictions_per_version": n, "batch_id": batch_id, "versions": rows}
    write_json_atomic(path, out)
    out["report_path"] = str(path)
    record_event(settings.paths.events, COST_EVENT, now, versions=wanted, report_path=str(path))
    log.info("unit costs reported", versions=wanted)
    return out
