"""Prometheus metrics of the gateway, labelled per variant (champion | canary).

Each gateway instance owns a registry (not the process-global one), so a test or
benchmark can run several gateways in one process without duplicate-metric errors.
Prediction histograms are fed from the prediction-log writer thread, after the
response has left, so the request path pays for three metric updates only.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        self.log_rows = Gauge(
            "gateway_prediction_log_rows_written", "Rows written to the prediction log", registry=r
        )
        self.log_failures = Gauge(
            "gateway_prediction_log_flush_failures", "Failed prediction-log flushes (retried)", registry=r
        )

    def set_served(self, champion: str | None, canary: str | None, weight: float) -> None:
        self.served_version.clear()
        if champion is not None:
            self.served_version.labels("champion", champion).set(1)
        if canary is not None:
            self.served_version.labels("canary", canary).set(1)
        self.canary_weight.set(weight if canary is not None else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
