"""Whether a run trains, which published batches a candidate is trained on, and which one judges it.

Window policy: the **holdout is the newest published batch not used in training**, and
the training window is the N published batches before it (``training.window_batches``) with
``training.window_strategy`` sliding, or every published batch before it with ``expanding`` and
``recency_weighted`` (the latter also weighs each row by its batch's age: :func:`recency_weights`).
Both candidate and champion are scored on that same holdout, so the comparison is
fair and fresh (the champion has never seen it either, as long as it was trained
on older batches). A window can also be given explicitly (a list of batch ids or
a count), e.g. by the drift monitor or a person re-training on request.

Whether an asset-triggered run trains at all is :mod:`pipelines.training.policy` (pure);
:func:`should_train` gathers its facts: the aliases held and the batches published.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pipelines.config import Settings, TrainingConfig
from pipelines.core.registry import challenger_version, champion_version, client_for
from pipelines.data.validated import list_published, published
from pipelines.training.contracts import TrainingWindow
from pipelines.training.errors import WindowError
from pipelines.training.policy import TrainDecision, decide_should_train

WindowSpec = list[str] | int | str | None


def should_train(settings: Settings, reason: str = "", asset_triggered: bool = False) -> TrainDecision:
    """The policy's decision for this run, from the registry's aliases and the published batches.

    Raises:
        TrackingUnavailableError: the tracking server cannot be reached (retryable).
    """
    from pipelines.training.tracking import check_reachable

    check_reachable(settings)
    client = client_for(settings)
    return decide_should_train(
        reason=reason,
        asset_triggered=asset_triggered,
        has_champion=champion_version(settings, client) is not None,
        has_challenger=challenger_version(settings, client) is not None,
        published=len(list_published(settings)),
        needed=settings.training.window_batches + 1,
        retrain_on_every_batch=settings.training.retrain_on_every_batch,
    )


def _normalise(window: WindowSpec) -> list[str] | int | None:
    """Accept what Airflow params and CLIs hand over: a list, a count, '3', 'a,b' or ''."""
    if window is None:
        return None
    if isinstance(window, bool):
        raise WindowError(f"window must be batch ids or a count, got {window!r}")
    if isinstance(window, int):
        return window
    if isinstance(window, str):
        text = window.strip()
        if not text:
            return None
        if text.isdigit():
            return int(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return [str(b) for b in window]


def resolve_window(
    settings: Settings, window: WindowSpec = None, holdout: str | None = None
) -> TrainingWindow:
    """Turn a request (window ids or count, optional holdout) into concrete published batches.

    Raises:
        WindowError: naming the requested and the published batches, when the window
            is empty or too small, a batch is not published, or the holdout would not
            be newer than every training batch.
    """
    available = list_published(settings)
    where = settings.paths.validated / settings.dataset.name
    spec = _normalise(window)
    holdout = holdout.strip() if holdout else None
    if holdout is not None and holdout not in available:
        raise WindowError(f"holdout batch {holdout!r} is not published (published: {available}, in {where})")

    if isinstance(spec, list):
        if not spec:
            raise WindowError("the training window is empty (no batch ids given)")
        unknown = [b for b in spec if b not in available]
        if unknown:
            raise WindowError(
                f"training batches {unknown} are not published (published: {available}, in {where})"
            )
        train = sorted(set(spec))
        if holdout is None:
            newer = [b for b in available if b not in train]
            if not newer:
                raise WindowError(
                    f"no published batch is left for the holdout: window {train} uses all of {available}"
                )
            holdout = newer[-1]
    else:
        if holdout is None and available:
            holdout = available[-1]
        before_holdout = len([b for b in available if holdout is None or b < holdout])
        count = window_count(settings.training, before_holdout) if spec is None else spec
        if count < 1:
            raise WindowError(f"window count must be >= 1, got {count}")
        if holdout is None:
            if not available:
                raise WindowError(f"the training window is empty: no published batches in {where}")
            holdout = available[-1]
        before = [b for b in available if b < holdout]
        if len(before) < count:
            raise WindowError(
                f"window too small: {count} training batches requested before holdout {holdout}, "
                f"only {len(before)} published ({before}; published: {available}, in {where})"
            )
        train = before[-count:]

    if holdout in train:
        raise WindowError(f"holdout {holdout} is also a training batch {train}")
    if holdout < max(train):
        raise WindowError(
            f"holdout {holdout} must be newer than every training batch (window {train}): "
            "an older holdout would judge the model on the past it was not meant for"
        )
    return TrainingWindow(tuple(train), holdout)


def load_window(settings: Settings, batch_ids: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Rows of published batches, with a ``__batch_id`` column for per-batch counts."""
    from pipelines.data.validated import load_batches

    frames = []
    for b in batch_ids:
        df = load_batches(settings, [b])
        frames.append(df.assign(__batch_id=b))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def data_fingerprint(df: pd.DataFrame, columns: list[str]) -> str:
    """Content hash of the rows (order included) in the given columns.

    Hashing values rather than files keeps the fingerprint stable if a batch is
    re-published with identical rows in a different file encoding.
    """
    present = [c for c in columns if c in df.columns]
    row_hashes = pd.util.hash_pandas_object(df[present], index=False).to_numpy()
    h = hashlib.sha256()
    h.update("|".join(present).encode())
    h.update(row_hashes.tobytes())
    return h.hexdigest()


def batch_sources(settings: Settings, batch_ids: tuple[str, ...] | list[str]) -> dict[str, str]:
    """batch id -> sha256 of the landed file it was validated from (provenance tags)."""
    out: dict[str, str] = {}
    for b in batch_ids:
        ref = published(settings, b)
        out[b] = ref.source_sha256 if ref is not None else ""
    return out


# --------------------------------------------------------------------------- retrain after a period
# Added for the drift monitor (pipelines.monitoring), which asks for this window on a retrain.
def retrain_window(settings: Settings, up_to: str) -> TrainingWindow | None:
    """The window a retrain requested after batch period ``up_to`` trains on; None without two batches.

    The policy of :func:`resolve_window`, seen from that period: the holdout is the newest batch
    published up to ``up_to`` (a batch published later is that request's future) and the training
    window the ``training.window_batches`` batches before it, or fewer when fewer are published,
    so a young history still retrains on what it has instead of refusing.
    """
    from pipelines.core.periods import parse_window

    freq, tz = settings.dataset.batch_frequency, settings.dataset.event_timezone
    last = parse_window(up_to, freq, tz).ordinal
    usable = [b for b in list_published(settings) if parse_window(b, freq, tz).ordinal <= last]
    if len(usable) < 2:
        return None
    return resolve_window(settings, window_count(settings.training, len(usable) - 1, young=True), usable[-1])


# --------------------------------------------------------------------------- window strategy
def window_count(cfg: TrainingConfig, before: int, young: bool = False) -> int:
    """How many of the ``before`` published batches older than the holdout a default window uses.

    sliding: ``training.window_batches``; expanding and recency_weighted: all of them once there
    are at least ``window_batches`` (fewer would be refused as too small, as sliding does).
    ``young`` (a retrain requested by monitoring on a short history) trains on what exists
    instead of refusing.
    """
    n = cfg.window_batches
    if cfg.window_strategy == "sliding":
        return min(n, before) if young else n
    return max(before, 1) if young else max(before, n)


def select_batches(cfg: TrainingConfig, before: list[str]) -> list[str]:
    """The default training batches out of ``before`` (published, older than the holdout, sorted)."""
    count = window_count(cfg, len(before), young=True)
    return list(before[-count:])


def recency_weights(cfg: TrainingConfig, row_batches: pd.Series) -> np.ndarray | None:
    """Per-row sample weights of the window strategy (None: every row counts the same).

    recency_weighted: ``0.5 ** (age / recency_half_life)`` where ``age`` is how many batches the
    row's batch is older than the newest training batch, so the newest month weighs 1 and the
    weights depend only on batch order (never on labels or on the holdout).
    """
    if cfg.window_strategy != "recency_weighted":
        return None
    order = {b: i for i, b in enumerate(sorted(row_batches.unique()))}
    newest = len(order) - 1
    age = row_batches.map(order).to_numpy(dtype="float64")
    return np.power(0.5, (newest - age) / cfg.recency_half_life)
