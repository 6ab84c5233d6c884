"""Decision metrics of the batch pipeline, pushed to a Prometheus Pushgateway.

Why a push: a DAG task lives seconds, far shorter than a scrape interval, so its figures would
never be scraped. Each decision point (a data-gate verdict, an evaluation-gate verdict, a canary
step, a drift judgement, a retrain decision, a task outcome) calls one ``emit_*`` function
below. Each push is a PUT of one *group* (Pushgateway's ``job`` plus a grouping key naming the
batch, window, release or task), so a re-run replaces its group's metrics instead of adding a
second copy, and a metric the re-run no longer has (a criterion that now passes) disappears.

The embedded default (no ``observability.pushgateway_url``) pushes nothing and says so in a
debug line; every push is also written as a Prometheus text file under
``<paths.root>/metrics/<job>/<group>.prom`` (replaced the same way), so ``make demo`` keeps the
same figures without a server and :func:`read_textfiles` can summarise them.

Metrics never decide anything: a push that fails is logged as a warning and the step goes on
(its outcome is already recorded as an event). Every name is declared in :data:`CATALOGUE`
(name -> help, label names); ``monitoring/METRICS.md`` documents the same list and a unit test
keeps the two equal.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from pipelines.config import Settings
from pipelines.core.observability import get_logger

log = get_logger(__name__)

#: Every pushed metric: name -> (help, label names besides the group's). All are gauges: a
#: pushed value is the state of one group, and Pushgateway counters would not survive a PUT.
CATALOGUE: dict[str, tuple[str, tuple[str, ...]]] = {
    # -- data quality gate (job mlops_quality, group {dataset, batch})
    "mlops_quality_batch_status": (
        "1 for the gate's verdict on the batch's current version (status: passed | passed_with_warnings"
        " | rejected), 0 for the other two",
        ("status",),
    ),
    "mlops_quality_batch_rows": (
        "Rows of the batch by gate outcome (outcome: in | accepted | quarantined)",
        ("outcome",),
    ),
    "mlops_quality_failed_expectation": (
        "1 for each expectation that quarantined rows or rejected the batch",
        ("expectation",),
    ),
    "mlops_quality_batch_validated_timestamp_seconds": (
        "When the gate judged this batch (Unix time): the dead man's switch reads the newest",
        (),
    ),
    "mlops_quality_batch_interval_seconds": (
        "Longest expected gap between two batches (the contract's batch frequency)",
        (),
    ),
    # -- evaluation gate (job mlops_training_gate, group {dataset, model, window=holdout batch})
    "mlops_training_gate_passed": ("1 when the candidate passed the evaluation gate, else 0", ()),
    "mlops_training_gate_criterion_failed": (
        "1 for each gate criterion the candidate failed",
        ("criterion",),
    ),
    "mlops_training_candidate_score": (
        "The candidate's holdout figure on the gate's primary metric",
        ("metric",),
    ),
    "mlops_training_champion_score": (
        "The champion's figure on the same holdout (absent when there is no champion)",
        ("metric",),
    ),
    "mlops_training_gate_timestamp_seconds": ("When the gate judged the candidate (Unix time)", ()),
    # -- registration (job mlops_training_registry, group {dataset, model, window})
    "mlops_training_challenger_registered_timestamp_seconds": (
        "When a candidate of this window was left holding @challenger (Unix time)",
        (),
    ),
    # -- canary release (job mlops_canary, group {dataset, model, release})
    "mlops_canary_step_verdict": (
        "1 for each traffic step's final verdict (step: canary weight in percent; verdict: success | failed)",
        ("step", "verdict"),
    ),
    "mlops_canary_release_outcome": (
        "1 for how the release ended (outcome: promoted | rejected | rolled_back)",
        ("outcome",),
    ),
    "mlops_canary_release_timestamp_seconds": ("When the release ended (Unix time)", ()),
    # -- rollbacks (job mlops_canary_rollback, group {dataset, model, scope})
    "mlops_canary_rollback_timestamp_seconds": (
        "When the last rollback of this scope happened (Unix time; scope canary | champion)",
        (),
    ),
    # -- drift monitoring (job mlops_monitoring, group {dataset, model, window})
    "mlops_monitoring_feature_drift_score": (
        "Evidently drift score of an important feature vs the reference (method: wasserstein,"
        " jensenshannon...)",
        ("feature", "method"),
    ),
    "mlops_monitoring_feature_drift_threshold": (
        "Score at which the feature counts as drifted",
        ("feature", "method"),
    ),
    "mlops_monitoring_prediction_drift_score": ("Drift score of the served predictions", ("method",)),
    "mlops_monitoring_drift_share": ("Share of all columns Evidently found drifted (0-1)", ()),
    "mlops_monitoring_performance": (
        "The champion's figure on labels matured by the as-of time",
        ("metric",),
    ),
    "mlops_monitoring_performance_baseline": ("The serving version's holdout figure", ("metric",)),
    "mlops_monitoring_performance_floor": (
        "The evaluation gate's absolute bound for the metric",
        ("metric",),
    ),
    "mlops_monitoring_performance_floor_margin": (
        "How far the matured-label figure is inside the gate's bound (negative = beyond it),"
        " whatever the metric's direction",
        ("metric",),
    ),
    "mlops_monitoring_mature_labels": ("Labels matured by the as-of time (the performance's sample)", ()),
    "mlops_monitoring_predictions": ("Predictions served in the window", ()),
    "mlops_monitoring_window_judged_timestamp_seconds": ("When the window was judged (Unix time)", ()),
    # -- retrain policy (job mlops_retrain, group {dataset, model, window})
    "mlops_retrain_decision": (
        "1 for the window's decision (action: retrain | no_retrain | no_decision)",
        ("action",),
    ),
    "mlops_retrain_check_violated": (
        "1 for each policy check the window violated (check: important_drift | prediction_drift |"
        " performance): the decision's reason",
        ("check",),
    ),
    "mlops_retrain_blocked": ("1 for each guard that held a retrain back (lock, cooldown...)", ("guard",)),
    "mlops_retrain_requested_timestamp_seconds": (
        "When the window's decision asked training for a retrain (Unix time)",
        (),
    ),
    # -- Airflow task outcomes (job mlops_airflow, group {dag_id, task_id}), from callbacks
    "mlops_airflow_task_last_success": (
        "1 when the task's last finished try succeeded, 0 when it failed",
        (),
    ),
    "mlops_airflow_task_last_finished_timestamp_seconds": ("When the task last finished (Unix time)", ()),
}

BATCH_INTERVAL_SECONDS = {"month": 31 * 86400, "week": 7 * 86400, "day": 86400}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Sample:
    """One value of a catalogued metric; ``labels`` are the metric's own (not the group's)."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PushOutcome:
    """What happened to one push: ``pushed`` is None when no gateway is configured."""

    job: str
    grouping: dict[str, str]
    pushed: bool | None
    detail: str
    textfile: str | None = None


def _registry(samples: Iterable[Sample], const: Mapping[str, str]) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for s in samples:
        if s.name not in CATALOGUE:
            raise KeyError(f"metric {s.name!r} is not in pipelines.core.metrics.CATALOGUE")
        help_text, label_names = CATALOGUE[s.name]
        if set(s.labels) != set(label_names):
            raise ValueError(f"metric {s.name}: labels {sorted(s.labels)} != declared {sorted(label_names)}")
        if s.name not in gauges:
            names = (*label_names, *const)
            gauges[s.name] = Gauge(s.name, help_text, names, registry=registry)
        gauge = gauges[s.name]
        values = {**{k: str(v) for k, v in s.labels.items()}, **const}
        (gauge.labels(**values) if values else gauge).set(float(s.value))
    return registry


def group_file(settings: Settings, job: str, grouping: Mapping[str, str]) -> Path:
    """The textfile copy of one group: ``<root>/metrics/<job>/<k=v,...>.prom``."""
    name = ",".join(f"{k}={_UNSAFE.sub('_', v)}" for k, v in sorted(grouping.items())) or "all"
    return settings.paths.root / "metrics" / job / f"{name}.prom"


def push(settings: Settings, job: str, grouping: Mapping[str, str], samples: Iterable[Sample]) -> PushOutcome:
    """Replace the group ``job``/``grouping`` with ``samples``: on the Pushgateway and in its textfile.

    ``dataset`` is added to the grouping key (one Pushgateway can serve several pipelines). Never
    raises for a delivery problem; a sample outside :data:`CATALOGUE` is a programming error and
    does raise.
    """
    cfg = settings.observability
    group = {"dataset": settings.dataset.name, **{k: str(v) for k, v in grouping.items()}}
    samples = list(samples)
    registry = _registry(samples, {})
    textfile = None
    if cfg.textfile:
        path = group_file(settings, job, group)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The file carries the group's labels so it reads on its own (Pushgateway adds them itself).
            write_to_textfile(str(path), _registry(samples, {"job": job, **group}))
            textfile = str(path)
        except OSError as exc:
            log.warning("metrics textfile not written", job=job, path=str(path), error=str(exc))
    if not cfg.pushgateway_url:
        log.debug("no pushgateway configured; metrics kept in the textfile only", job=job, **group)
        return PushOutcome(job, group, None, "no pushgateway configured", textfile)
    try:
        push_to_gateway(
            cfg.pushgateway_url, job=job, registry=registry, grouping_key=group, timeout=cfg.push_timeout_s
        )
    except Exception as exc:  # urllib errors, timeouts, HTTP 4xx/5xx: report, never fail the step
        detail = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("metrics push failed", job=job, gateway=cfg.pushgateway_url, error=detail, **group)
        return PushOutcome(job, group, False, detail, textfile)
    log.debug("metrics pushed", job=job, samples=len(samples), **group)
    return PushOutcome(job, group, True, "pushed", textfile)


def read_textfiles(settings: Settings) -> list[dict[str, Any]]:
    """Every sample of every textfile under ``<root>/metrics`` as ``{name, labels, value}`` rows.

    What a report (the demo's, the scorecard) reads when no Prometheus runs.
    """
    root = settings.paths.root / "metrics"
    rows: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.prom")) if root.is_dir() else []:
        for family in text_string_to_metric_families(path.read_text()):
            for s in family.samples:
                rows.append({"name": s.name, "labels": dict(s.labels), "value": s.value})
    return rows


def summarise_textfiles(settings: Settings) -> list[dict[str, str]]:
    """One row per pushed group, for a report without Prometheus (the demo's summary page).

    ``{"job", "group", "figures"}``: the group's labels, then its non-zero figures as
    ``name{own labels}=value`` (0-valued enumeration members and timestamps left out).
    """
    root = settings.paths.root / "metrics"
    rows: list[dict[str, str]] = []
    for path in sorted(root.rglob("*.prom")) if root.is_dir() else []:
        job, group, figures = path.parent.name, "", []
        for family in text_string_to_metric_families(path.read_text()):
            own = set(CATALOGUE.get(family.name, ("", ()))[1])
            for sample in family.samples:
                if not group:
                    group = ", ".join(
                        f"{k}={v}" for k, v in sorted(sample.labels.items()) if k not in own and k != "job"
                    )
                if sample.value == 0 or sample.name.endswith("_timestamp_seconds"):
                    continue
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k in own)
                short = sample.name.removeprefix("mlops_").removeprefix(job.removeprefix("mlops_") + "_")
                figures.append(
                    f"{short}{{{labels}}}={sample.value:g}" if labels else f"{short}={sample.value:g}"
                )
        rows.append({"job": job, "group": group, "figures": "; ".join(figures)})
    return rows


def _enum(name: str, label: str, chosen: str, values: Iterable[str]) -> list[Sample]:
    return [Sample(name, 1.0 if v == chosen else 0.0, {label: v}) for v in values]


# ----------------------------------------------------------------------------- decision points


def emit_quality_verdict(
    settings: Settings, report: Mapping[str, Any], now: float | None = None
) -> PushOutcome:
    """The data gate's verdict on a batch (passed or rejected), from its report dict."""
    now = time.time() if now is None else now
    status = str(report["status"])
    samples = [
        *_enum(
            "mlops_quality_batch_status", "status", status, ("passed", "passed_with_warnings", "rejected")
        ),
        Sample("mlops_quality_batch_rows", report.get("rows_in") or 0, {"outcome": "in"}),
        Sample("mlops_quality_batch_rows", report.get("rows_accepted") or 0, {"outcome": "accepted"}),
        Sample("mlops_quality_batch_rows", report.get("rows_quarantined") or 0, {"outcome": "quarantined"}),
        *(
            Sample("mlops_quality_failed_expectation", 1, {"expectation": str(e)})
            for e in dict.fromkeys(report.get("failed_expectations") or ())
        ),
        Sample("mlops_quality_batch_validated_timestamp_seconds", now),
        Sample(
            "mlops_quality_batch_interval_seconds",
            BATCH_INTERVAL_SECONDS.get(settings.dataset.batch_frequency, 31 * 86400),
        ),
    ]
    return push(settings, "mlops_quality", {"batch": str(report["batch_id"])}, samples)


def emit_gate_verdict(
    settings: Settings,
    *,
    window: str,
    passed: bool,
    failed_criteria: Iterable[str],
    primary_metric: str,
    candidate: float | None,
    champion: float | None,
    now: float | None = None,
) -> PushOutcome:
    """The evaluation gate's verdict on a candidate trained for ``window`` (its holdout batch)."""
    samples = [
        Sample("mlops_training_gate_passed", 1.0 if passed else 0.0),
        *(
            Sample("mlops_training_gate_criterion_failed", 1, {"criterion": c})
            for c in dict.fromkeys(failed_criteria)
        ),
        Sample("mlops_training_gate_timestamp_seconds", time.time() if now is None else now),
    ]
    if candidate is not None:
        samples.append(Sample("mlops_training_candidate_score", candidate, {"metric": primary_metric}))
    if champion is not None:
        samples.append(Sample("mlops_training_champion_score", champion, {"metric": primary_metric}))
    group = {"model": settings.mlflow.registered_model, "window": window}
    return push(settings, "mlops_training_gate", group, samples)


def emit_challenger_registered(settings: Settings, window: str, now: float | None = None) -> PushOutcome:
    """A candidate of ``window`` now holds ``@challenger`` (what a retrain request waits for)."""
    sample = Sample(
        "mlops_training_challenger_registered_timestamp_seconds", time.time() if now is None else now
    )
    group = {"model": settings.mlflow.registered_model, "window": window}
    return push(settings, "mlops_training_registry", group, [sample])


def emit_release(
    settings: Settings,
    release: str,
    outcome: str,
    steps: Iterable[tuple[int, str]] = (),
    now: float | None = None,
) -> PushOutcome:
    """How a canary release ended (promoted | rejected | rolled_back) and each step's verdict."""
    samples = [
        *_enum("mlops_canary_release_outcome", "outcome", outcome, ("promoted", "rejected", "rolled_back")),
        *(Sample("mlops_canary_step_verdict", 1, {"step": str(w), "verdict": v}) for w, v in steps),
        Sample("mlops_canary_release_timestamp_seconds", time.time() if now is None else now),
    ]
    group = {"model": settings.mlflow.registered_model, "release": release}
    return push(settings, "mlops_canary", group, samples)


def emit_rollback(settings: Settings, scope: str, now: float | None = None) -> PushOutcome:
    """A rollback happened (scope canary: the canary left traffic; champion: @champion went back)."""
    sample = Sample("mlops_canary_rollback_timestamp_seconds", time.time() if now is None else now)
    group = {"model": settings.mlflow.registered_model, "scope": scope}
    return push(settings, "mlops_canary_rollback", group, [sample])


def emit_window(settings: Settings, result: Any, now: float | None = None) -> PushOutcome:
    """Drift and matured-label quality of a judged window (a ``monitoring.evidence.WindowResult``)."""
    samples: list[Sample] = [
        Sample("mlops_monitoring_predictions", float(result.n_predictions or 0)),
        Sample("mlops_monitoring_window_judged_timestamp_seconds", time.time() if now is None else now),
    ]
    for name, d in sorted((result.feature_drift or {}).items()):
        if d.score is not None:
            labels = {"feature": name, "method": d.method}
            samples.append(Sample("mlops_monitoring_feature_drift_score", d.score, labels))
            samples.append(Sample("mlops_monitoring_feature_drift_threshold", d.threshold, labels))
    pd_ = result.prediction_drift
    if pd_ is not None and pd_.score is not None:
        samples.append(Sample("mlops_monitoring_prediction_drift_score", pd_.score, {"method": pd_.method}))
    if result.drift_share is not None:
        samples.append(Sample("mlops_monitoring_drift_share", result.drift_share))
    perf = result.performance
    if perf is not None:
        metric = {"metric": perf.metric}
        samples.append(Sample("mlops_monitoring_mature_labels", float(perf.n_labels)))
        if perf.value is not None:
            samples.append(Sample("mlops_monitoring_performance", perf.value, metric))
        if perf.baseline is not None:
            samples.append(Sample("mlops_monitoring_performance_baseline", perf.baseline, metric))
        floor = settings.gate.for_task(settings.dataset.target.task).absolute.get(perf.metric)
        if floor is not None:
            samples.append(Sample("mlops_monitoring_performance_floor", floor, metric))
            if perf.value is not None:
                margin = perf.value - floor if perf.higher_is_better else floor - perf.value
                samples.append(Sample("mlops_monitoring_performance_floor_margin", margin, metric))
    group = {"model": settings.mlflow.registered_model, "window": str(result.window)}
    return push(settings, "mlops_monitoring", group, samples)


def emit_retrain_decision(
    settings: Settings,
    window: str,
    action: str,
    violated: Iterable[str] = (),
    blocked_by: Iterable[str] = (),
    now: float | None = None,
) -> PushOutcome:
    """The retrain policy's decision for ``window``, its bounded reasons and the guards that held it."""
    samples = [
        *_enum("mlops_retrain_decision", "action", action, ("retrain", "no_retrain", "no_decision")),
        *(Sample("mlops_retrain_check_violated", 1, {"check": c}) for c in dict.fromkeys(violated)),
        *(Sample("mlops_retrain_blocked", 1, {"guard": g}) for g in dict.fromkeys(blocked_by)),
    ]
    if action == "retrain":
        samples.append(
            Sample("mlops_retrain_requested_timestamp_seconds", time.time() if now is None else now)
        )
    group = {"model": settings.mlflow.registered_model, "window": window}
    return push(settings, "mlops_retrain", group, samples)


def emit_task_outcome(
    settings: Settings, dag_id: str, task_id: str, success: bool, now: float | None = None
) -> PushOutcome:
    """A task's final outcome (Airflow success/failure callbacks; retries are not outcomes)."""
    samples = [
        Sample("mlops_airflow_task_last_success", 1.0 if success else 0.0),
        Sample("mlops_airflow_task_last_finished_timestamp_seconds", time.time() if now is None else now),
    ]
    return push(settings, "mlops_airflow", {"dag_id": dag_id, "task_id": task_id}, samples)


def task_outcome_callback(context: Any, success: bool) -> None:
    """Airflow callback body: record the task's outcome; never raises (a callback must not fail)."""
    try:
        from pipelines.config import load_settings

        ti = context.get("ti") or context.get("task_instance")
        dag = context.get("dag")
        dag_id = str(getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "unknown"))
        task_id = str(getattr(ti, "task_id", None) or "dag")
        emit_task_outcome(load_settings(), dag_id, task_id, success)
    except Exception as exc:
        log.warning("task outcome metric not recorded", error=f"{type(exc).__name__}: {exc}")
