"""A winner (a tuned configuration, a picked family) is only ever a *candidate*.

It is trained by the unchanged training chain (``pipelines.training.run_training``: the same
window, evaluation against ``@champion``, evaluation gate and registration, ``@challenger`` only
if it passes) with the training section of the settings replaced. The canary release then
decides about ``@champion``; optimization never moves an alias.
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.config import ModelFamily, Settings
from pipelines.core.observability import read_events
from pipelines.core.registry import client_for
from pipelines.optimize.cost import ResourceUsage, cost_metrics, measure_resources


def family_training_config(settings: Settings, family: ModelFamily) -> Any:
    """The training section with the family's estimator (and encoding, when it sets one)."""
    update: dict[str, Any] = {"estimator": family.estimator, "estimator_params": family.params}
    if family.categorical_encoding is not None:
        update["categorical_encoding"] = family.categorical_encoding
    return settings.training.model_copy(update=update)


def propose_candidate(
    settings: Settings, params: dict[str, Any], window: dict[str, Any], parent_run_id: str
) -> dict[str, Any]:
    """Train the tuned configuration through the unchanged training chain (evaluation + gate)."""
    from threadpoolctl import threadpool_limits

    from pipelines.training import run_training

    tuned = settings.model_copy(
        update={
            "training": settings.training.model_copy(
                update={"estimator_params": {**settings.training.estimator_params, **params}}
            )
        }
    )
    country = settings.optimize.cost.country_iso_code
    with (
        measure_resources("tuned-candidate", country_iso_code=country) as u,
        threadpool_limits(settings.optimize.threads),
    ):
        result = run_training(
            tuned,
            list(window["train_batches"]),
            window["holdout_batch"],
            reason=f"tuning: best trial of MLflow run {parent_run_id}",
        )
    run_id = str(result["run_id"])
    reused = any(
        e.get("key") == run_id and e.get("reused") for e in read_events(settings.paths.events, "training_run")
    )
    if not reused:  # a reused run was trained earlier: this block only measured the look-up
        log_training_cost(settings, run_id, u)
    return {**result, "training_cost": None if reused else u.to_dict(), "reused_training_run": reused}


def propose_family(
    settings: Settings, family: ModelFamily, window: dict[str, Any], parent_run_id: str
) -> dict[str, Any]:
    """Train the picked family through the unchanged training chain (evaluation + gate)."""
    from pipelines.training import run_training

    chosen = settings.model_copy(update={"training": family_training_config(settings, family)})
    return run_training(
        chosen,
        list(window["train_batches"]),
        window["holdout_batch"],
        reason=f"model choice: {family.name} picked in MLflow run {parent_run_id}",
    )


def log_training_cost(settings: Settings, run_id: str, usage: ResourceUsage) -> None:
    """Attach measured training cost to the model's run (the cost report reads it per version)."""
    client = client_for(settings)
    for k, v in cost_metrics("training", usage).items():
        if math.isfinite(v):
            client.log_metric(run_id, k, v)
    client.set_tag(run_id, "cost.energy_source", usage.energy_source)
