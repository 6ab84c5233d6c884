"""Prometheus metrics of the gateway, labelled per variant (champion | canary).

Each gateway instance owns a registry (not the process-global one), so a test or
benchmark can run several gateways in one process without duplicate-metric errors.
Prediction histograms are fed from the prediction-log writer thread, after the
response has left, so the request path pays for three metric updates only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from pipelines.core.predlog import PredictionLogWriter

LATENCY_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    def __init__(self, prediction_buckets: Sequence[float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Scoring requests answered, by the variant that answered",
            ["variant", "model_version"],
            registry=r,
        )
        self.rows = Counter(
            "gateway_rows", "Rows predicted, by variant", ["variant", "model_version"], registry=r
        )
        self.errors = Counter(
            "gateway_errors",
            "Failed predictions by variant and kind (a canary error is answered by the champion)",
            ["variant", "kind"],
            registry=r,
        )
        self.fallbacks = Counter(
            "gateway_canary_fallbacks", "Requests the champion answered because the canary failed", registry=r
        )
        self.bad_requests = Counter(
            "gateway_bad_requests", "Requests refused with a 4xx, by HTTP status", ["status"], registry=r
        )
        self.latency = Histogram(
            "gateway_request_latency_seconds",
            "Server-side latency of scoring requests, by variant",
            ["variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Histogram(
            "gateway_prediction",
            "Distribution of served predictions, by variant",
            ["variant"],
            buckets=tuple(prediction_buckets),
            registry=r,
        )
        self.canary_weight = Gauge("gateway_canary_weight_percent", "Current canary weight", registry=r)
        self.served_version = Gauge(
            "gateway_served_version",
            "1 for each served (variant, version)",
            ["variant", "model_version"],
            registry=r,
        )

    def watch_prediction_log(self, writer: PredictionLogWriter) -> None:
        """Expose the prediction-log writer's counters, read at scrape time (so a failure counts
        the moment it happens, not after the next successful flush)."""
        self.registry.register(_PredictionLogCollector(writer))

    def set_served(self, champion: str | None, canary: str | None, weight: float) -> None:
        self.served_version.clear()
        if champion is not None:
            self.served_version.labels("champion", champion).set(1)
        if canary is not None:
            self.served_version.labels("canary", canary).set(1)
        self.canary_weight.set(weight if canary is not None else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PredictionLogCollector(Collector):
    """The writer's figures as metrics: failures and dead letters as counters, backlog as a gauge."""

    def __init__(self, writer: PredictionLogWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        w = self._writer
        st = w.stats
        yield CounterMetricFamily(
            "gateway_prediction_log_write_failures",
            "Failed prediction-log insert attempts (each retried or isolated; none drops a row)",
            value=st.failures,
        )
        yield CounterMetricFamily(
            "gateway_prediction_log_dead_letter_rows",
            "Rows the reachable database refused on their own, set aside with the reason",
            value=st.dead_letter_rows,
        )
        yield GaugeMetricFamily(
            "gateway_prediction_log_backlog_rows",
            "Rows acknowledged (spooled) and not yet stored in the prediction-log database",
            value=w.backlog_rows,
        )
        yield GaugeMetricFamily(
            "gateway_prediction_log_rows_written", "Rows written to the prediction log", value=st.rows_written
        )
        yield CounterMetricFamily(
            "gateway_prediction_log_rejected_requests",
            "Requests refused because the log could not store a value (answered 400)",
            value=st.rejected_requests,
        )
        degraded = GaugeMetricFamily(
            "gateway_prediction_log_degraded", "1 while the prediction log is degraded or failed"
        )
        degraded.add_metric([], 0.0 if w.status()["status"] == "ok" else 1.0)
        yield degraded
