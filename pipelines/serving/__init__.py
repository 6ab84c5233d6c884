"""Prediction gateway: MLflow scoring protocol, champion/canary split, prediction log (issue 4).

Entry points: ``python -m pipelines.serving`` (the server), :func:`pipelines.serving.launcher.ensure_gateway`
(start or find it), :func:`pipelines.serving.traffic.send_traffic` (replay traffic), and the read
helpers of :mod:`pipelines.core.predlog` for monitoring.
"""

from typing import TYPE_CHECKING

from pipelines.core.lazy import lazy_api

if TYPE_CHECKING:
    from pipelines.serving.app import create_app
    from pipelines.serving.client import GatewayClient, GatewayError, admin_token
    from pipelines.serving.inputs import BadInputError, parse_body, validate
    from pipelines.serving.launcher import (
        GatewayStartError,
        ensure_gateway,
        free_port,
        gateway_url,
        start_instance,
        stop_gateway,
    )
    from pipelines.serving.models import (
        ModelLoadError,
        ServedModel,
        columns_from_signature,
        load_served_model,
    )
    from pipelines.serving.server import ThreadedServer
    from pipelines.serving.traffic import batch_requests, newest_batch, rows_remaining, send_traffic

# The public API: name -> module. Imported on first use (see pipelines.core.lazy).
_EXPORTS = {
    "BadInputError": "inputs",
    "GatewayClient": "client",
    "GatewayError": "client",
    "GatewayStartError": "launcher",
    "ModelLoadError": "models",
    "ServedModel": "models",
    "ThreadedServer": "server",
    "admin_token": "client",
    "batch_requests": "traffic",
    "columns_from_signature": "models",
    "create_app": "app",
    "ensure_gateway": "launcher",
    "free_port": "launcher",
    "gateway_url": "launcher",
    "load_served_model": "models",
    "newest_batch": "traffic",
    "parse_body": "inputs",
    "rows_remaining": "traffic",
    "send_traffic": "traffic",
    "start_instance": "launcher",
    "stop_gateway": "launcher",
    "validate": "inputs",
}
__getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
__all__ = [
    "BadInputError",
    "GatewayClient",
    "GatewayError",
    "GatewayStartError",
    "ModelLoadError",
    "ServedModel",
    "ThreadedServer",
    "admin_token",
    "batch_requests",
    "columns_from_signature",
    "create_app",
    "ensure_gateway",
    "free_port",
    "gateway_url",
    "load_served_model",
    "newest_batch",
    "parse_body",
    "rows_remaining",
    "send_traffic",
    "start_instance",
    "stop_gateway",
    "validate",
]
