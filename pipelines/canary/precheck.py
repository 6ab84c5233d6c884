"""The pre-rollout check: the candidate in a fresh instance of the serving program, queried like callers do.

Users' traffic is never involved: the instance (the Docker image when ``serving.docker_image``
is set, else a subprocess) serves only the candidate, has no routing state and logs nothing.
It must load, serve the version asked for, take exactly the dataset contract's inputs, answer a
sample of the newest validated batch with finite (and, for a classifier, [0, 1]) values, answer
single rows, and refuse a malformed row with HTTP 400. Any other outcome, an unexpected error
included, rejects the candidate.
"""

from __future__ import annotations

import time
from typing import Any

from pipelines.canary.contracts import PrecheckResult, ReleasePlan
from pipelines.canary.gateway import live_gateway, sample_rows
from pipelines.canary.promotion import reject
from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context, record_event

log = get_logger(__name__)


def _probe_instance(settings: Settings, url: str, version: str) -> tuple[str | None, dict[str, Any]]:
    """Query a fresh instance; return (failure or None, figures)."""
    import numpy as np

    from pipelines.serving import GatewayClient, GatewayError

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
        batch, rows = sample_rows(settings, settings.canary.precheck_rows, settings.canary.seed)
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


def pre_rollout_check(settings: Settings, plan: ReleasePlan) -> PrecheckResult:
    """Start the candidate in a fresh serving instance and query it (raises CanaryRejectedError)."""
    from pipelines.serving import GatewayStartError, start_instance

    if not plan.moves_champion:
        return PrecheckResult(plan, skipped=plan.reason)
    version = plan.candidate
    with log_context(model_version=version, release=plan.release_key):
        inst = None
        t0 = time.perf_counter()
        try:
            inst = start_instance(settings, version)
        except GatewayStartError as exc:
            failure: str | None = f"fresh instance did not start: {exc}"
            figs: dict[str, Any] = {}
        else:
            try:
                failure, figs = _probe_instance(settings, inst.url, version)
            except Exception as exc:  # an unexpected answer is a failed check, never a pass
                failure, figs = f"pre-rollout check errored: {type(exc).__name__}: {exc}", {}
        finally:
            logs = inst.stop() if inst is not None else ""
        figs["instance"] = inst.details | {"kind": inst.kind} if inst is not None else None
        figs["seconds"] = round(time.perf_counter() - t0, 2)
        record_event(
            settings.paths.events,
            "canary_step",
            f"{plan.key}/precheck",
            model_name=plan.model_name,
            version=version,
            step="precheck",
            verdict="failed" if failure else "success",
            reason=failure or "candidate served the sample batch in a fresh instance",
            figures=figs,
            instance_log_tail=logs[-3000:] if failure else "",
        )
        if failure:
            gw = live_gateway(settings) if plan.champion_version else None
            raise reject(settings, plan, "pre-rollout check", failure, figs, gw)
        log.info(
            "pre-rollout check passed", **{k: figs.get(k) for k in ("rows", "batch_ms", "single_p50_ms")}
        )
        return PrecheckResult(plan, figures=figs)
