"""The canary's handles on serving: the live gateway (admin rights) and sample rows to query with.

Everything goes through :mod:`pipelines.serving`'s public API; the rows are real rows of the
newest validated batch, so a probe asks what callers ask.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.config import Settings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pipelines.serving import GatewayClient


def live_gateway(settings: Settings) -> GatewayClient:
    """A client of the long-lived gateway (started if needed) with the admin token."""
    from pipelines.serving import GatewayClient, admin_token, ensure_gateway

    return GatewayClient(ensure_gateway(settings), admin_token())


def sample_rows(settings: Settings, n: int, seed: int) -> tuple[str, list[dict[str, Any]]]:
    """``n`` request rows of the newest validated batch, drawn with ``seed`` (batch order kept)."""
    import numpy as np

    from pipelines.serving import batch_requests, newest_batch

    batch = newest_batch(settings)
    records, _ = batch_requests(settings, batch)
    idx = np.random.default_rng(seed).choice(len(records), size=min(n, len(records)), replace=False)
    return batch, [records[int(i)] for i in sorted(idx)]


def now() -> str:
    """Wall-clock time as the release's tags and events write it (seconds, UTC)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
