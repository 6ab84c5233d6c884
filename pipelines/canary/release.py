"""Canary release of a challenger: plan, pre-rollout check, traffic steps, promotion, rollback.

Each public function is one DAG task (``dags/automate_canary_release.py``) and
takes/returns a small plan dict, so the DAG passes references only. The order
of a release, and what each stage guarantees:

1. :func:`plan_release` resolves the candidate (asset event > ``version`` param >
   ``@challenger``) and the current champion. No champion yet = *bootstrap*: the
   candidate is promoted after the pre-rollout check alone (nothing to compare with).
2. :func:`pre_rollout_check` starts the candidate in a fresh instance of the serving
   program (Docker image or subprocess) and queries it with rows of the newest
   validated batch; users' traffic is never involved.
3. :func:`run_traffic_steps` puts the candidate on the live gateway as canary and
   walks the configured weights; each step is held for a window and a minimum
   number of canary requests, then judged by :mod:`pipelines.canary.analysis`.
   *failed* → weight 0 at once; *inconclusive* → hold and re-analyse; still
   inconclusive at ``step_timeout_s`` → fail safe.
4. :func:`promote_candidate` moves ``@champion`` (with an audit trail in version
   tags), promotes on the gateway, then proves the gateway serves the new version
   (``/version`` and a real ``/invocations`` answer) — or restores the alias and fails.

A rejected candidate leaves the champion serving, loses ``@challenger``, gets
``canary.*`` tags saying why, and a ``rollback`` event; the task then raises
:class:`CanaryRejectedError` so the DAG run shows the release failed.
:func:`rollback_release` is the one-command rollback (CLI and DAG param).
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pipelines.canary.analysis import MIN_SHIFT_ROWS, Analysis, analyse
from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context, record_event, write_json_atomic
from pipelines.core.predlog import read_labelled, read_predictions, utc_now_iso
from pipelines.serving.client import GatewayClient, GatewayError, admin_token
from pipelines.serving.launcher import GatewayStartError, ensure_gateway, start_instance

log = get_logger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
MAX_TAG_CHARS = 4900
REFERENCE_ROWS = 5000


class CanaryRejectedError(RuntimeError):
    """The candidate was rejected (pre-rollout check or a traffic step); the champion keeps serving."""


class ReleaseError(RuntimeError):
    """The release could not be carried out safely (inconsistent state, unverifiable promotion)."""


# --------------------------------------------------------------------------- registry helpers
def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def alias_version(settings: Settings, alias: str) -> str | None:
    from pipelines.serving.models import resolve_alias

    return resolve_alias(settings, alias)


def _tag(settings: Settings, version: str, tags: dict[str, Any]) -> None:
    client = _client(settings)
    name = settings.mlflow.registered_model
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        client.set_model_version_tag(name, version, key, text[:MAX_TAG_CHARS])


def _drop_challenger(settings: Settings, version: str) -> bool:
    """Remove ``@challenger`` if it still points at ``version`` (a newer challenger keeps it)."""
    if alias_version(settings, CHALLENGER) == version:
        _client(settings).delete_registered_model_alias(settings.mlflow.registered_model, CHALLENGER)
        return True
    return False


def _gateway(settings: Settings) -> GatewayClient:
    return GatewayClient(ensure_gateway(settings), admin_token())


def _sample_rows(settings: Settings, n: int, seed: int) -> tuple[str, list[dict[str, Any]]]:
    import numpy as np

    from pipelines.serving.traffic import batch_requests, newest_batch

    batch = newest_batch(settings)
    records, _ = batch_requests(settings, batch)
    idx = np.random.default_rng(seed).choice(len(records), size=min(n, len(records)), replace=False)
    return batch, [records[int(i)] for i in sorted(idx)]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- 1. plan
def _event_version(settings: Settings, triggering_events: Any) -> str | None:
    """The newest CHALLENGER_MODEL event's version for this model (duck-typed Airflow events)."""
    if not triggering_events:
        return None
    found = None
    try:
        groups = triggering_events.values()
    except AttributeError:
        return None
    for events in groups:
        for ev in events or []:
            extra = getattr(ev, "extra", None) or {}
            if extra.get("version") and extra.get("model_name", settings.mlflow.registered_model) == (
                settings.mlflow.registered_model
            ):
                found = str(extra["version"])
    return found


def plan_release(
    settings: Settings,
    version: str | None = "@challenger",
    rollback: bool = False,
    steps: list[int] | None = None,
    triggering_events: Any = None,
) -> dict[str, Any]:
    """Decide what this run does: ``release``, ``bootstrap``, ``rollback`` or ``noop`` (with why)."""
    name = settings.mlflow.registered_model
    steps = [int(s) for s in (steps or settings.canary.steps)]
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise ValueError(f"canary steps must be increasing percentages in (0, 100], got {steps}")
    base: dict[str, Any] = {"model_name": name, "steps": steps, "planned_at": _now()}
    if rollback:
        return {**base, "action": "rollback", "version": None, "reason": "rollback requested (DAG param)"}
    requested = _event_version(settings, triggering_events) or (version or "@challenger")
    if requested.startswith("@"):
        resolved = alias_version(settings, requested[1:])
        if resolved is None:
            return {**base, "action": "noop", "version": None, "reason": f"no {requested} version to release"}
    else:
        resolved = str(requested)
        try:
            _client(settings).get_model_version(name, resolved)
        except Exception as exc:
            raise ValueError(
                f"{name} version {resolved} does not exist in {settings.tracking_uri}: {exc}"
            ) from exc
    champion = alias_version(settings, CHAMPION)
    plan = {**base, "version": resolved, "requested": requested, "champion_version": champion}
    if champion == resolved:
        return {**plan, "action": "noop", "reason": f"version {resolved} is already the champion"}
    action = "bootstrap" if champion is None else "release"
    plan.update(
        action=action,
        started_at=utc_now_iso(),
        release_key=f"{name}/v{resolved}",
        reason="bootstrap: no champion yet"
        if champion is None
        else f"canary v{resolved} vs champion v{champion}",
    )
    write_json_atomic(settings.paths.serving / "releases" / f"{name}-v{resolved}.json", plan)
    log.info("release planned", **{k: plan[k] for k in ("action", "version", "champion_version", "steps")})
    return plan


def route_for(plan: dict[str, Any]) -> str:
    """DAG branch: the rollback task, or the release path."""
    return "rollback" if plan.get("action") == "rollback" else "pre_rollout_check"


# --------------------------------------------------------------------------- rejection
def _reject(
    settings: Settings,
    plan: dict[str, Any],
    stage: str,
    reason: str,
    figures: dict[str, Any] | None = None,
    gateway: GatewayClient | None = None,
) -> CanaryRejectedError:
    """Take the candidate out of traffic, record why everywhere, and build the error to raise."""
    name, version = plan["model_name"], str(plan["version"])
    served: dict[str, Any] = {}
    if gateway is not None:
        try:
            info = gateway.version()
            if info.get("canary") and str(info["canary"]["version"]) == version:
                gateway.rollback(reason=f"canary v{version} failed {stage}: {reason}"[:1000])
            served = gateway.version()
        except GatewayError as exc:
            served = {"error": str(exc)}
    champion_serving = (
        (served.get("champion") or {}).get("version") if served else plan.get("champion_version")
    )
    _tag(
        settings,
        version,
        {
            "canary.verdict": "rejected",
            "canary.stage": stage,
            "canary.reason": reason,
            "canary.rejected_at": _now(),
            "canary.figures": figures or {},
        },
    )
    dropped = _drop_challenger(settings, version)
    path = record_event(
        settings.paths.events,
        "rollback",
        f"{name}/v{version}/{plan.get('started_at', _now())}",
        model_name=name,
        version=version,
        stage=stage,
        reason=reason,
        champion_version=plan.get("champion_version"),
        champion_serving=champion_serving,
        challenger_alias_removed=dropped,
        figures=figures or {},
    )
    log.error("canary rejected", version=version, stage=stage, reason=reason, evidence=str(path))
    keeps = (
        f"champion v{champion_serving} keeps serving" if champion_serving else "no champion is serving yet"
    )
    return CanaryRejectedError(
        f"canary {name} v{version} rejected at {stage}: {reason}; {keeps}; @challenger removed: {dropped}; "
        f"evidence: {path}"
    )


# --------------------------------------------------------------------------- 2. pre-rollout check
def _probe_instance(
    settings: Settings, url: str, version: str, plan: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """Query a fresh instance; return (failure or None, figures)."""
    import numpy as np

    figs: dict[str, Any] = {}
    with GatewayClient(url) as gw:
        code, health = gw.health()
        figs["health"] = health
        if code != 200 or health.get("status") != "ok":
            return f"candidate failed to load in a fresh instance: {health.get('error') or health}", figs
        info = gw.version()
        champ = info.get("champion") or {}
        figs["load_seconds"] = champ.get("load_seconds")
        figs["warmup_error"] = champ.get("warmup_error")
        if str(champ.get("version")) != version:
            return f"fresh instance serves version {champ.get('version')}, not {version}", figs
        inputs = [c["name"] for c in champ.get("inputs", [])]
        contract = settings.dataset.features.all
        missing, extra = sorted(set(contract) - set(inputs)), sorted(set(inputs) - set(contract))
        if missing or extra:
            return (
                f"candidate's input signature does not match the dataset contract (missing {missing}, "
                f"unexpected {extra})",
                figs,
            )
        batch, rows = _sample_rows(settings, settings.canary.precheck_rows, settings.canary.seed)
        figs.update(batch_id=batch, rows=len(rows))
        columns = list(rows[0])
        split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}
        t0 = time.perf_counter()
        try:
            body, _ = gw.invoke(split)
        except GatewayError as exc:
            return f"candidate failed on {len(rows)} rows of batch {batch}: {exc}", figs
        figs["batch_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        preds = np.asarray(body.get("predictions", []), dtype=float)
        if preds.shape != (len(rows),):
            return f"candidate returned {preds.shape} predictions for {len(rows)} rows", figs
        if not np.isfinite(preds).all():
            return f"candidate returned {int((~np.isfinite(preds)).sum())} non-finite predictions", figs
        if settings.dataset.target.task == "classification" and ((preds < 0) | (preds > 1)).any():
            return "candidate returned probabilities outside [0, 1]", figs
        figs.update(
            prediction_mean=round(float(preds.mean()), 4), prediction_std=round(float(preds.std()), 4)
        )
        latencies = []
        for r in rows[:20]:
            t1 = time.perf_counter()
            try:
                gw.invoke({"dataframe_records": [r]})
            except GatewayError as exc:
                return f"candidate failed on a single-row request: {exc}", figs
            latencies.append((time.perf_counter() - t1) * 1000)
        figs.update(single_p50_ms=round(float(np.percentile(latencies, 50)), 2))
        figs.update(single_max_ms=round(float(max(latencies)), 2))
        bad = dict(rows[0])
        bad[settings.dataset.features.all[0]] = "not-a-value"
        try:
            gw.invoke({"dataframe_records": [bad]})
            return "candidate instance accepted a malformed row (input enforcement broken)", figs
        except GatewayError as exc:
            if exc.status_code != 400:
                return (
                    f"candidate instance answered a malformed row with HTTP {exc.status_code}, not 400",
                    figs,
                )
    return None, figs


def pre_rollout_check(settings: Settings, plan: dict[str, Any]) -> dict[str, Any]:
    """Start the candidate in a fresh serving instance and query it (raises CanaryRejectedError)."""
    if plan.get("action") not in ("release", "bootstrap"):
        return {**plan, "precheck": {"skipped": plan.get("reason")}}
    version = str(plan["version"])
    with log_context(model_version=version, release=plan.get("release_key")):
        inst = None
        t0 = time.perf_counter()
        try:
            inst = start_instance(settings, version)
        except GatewayStartError as exc:
            failure: str | None = f"fresh instance did not start: {exc}"
            figs: dict[str, Any] = {}
        else:
            try:
                failure, figs = _probe_instance(settings, inst.url, version, plan)
            except Exception as exc:  # an unexpected answer is a failed check, never a pass
                failure, figs = f"pre-rollout check errored: {type(exc).__name__}: {exc}", {}
        finally:
            logs = inst.stop() if inst is not None else ""
        figs["instance"] = inst.details | {"kind": inst.kind} if inst is not None else None
        figs["seconds"] = round(time.perf_counter() - t0, 2)
        record_event(
            settings.paths.events,
            "canary_step",
            f"{plan['release_key']}/precheck",
            model_name=plan["model_name"],
            version=version,
            step="precheck",
            verdict="failed" if failure else "success",
            reason=failure or "candidate served the sample batch in a fresh instance",
            figures=figs,
            instance_log_tail=logs[-3000:] if failure else "",
        )
        if failure:
            gw = _gateway(settings) if plan.get("champion_version") else None
            raise _reject(settings, plan, "pre-rollout check", failure, figs, gw)
        log.info(
            "pre-rollout check passed", **{k: figs.get(k) for k in ("rows", "batch_ms", "single_p50_ms")}
        )
        return {**plan, "precheck": figs}


# --------------------------------------------------------------------------- 3. traffic steps
def _frames(settings: Settings, plan: dict[str, Any], step_start: str) -> dict[str, Any]:
    version, champion, started = str(plan["version"]), str(plan["champion_version"]), plan["started_at"]
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
    from pipelines.serving.models import load_served_model

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
    from pipelines.core.predlog import PREDICTION_COLUMNS
    from pipelines.training.features import coerce_features

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
    clash = {*PREDICTION_COLUMNS, "label", "available_at", "label_event_time"}
    try:
        feats = pd.DataFrame(
            {c: labelled[f"feature_{c}" if c in clash else c] for c in settings.dataset.features.all}
        )
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


def analyse_step(settings: Settings, plan: dict[str, Any], step_start: str) -> Analysis:
    return analyse(
        **_frames(settings, plan, step_start), cfg=settings.canary, task=settings.dataset.target.task
    )


def _requests_needed(settings: Settings, weight: float, have: int, last: Analysis | None) -> int:
    """Replay requests likely to bring the canary what the step still lacks (requests, labels)."""
    cfg = settings.canary
    need = max(cfg.min_requests - have, 0)
    labels_needed = 0
    if last is not None:
        figs = last.figures()
        labelled = int(figs.get("quality.labelled") or 0)
        if figs.get("quality.status") == "insufficient" or (
            figs.get("shift.status") == "insufficient" and labelled >= cfg.quality_min_labels
        ):
            # Too few labels, worse-but-not-significant, or a shift awaiting a tighter quality
            # CI: half as many labels again narrows it by ~20%. Both variants' rows count (paired).
            labels_needed = max(cfg.quality_min_labels - labelled, labelled // 2)
        if figs.get("shift.status") == "insufficient":
            need = max(need, MIN_SHIFT_ROWS - int(figs.get("shift.canary_rows") or 0))
    need = max(need, 10)
    canary_share = weight / 100.0
    return min(20000, max(50, math.ceil(need / canary_share * 1.15) + 20, math.ceil(labels_needed * 1.15)))


def _run_step(settings: Settings, plan: dict[str, Any], gw: GatewayClient, weight: int) -> dict[str, Any]:
    cfg = settings.canary
    version = str(plan["version"])
    gw.set_weight(weight, reason=f"canary step {weight}%")
    step_start = utc_now_iso()
    t0 = time.monotonic()
    deadline = t0 + cfg.step_timeout_s
    traffic: list[dict[str, Any]] = []
    iteration = 0
    last: Analysis | None = None
    while True:
        iteration += 1
        if cfg.replay_traffic:
            from pipelines.serving.traffic import send_traffic

            have = int(last.figures().get("errors.requests") or 0) if last is not None else 0
            n = _requests_needed(settings, weight, have, last)
            summary = send_traffic(settings, plan.get("batch_id"), n, base_url=gw.base_url)
            traffic.append(
                {k: summary[k] for k in ("requests", "statuses", "variants", "rate_achieved", "labels_sent")}
            )
        else:
            time.sleep(cfg.analysis_interval_s)
        gw.flush()
        served = gw.version()
        if not served.get("canary") or str(served["canary"]["version"]) != version:
            raise ReleaseError(
                f"canary v{version} is no longer on the gateway (rolled back or replaced externally); "
                f"gateway serves {served.get('champion', {}).get('version')} / canary {served.get('canary')}"
            )
        analysis = last = analyse_step(settings, plan, step_start)
        held = time.monotonic() - t0
        verdict, reason = analysis.verdict, analysis.reason
        timed_out = time.monotonic() > deadline
        if verdict == "inconclusive" and timed_out:
            verdict, reason = (
                "failed",
                f"still inconclusive after {cfg.step_timeout_s:.0f}s (fail safe): {reason}",
            )
        done = verdict == "failed" or (verdict == "success" and held >= cfg.step_window_s)
        result = {
            "step": weight,
            "verdict": verdict if done else "holding",
            "analysis_verdict": analysis.verdict,
            "reason": reason,
            "iteration": iteration,
            "held_seconds": round(held, 1),
            "step_start": step_start,
            "figures": analysis.figures(),
            "checks": analysis.to_dict()["checks"],
            "traffic": traffic,
        }
        record_event(
            settings.paths.events,
            "canary_step",
            f"{plan['release_key']}/step-{weight}",
            model_name=plan["model_name"],
            version=version,
            champion_version=plan["champion_version"],
            **result,
        )
        log.info("canary step analysed", step=weight, verdict=result["verdict"], reason=reason[:300])
        if done:
            return result
        if verdict == "success" and not cfg.replay_traffic:
            continue
        if verdict == "success":  # judged already; only the window remains
            time.sleep(max(0.0, min(cfg.step_window_s - held, cfg.analysis_interval_s)))


def run_traffic_steps(settings: Settings, plan: dict[str, Any]) -> dict[str, Any]:
    """Walk the canary weights on the live gateway; raises CanaryRejectedError on a failed step."""
    if plan.get("action") != "release":
        return {**plan, "steps_result": [], "steps_note": f"no traffic steps: {plan.get('reason')}"}
    version, champion = str(plan["version"]), str(plan["champion_version"])
    with log_context(model_version=version, release=plan["release_key"]):
        gw = _gateway(settings)
        served = gw.version()
        serving = (served.get("champion") or {}).get("version")
        if str(serving) != champion:
            raise ReleaseError(
                f"gateway {gw.base_url} serves champion v{serving} but the registry's @champion is "
                f"v{champion}; refusing to start a canary on an inconsistent base "
                "(check `mlops serving status`)"
            )
        if served.get("canary") and str(served["canary"]["version"]) != version:
            raise ReleaseError(f"another canary (v{served['canary']['version']}) is already on the gateway")
        if plan.get("batch_id") is None and settings.canary.replay_traffic:
            from pipelines.serving.traffic import newest_batch

            plan = {**plan, "batch_id": newest_batch(settings)}
        try:
            gw.set_canary(version, 0, reason=f"canary release of v{version}")
        except GatewayError as exc:
            raise _reject(settings, plan, "set canary", str(exc), None, gw) from exc
        results = []
        for weight in plan["steps"]:
            res = _run_step(settings, plan, gw, weight)
            results.append(res)
            if res["verdict"] != "success":
                raise _reject(settings, plan, f"step {weight}%", res["reason"], res["figures"], gw)
        return {
            **plan,
            "steps_result": [{k: r[k] for k in ("step", "verdict", "reason", "figures")} for r in results],
        }


# --------------------------------------------------------------------------- 4. promotion
def verify_served(settings: Settings, gw: GatewayClient, version: str) -> dict[str, Any]:
    """Prove the gateway serves ``version``: /version, and a real answer naming it."""
    info = gw.version()
    champ = str((info.get("champion") or {}).get("version"))
    if champ != version or info.get("canary") is not None:
        raise ReleaseError(
            f"gateway {gw.base_url} /version says champion v{champ}, canary {info.get('canary')}; "
            f"expected v{version} alone"
        )
    _, rows = _sample_rows(settings, 1, settings.canary.seed)
    body, headers = gw.invoke({"dataframe_records": rows})
    answered = headers.get("x-model-version")
    if (
        answered != version
        or body.get("model_version") != version
        or headers.get("x-model-variant") != CHAMPION
    ):
        raise ReleaseError(
            f"gateway {gw.base_url} answered with version {answered} "
            f"({headers.get('x-model-variant')}), expected v{version}"
        )
    return {"version_endpoint": champ, "invocation_version": answered, "prediction": body["predictions"][0]}


def promote_candidate(settings: Settings, plan: dict[str, Any]) -> dict[str, Any]:
    """Move @champion to the candidate (audit tags), promote on the gateway, verify what is served."""
    action = plan.get("action")
    if action not in ("release", "bootstrap"):
        return {**plan, "promotion": {"skipped": plan.get("reason")}}
    name, version = plan["model_name"], str(plan["version"])
    with log_context(model_version=version, release=plan["release_key"]):
        # Reach the gateway first: if it is down, nothing in the registry has changed yet.
        gw = _gateway(settings)
        client = _client(settings)
        expected = plan.get("champion_version")
        previous = alias_version(settings, CHAMPION)
        if previous == version and expected != version:
            # A retried task: an earlier attempt moved the alias; go on if it started from `expected`.
            recorded = (client.get_model_version(name, version).tags or {}).get("release.previous_champion")
            if recorded != (expected or "none"):
                raise ReleaseError(
                    f"@champion already on v{version}, moved from v{recorded}, not v{expected}"
                )
            previous = expected
        elif previous != expected:
            raise ReleaseError(
                f"@champion moved during the release (v{expected} -> v{previous}); not promoting v{version}"
            )
        if action == "bootstrap":
            reason = (
                "bootstrap: first champion, promoted after the pre-rollout check alone "
                "(no traffic to compare with)"
            )
            figures: dict[str, Any] = {"precheck": plan.get("precheck", {})}
        else:
            steps = plan.get("steps_result", [])
            reason = "passed canary steps " + " -> ".join(f"{s['step']}%" for s in steps)
            figures = {"steps": {str(s["step"]): s["figures"] for s in steps}}
        promoted_at = _now()
        try:
            client.set_registered_model_alias(name, CHAMPION, version)
            _tag(
                settings,
                version,
                {
                    "release.previous_champion": previous or "none",
                    "release.promoted_at": promoted_at,
                    "release.reason": reason,
                    "release.analysis": figures,
                    "canary.verdict": "promoted",
                },
            )
            served = gw.version()
            if served.get("canary") and str(served["canary"]["version"]) == version:
                gw.promote(version, reason=reason, figures={"release_key": plan["release_key"]})
            else:
                gw.set_champion(version, reason=reason)
            proof = verify_served(settings, gw, version)
        except Exception as exc:  # whatever failed, the registry must not claim an unserved champion
            if previous:
                client.set_registered_model_alias(name, CHAMPION, previous)
            else:
                client.delete_registered_model_alias(name, CHAMPION)
            _tag(settings, version, {"canary.verdict": "promotion_failed", "canary.reason": str(exc)})
            raise ReleaseError(
                f"promotion of v{version} could not be completed and verified on the gateway "
                f"({type(exc).__name__}: {exc}); @champion restored to {previous or 'none'}"
            ) from exc
        if previous:
            _tag(settings, previous, {"release.superseded_by": version, "release.superseded_at": promoted_at})
        dropped = _drop_challenger(settings, version)
        path = record_event(
            settings.paths.events,
            "release",
            plan["release_key"],
            model_name=name,
            version=version,
            previous_champion=previous,
            action=action,
            reason=reason,
            promoted_at=promoted_at,
            challenger_alias_removed=dropped,
            served=proof,
            figures=figures,
        )
        log.info("promoted", version=version, previous=previous, evidence=str(path))
        return {
            **plan,
            "promotion": {"promoted_at": promoted_at, "previous_champion": previous, "served": proof},
        }


# --------------------------------------------------------------------------- 5. rollback
def rollback_release(
    settings: Settings, reason: str = "manual rollback", to_version: str | None = None
) -> dict[str, Any]:
    """One-command rollback: abort a running canary, or return to the last good champion."""
    name = settings.mlflow.registered_model
    gw = _gateway(settings)
    info = gw.version()
    now = _now()
    if info.get("canary"):
        aborted = str(info["canary"]["version"])
        gw.rollback(reason=reason)
        champion = str((info.get("champion") or {}).get("version"))
        proof = verify_served(settings, gw, champion)
        _tag(
            settings,
            aborted,
            {"canary.verdict": "rolled_back", "canary.reason": reason, "canary.rejected_at": now},
        )
        dropped = _drop_challenger(settings, aborted)
        result = {
            "scope": "canary",
            "aborted": aborted,
            "champion": champion,
            "served": proof,
            "challenger_alias_removed": dropped,
        }
    else:
        current = alias_version(settings, CHAMPION)
        served = str((info.get("champion") or {}).get("version"))
        if current is None:
            raise ReleaseError("nothing to roll back: no @champion in the registry")
        target = to_version
        if target is None:
            mv = _client(settings).get_model_version(name, current)
            prev = (mv.tags or {}).get("release.previous_champion")
            target = prev if prev and prev != "none" else None
        if target is None:
            state = gw.state()
            target = next(
                (
                    str(h["previous_champion"])
                    for h in reversed(state.get("history", []))
                    if h.get("ok", True) and h.get("champion") == current and h.get("previous_champion")
                ),
                None,
            )
        if target is None or str(target) == current:
            raise ReleaseError(
                f"nothing to roll back to: champion v{current} has no previous champion recorded"
            )
        target = str(target)
        client = _client(settings)
        client.set_registered_model_alias(name, CHAMPION, target)
        try:
            gw.rollback(reason=reason, to_version=target)
            proof = verify_served(settings, gw, target)
        except Exception as exc:  # the gateway still serves v{current}: the registry must say so
            client.set_registered_model_alias(name, CHAMPION, current)
            raise ReleaseError(
                f"rollback to v{target} failed on the gateway ({type(exc).__name__}: {exc}); "
                f"@champion left on v{current}, which is still served"
            ) from exc
        _tag(
            settings,
            current,
            {
                "release.rolled_back_at": now,
                "release.rolled_back_reason": reason,
                "release.rolled_back_to": target,
            },
        )
        _tag(settings, target, {"release.restored_at": now, "release.restored_from": current})
        result = {
            "scope": "champion",
            "from": current,
            "to": target,
            "served_before": served,
            "served": proof,
        }
    path = record_event(
        settings.paths.events, "rollback", f"{name}/manual/{now}", model_name=name, reason=reason, **result
    )
    log.warning("rolled back", evidence=str(path), **{k: v for k, v in result.items() if k != "served"})
    return {**result, "evidence": str(path)}


def run_release(
    settings: Settings, version: str = "@challenger", steps: list[int] | None = None
) -> dict[str, Any]:
    """The whole release in one call (CLI, demo): plan → pre-rollout check → steps → promotion.

    Returns a summary with each stage's verdict; a rejected candidate is reported
    (``outcome="rejected"``), not raised, since the rollback already happened.
    """
    plan = plan_release(settings, version=version, steps=steps)
    summary: dict[str, Any] = {k: plan.get(k) for k in ("action", "version", "champion_version", "reason")}
    try:
        plan = pre_rollout_check(settings, plan)
        plan = run_traffic_steps(settings, plan)
        plan = promote_candidate(settings, plan)
    except CanaryRejectedError as exc:
        return {**summary, "outcome": "rejected", "error": str(exc), "steps": _step_verdicts(settings, plan)}
    outcome = "promoted" if plan.get("action") in ("release", "bootstrap") else plan.get("action")
    return {
        **summary,
        "outcome": outcome,
        "precheck": plan.get("precheck"),
        "steps": _step_verdicts(settings, plan),
        "promotion": plan.get("promotion"),
    }


def _step_verdicts(settings: Settings, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-stage verdicts of this release attempt, from the recorded canary_step events."""
    from pipelines.core.observability import read_events

    key = plan.get("release_key")
    if not key:
        return []
    started = plan.get("started_at", "")
    out = []
    for e in read_events(settings.paths.events, "canary_step"):
        if not str(e.get("key", "")).startswith(f"{key}/") or e.get("recorded_at", "") < started[:19]:
            continue
        out.append({"step": e.get("step"), "verdict": e.get("verdict"), "reason": e.get("reason")})
    return out
