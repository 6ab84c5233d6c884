"""The evidence one traffic step is judged on, read from the prediction log.

The analysis (:mod:`pipelines.canary.analysis`) is pure; this module gathers its inputs: each
variant's requests in this step and since the release began, a champion reference (topped up
with its traffic before the release when the release itself brought too little), and the
*paired* scores: every labelled row served during the release, scored by both models from the
logged features, so both are judged on the same rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.canary.analysis import MIN_SHIFT_ROWS, Analysis, analyse
from pipelines.canary.contracts import ReleasePlan
from pipelines.config import Settings
from pipelines.core.predlog import logged_features, read_labelled, read_predictions

#: Champion predictions from before the release that top up a thin shift reference.
REFERENCE_ROWS = 5000


def step_frames(settings: Settings, plan: ReleasePlan, step_start: str) -> dict[str, Any]:
    """The keyword arguments of :func:`~pipelines.canary.analysis.analyse` for one step."""
    version, champion = plan.candidate, str(plan.champion_version)
    started = plan.started_at
    canary_rel = read_predictions(settings, ts_from=started, variant="canary", model_version=version)
    champ_rel = read_predictions(settings, ts_from=started, variant="champion", model_version=champion)
    reference = champ_rel
    if len(champ_rel) < max(MIN_SHIFT_ROWS, settings.canary.min_requests):
        before = read_predictions(
            settings, ts_to=started, variant="champion", model_version=champion, latest=REFERENCE_ROWS
        )
        reference = pd.concat([before, champ_rel], ignore_index=True)
    labelled = read_labelled(settings, ts_from=started, expand_features=True)
    ours = ((labelled["variant"] == "canary") & (labelled["model_version"] == version)) | (
        (labelled["variant"] == "champion") & (labelled["model_version"] == champion)
    )
    # One judgement per entity: a replay may score an entity more than once.
    labelled = labelled[ours].drop_duplicates("entity_id", keep="last")
    paired, errors = paired_scores(settings, labelled, {"canary": version, "champion": champion})
    return {
        "canary_step": canary_rel[canary_rel["ts"] >= step_start],
        "champion_step": champ_rel[champ_rel["ts"] >= step_start],
        "canary_release": canary_rel,
        "champion_reference": reference,
        "paired": paired,
        "scoring_errors": errors,
    }


_ANALYSIS_MODELS: dict[tuple[str, str, str], Any] = {}


def _analysis_model(settings: Settings, version: str) -> Any:
    """The registered version, loaded once per analysing process (a step re-analyses often)."""
    from pipelines.serving import load_served_model

    key = (settings.tracking_uri, settings.mlflow.registered_model, version)
    if key not in _ANALYSIS_MODELS:
        _ANALYSIS_MODELS[key] = load_served_model(settings, version)
    return _ANALYSIS_MODELS[key]


def paired_scores(
    settings: Settings, labelled: pd.DataFrame, versions: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Both variants' scores for every labelled row, from the logged features.

    Returns the frame :func:`pipelines.canary.analysis.check_quality` reads and, per
    variant, the error that stopped its model from scoring (then its column is NaN).
    """
    from pipelines.training import coerce_features

    frame = pd.DataFrame(
        {
            "entity_id": labelled["entity_id"].to_numpy(),
            "label": pd.to_numeric(labelled["label"], errors="coerce").to_numpy(float),
            "served_by": labelled["variant"].to_numpy(),
            "served": labelled["prediction"].to_numpy(float),
        }
    )
    errors: dict[str, str] = {}
    for variant in versions:
        frame[variant] = float("nan")
    if labelled.empty:
        return frame, errors
    try:
        feats = logged_features(labelled, settings.dataset.features.all)
        x = coerce_features(settings.dataset, feats)
    except Exception as exc:  # a log written under another contract: nobody can be judged on it
        return frame, dict.fromkeys(versions, f"logged features unreadable: {exc}")
    for variant, version in versions.items():
        try:
            model = _analysis_model(settings, version)
            frame[variant] = model.predict(x[model.column_names].reset_index(drop=True))
        except Exception as exc:
            errors[variant] = f"v{version}: {type(exc).__name__}: {exc}"
    return frame, errors


def analyse_step(settings: Settings, plan: ReleasePlan, step_start: str, *, final: bool = False) -> Analysis:
    """Judge the step that began at ``step_start`` (prediction-log time); ``final``: see ``analyse``."""
    return analyse(
        **step_frames(settings, plan, step_start),
        cfg=settings.canary,
        task=settings.dataset.target.task,
        final=final,
    )
