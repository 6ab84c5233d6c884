"""One function per ``optimize_*`` DAG task: load settings, make one call, return a small dict.

Reports (JSON, PNG, HTML) stay on disk and in MLflow; XCom carries only their paths,
run ids, versions and the headline figures.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import load_settings
from pipelines.core.observability import get_logger

log = get_logger(__name__)
REGISTRATION_KEYS = ("model_name", "version", "run_id", "alias", "verdict")


def is_final(exc: BaseException) -> bool:
    """A search space that does not fit, or a training refusal that retrying cannot fix."""
    from pipelines.optimize.tuning import TuningError
    from pipelines.training.steps import is_final as training_final

    return isinstance(exc, TuningError) or training_final(exc)


def _window(params: dict[str, Any]) -> Any:
    w = params.get("window")
    return None if w in (None, "", []) else w


def tune_step(params: dict[str, Any] | None) -> dict[str, Any]:
    """Tuning within the budget (param ``budget_seconds`` overrides the config when >= 0)."""
    from pipelines.optimize.tuning import tune

    params = dict(params or {})
    budget = params.get("budget_seconds")
    report = tune(
        load_settings(),
        _window(params),
        params.get("holdout") or None,
        budget_seconds=None if budget is None or float(budget) < 0 else float(budget),
        propose=bool(params.get("propose", True)),
    )
    candidate = report.get("candidate") or {}
    return {
        "status": report["status"],
        "reason": report["reason"],
        "parent_run_id": report.get("parent_run_id"),
        "default_score": report.get("default_score"),
        "best_score": report.get("best_score"),
        "report_path": report.get("report_path"),
        # The training chain's registration, so its challenger hand-off logic applies unchanged.
        "registration": {
            k: candidate.get(k) for k in ("model_name", "version", "run_id", "alias", "verdict")
        },
    }


def has_new_challenger(result: dict[str, Any]) -> bool:
    from pipelines.training.steps import has_new_challenger as training_has_new_challenger

    reg = result.get("registration") or {}
    return bool(reg.get("version")) and training_has_new_challenger(reg)


def challenger_event_extra(result: dict[str, Any]) -> dict[str, Any]:
    from pipelines.training.steps import challenger_event_extra as extra

    return {**extra(result["registration"]), "source": "optimize_tuning"}


def model_choice_step(params: dict[str, Any] | None) -> dict[str, Any]:
    from pipelines.optimize.model_choice import choose_model

    params = dict(params or {})
    report = choose_model(
        load_settings(), _window(params), params.get("holdout") or None, propose=bool(params.get("propose"))
    )
    candidate = report.get("candidate") or {}
    return {
        "pick": report["pick"],
        "pick_reason": report["pick_reason"],
        "pareto_front": report["pareto_front"],
        "parent_run_id": report["parent_run_id"],
        "report_path": report["report_path"],
        "registration": {
            k: candidate.get(k) for k in ("model_name", "version", "run_id", "alias", "verdict")
        },
    }


def capacity_step(params: dict[str, Any] | None) -> dict[str, Any]:
    from pipelines.optimize.capacity import plan_capacity

    params = dict(params or {})
    report = plan_capacity(
        load_settings(),
        source=str(params.get("source") or "prediction_log"),
        version=params.get("version") or None,
        load_test=bool(params.get("load_test", True)),
        apply=bool(params.get("apply", False)),
    )
    rec = report["recommendation"] or {}
    return {
        "forecast": report["forecast"]["status"],
        "forecast_reason": report["forecast"]["reason"],
        "recommendation": rec.get("status"),
        "replicas": rec.get("replicas"),
        "arithmetic": rec.get("arithmetic") or rec.get("reason"),
        "scaling": report.get("scaling"),
        "report_path": report["report_path"],
    }


def cost_step(params: dict[str, Any] | None) -> dict[str, Any]:
    from pipelines.optimize.unit_cost import version_costs

    params = dict(params or {})
    versions = params.get("versions") or None
    if isinstance(versions, str):
        versions = [v.strip() for v in versions.split(",") if v.strip()]
    out = version_costs(
        load_settings(), versions, remeasure_training=bool(params.get("remeasure_training", True))
    )
    return {"report_path": out["report_path"], "versions": [v["version"] for v in out["versions"]]}


def scorecard_step() -> dict[str, Any]:
    from pipelines.optimize.scorecard import build_scorecard, write_scorecard_html

    settings = load_settings()
    card = build_scorecard(settings)
    path = write_scorecard_html(settings, card)
    r = card["readiness"]
    d = card["delivery"]
    return {
        "html": str(path),
        "readiness": f"{r['passed']}/{r['total']}",
        "promotions": d["deployment_frequency"]["promotions"],
        "change_failure_rate": d["change_failure_rate"]["rate"],
        "lead_time_median_h": d["lead_time"]["hours"]["median"],
    }
