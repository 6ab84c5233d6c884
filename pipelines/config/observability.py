"""Where the pipeline's decision metrics go (section ``observability``).

Batch steps do not live long enough to be scraped, so they push to a Prometheus Pushgateway
(:mod:`pipelines.core.metrics`). The embedded default has no gateway: the same metrics are
written as Prometheus text files under ``<paths.root>/metrics`` and nothing needs a server.
"""

from __future__ import annotations

from pydantic import Field

from pipelines.config.base import Section


class ObservabilityConfig(Section):
    """Pushgateway address and the local textfile copy of every push."""

    pushgateway_url: str = Field(
        default="",
        description="Pushgateway base URL (compose: http://pushgateway:9091, set through "
        "MLOPS__OBSERVABILITY__PUSHGATEWAY_URL). Empty = no push (embedded default): a debug log "
        "line says so and the textfile copy is the only record.",
    )
    push_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Per push. A gateway that is down costs a step at most this long, never its outcome.",
    )
    textfile: bool = Field(
        default=True,
        description="Also write each push as <paths.root>/metrics/<job>/<group>.prom (the node "
        "exporter textfile format), replaced by the next push of the same group.",
    )
