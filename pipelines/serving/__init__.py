"""Prediction gateway: MLflow scoring protocol, champion/canary split, prediction log (issue 4).

Entry points: ``python -m pipelines.serving`` (the server), :func:`pipelines.serving.launcher.ensure_gateway`
(start or find it), :func:`pipelines.serving.traffic.send_traffic` (replay traffic), and the read
helpers of :mod:`pipelines.core.predlog` for monitoring.
"""
