"""Real challengers and simulated canary releases for the canary decision test and benchmark.

``train_models`` fits the project's training pipeline (``build_pipeline``, the configured
estimator) on real published months: a champion, an *equal* challenger (same window, another
seed) and a *worse* one (features permuted in training until it loses >= ``WORSE_BY`` AUC on the
served month, checked). ``release`` replays a batch of the served month's labelled rows through
the stepping loop's own rules (``requests_needed``, ``judge_look``, ``analyse``); why that is the
gateway path is argued in ``benchmarks/decisions_canary.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TRAIN = ["2013-01", "2013-02", "2013-03"]
SERVED = "2013-04"
WORSE_BY = 0.02  # AUC points the worse challenger must lose on the served month
# Feature groups permuted in this order until the retrained model is worse by WORSE_BY: the
# carrier, then the destination, then time of day (the strongest signal, carried by three columns).
DEGRADE_GROUPS = [["carrier"], ["dest"], ["sched_dep_time", "hour", "sched_arr_time"]]


@dataclass(frozen=True)
class Scored:
    """The served month's labelled rows and each model's score of them."""

    label: np.ndarray
    scores: dict[str, np.ndarray]  # champion, equal, worse


def with_demo_pacing(settings: Any, **canary: Any) -> Any:
    """Settings whose canary section has ``make demo``'s pacing (``DEMO_OVERRIDES``), plus ``canary``."""
    from pipelines.config import CanaryConfig
    from pipelines.replay.demo import DEMO_OVERRIDES

    prefix = "MLOPS__CANARY__"
    pacing = {k.removeprefix(prefix).lower(): v for k, v in DEMO_OVERRIDES.items() if k.startswith(prefix)}
    cfg = CanaryConfig.model_validate({**settings.canary.model_dump(), **pacing, **canary})
    return settings.model_copy(update={"canary": cfg})


def _fit(settings: Any, frame: pd.DataFrame, seed: int, degrade: list[str] | None = None) -> Any:
    """The project's training pipeline (``build_pipeline``, default estimator) on the window.

    ``degrade``: features whose training values are permuted across rows, so the model cannot
    learn from them (a genuinely worse model on the same contract, not a broken one).
    """
    from pipelines.training import build_pipeline, prepare_xy

    data = prepare_xy(settings.dataset, frame)
    x = data.x.copy()
    rng = np.random.default_rng(seed)
    for col in degrade or []:
        x[col] = x[col].to_numpy()[rng.permutation(len(x))]
    model = build_pipeline(settings.dataset, settings.training.model_copy(update={"seed": seed}))
    return model.fit(x, data.y)


def train_models(settings: Any, max_rows: int | None = None) -> tuple[Scored, dict[str, float]]:
    """Champion (seed 42), equal (seed 4) and worse (>= WORSE_BY AUC lower, checked) on TRAIN.

    ``max_rows``: train on a seeded sample of the window's rows (the quick mode; the same sample
    for all three models, so they differ only by seed or degradation).
    """
    from sklearn.metrics import roc_auc_score

    from pipelines.data.validated import load_batches
    from pipelines.training import predict_scores, prepare_xy

    contract = settings.dataset
    window = load_batches(settings, TRAIN)
    if max_rows is not None and len(window) > max_rows:
        window = window.sample(max_rows, random_state=0)
    served = prepare_xy(contract, load_batches(settings, [SERVED]))
    y = served.y.to_numpy(dtype=float)

    def score(model: Any) -> np.ndarray:
        return np.asarray(predict_scores(model, served.x, contract.target.task), dtype=float)

    scores = {"champion": score(_fit(settings, window, 42)), "equal": score(_fit(settings, window, 4))}
    auc = {k: float(roc_auc_score(y, s)) for k, s in scores.items()}
    degraded: list[str] = []
    for group in DEGRADE_GROUPS:
        degraded += [c for c in group if c in contract.features.all]
        s = score(_fit(settings, window, 42, degrade=degraded))
        if auc["champion"] - float(roc_auc_score(y, s)) >= WORSE_BY:
            scores["worse"], auc["worse"] = s, float(roc_auc_score(y, s))
            break
    if "worse" not in scores:
        raise RuntimeError(f"no degraded model lost {WORSE_BY} AUC on {SERVED} (permuted {degraded})")
    figures = {
        "canary_champion_auc": auc["champion"],
        "canary_equal_auc_diff": auc["equal"] - auc["champion"],
        "canary_worse_auc_loss": auc["champion"] - auc["worse"],
        "canary_worse_permuted_features": float(len(degraded)),
        "canary_served_rows": float(y.size),
    }
    return Scored(y, scores), figures


def _log_frame(ids: np.ndarray, preds: np.ndarray) -> pd.DataFrame:
    """Prediction-log rows of a healthy variant (no errors, constant fast latency)."""
    return pd.DataFrame(
        {
            "request_id": ids.astype(str),
            "prediction": preds,
            "latency_ms": np.full(ids.size, 2.0),
            "error": pd.Series([None] * ids.size, dtype=object),
        }
    )


def release(
    settings: Any,
    scored: Scored,
    challenger: str,
    batch: np.ndarray,
    rng: np.random.Generator,
    more: Callable[[], np.ndarray] | None = None,
) -> dict[str, Any]:
    """One canary release of ``challenger`` against the champion, replaying the rows ``batch``.

    Returns whether it was promoted, at which step it ended, whether the undecided policy
    (not the test) settled a step, and how many batches of labels the release pooled
    (``batches``). ``more``: the next published batch's rows (new entities), brought when a look
    says ``pooling`` (``quality_undecided: pool``); the split stays, the step's clock restarts
    (a new batch is a new wait for labels) and the paired evidence spans every batch served.
    See the module docstring for why this is the gateway path.
    """
    from pipelines.canary import analyse
    from pipelines.canary.stepping import judge_look, requests_needed

    cfg = settings.canary
    task = settings.dataset.target.task
    champ_all, chall_all = scored.scores["champion"], scored.scores[challenger]
    cursor = int(rng.integers(batch.size))
    sent_rows: list[np.ndarray] = []  # per request: position in `batch`
    sent_canary: list[np.ndarray] = []
    policy_settled = False
    first_mde: float | None = None
    batches = 1
    for weight in cfg.steps:
        step_from = sum(r.size for r in sent_rows)
        held, last, labelled_before = 0.0, None, None
        while True:
            have = int(last.figures().get("errors.requests") or 0) if last is not None else 0
            n = requests_needed(settings, weight, have, last)
            pos = (cursor + np.arange(n)) % batch.size
            cursor = int((cursor + n) % batch.size)
            sent_rows.append(pos)
            sent_canary.append(rng.random(n) < weight / 100.0)
            held += n / cfg.replay_rate
            rows = np.concatenate(sent_rows)
            to_canary = np.concatenate(sent_canary)
            idx = batch[rows]
            served = np.where(to_canary, chall_all[idx], champ_all[idx])
            req = np.arange(rows.size)
            step = req >= step_from
            canary_rel = _log_frame(req[to_canary], served[to_canary])
            champion_rel = _log_frame(req[~to_canary], served[~to_canary])
            # One judgement per entity, the last serve wins (``step_frames`` drops duplicates alike).
            _, last_pos = np.unique(rows[::-1], return_index=True)
            keep = rows.size - 1 - last_pos
            ent = idx[keep]
            paired = pd.DataFrame(
                {
                    "entity_id": keep,
                    "label": scored.label[ent],
                    "served_by": np.where(to_canary[keep], "canary", "champion"),
                    "served": served[keep],
                    "canary": chall_all[ent],
                    "champion": champ_all[ent],
                }
            )
            frames = {
                "canary_step": canary_rel[step[to_canary]],
                "champion_step": champion_rel[step[~to_canary]],
                "canary_release": canary_rel,
                "champion_reference": champion_rel,
                "paired": paired,
            }
            look = judge_look(
                cfg,
                lambda final, frames=frames: analyse(**frames, cfg=cfg, task=task, final=final),
                held=held,
                timed_out=held > cfg.step_timeout_s,
                labelled_before=labelled_before,
                batches=batches if more is not None else None,
            )
            last, labelled_before = look.analysis, look.labelled
            if look.pooling and more is not None:
                cursor, batches = batch.size, batches + 1
                batch = np.concatenate([batch, more()])
                held, labelled_before = 0.0, None
                continue
            figs = look.analysis.figures()
            if first_mde is None and figs.get("quality.mde") is not None:
                first_mde = float(figs["quality.mde"])
            if look.done:
                policy_settled = policy_settled or bool(figs.get("quality.decided_by"))
                break
        if look.verdict != "success":
            return {
                "promoted": False,
                "step": weight,
                "policy": policy_settled,
                "mde": first_mde,
                "batches": batches,
                "reason": look.reason,
                "figures": figs,
            }
    return {
        "promoted": True,
        "step": None,
        "policy": policy_settled,
        "mde": first_mde,
        "batches": batches,
        "reason": "",
        "figures": figs,
    }
