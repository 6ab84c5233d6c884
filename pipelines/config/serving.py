"""The prediction gateway and the pre-rollout instances (section ``serving``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.config.base import Section


class ServingConfig(Section):
    """The prediction gateway (pipelines/serving): where it listens, what it accepts, where it logs."""

    host: str = "127.0.0.1"
    port: int = 8088
    url: str = Field(
        default="",
        description="External gateway base URL (compose/k8s mode: only health-checked, never "
        "started). Empty = embedded: the gateway is started as a local subprocess on host:port.",
    )
    max_rows: int = Field(default=5000, ge=1, description="Largest accepted payload, in rows.")
    max_body_bytes: int = Field(default=5_000_000, ge=1)
    labels_max_records: int = Field(
        default=10_000, ge=1, description="Most label records accepted in one POST /labels."
    )
    labels_allow_unauthenticated: bool = Field(
        default=False,
        description="Development only: accept POST /labels without a token when MLOPS_LABELS_TOKEN "
        "is unset. Default (fail closed): without a configured token /labels answers 503.",
    )
    label_classes: list[float] = Field(
        default_factory=list,
        description="Label values /labels accepts for a classification target. Empty: {0, 1} for "
        "a threshold-derived (binary) target, else any non-negative integer. Regression targets "
        "accept any finite number.",
    )
    max_id_chars: int = Field(
        default=256,
        ge=1,
        description="Longest entity id (and event time text) accepted by /invocations and /labels.",
    )
    non_null_features: list[str] = Field(
        default_factory=list,
        description="Features that may never be null/NaN in a request (others are imputed by the "
        "model pipeline). Integer and boolean columns never accept nulls; inf is never accepted.",
    )
    allow_extra_columns: bool = Field(
        default=False,
        description="Accept (and ignore) request columns the model signature does not name. The "
        "dataset's id and event-time columns are always accepted (they key the prediction log).",
    )
    request_key_header: str = Field(
        default="X-Request-Key",
        description="Header whose value pins a caller to one variant (sticky split); without it "
        "the first row's entity id is the key, and without that the split is random.",
    )
    fast_path: bool = Field(
        default=True,
        description="Serve a copy of the model whose steps pass numpy arrays instead of DataFrames "
        "(about 2x cheaper per call), used only if it predicts the input example identically.",
    )
    compiled_predictor: bool = Field(
        default=True,
        description="Serve the compiled predictor logged with the model version (compiled/, issue 16) "
        "when it reproduces the pipeline within 1e-6 on the input example and the stored holdout "
        "sample at load; otherwise, or when off, the pipeline serves and /version says why.",
    )
    prediction_log_url: str = Field(
        default="",
        description="SQLAlchemy URL of the prediction log. Empty = "
        "sqlite:///<paths.root>/serving/prediction_log.db (see pipelines.core.predlog).",
    )
    log_flush_ms: int = Field(
        default=200, ge=1, description="The background log writer flushes at least this often."
    )
    log_spool_sync: Literal["fsync", "write", "none"] = Field(
        default="fsync",
        description="When a scoring answer may leave, relative to the local prediction-log spool: "
        "'fsync' after its record is written and fdatasync-ed (group commit; survives a crash of "
        "the host), 'write' after the write() (survives kill -9 of the gateway, not of the host), "
        "'none' without waiting (measurement only: an answered request can be lost).",
    )
    log_degraded_backlog_rows: int = Field(
        default=50_000,
        ge=1,
        description="/health says 'degraded' when this many acknowledged rows wait for the database.",
    )
    log_degraded_lag_s: float = Field(
        default=10.0,
        gt=0,
        description="/health says 'degraded' when the backlog has not drained for this long.",
    )
    prediction_buckets: list[float] = Field(
        default_factory=lambda: [round(0.05 * i, 2) for i in range(1, 20)],
        description="Histogram buckets of the served predictions (/metrics); the default suits "
        "probabilities, set value ranges for a regression target.",
    )
    start_timeout_s: float = Field(
        default=120, gt=0, description="How long a launched gateway may take to answer /ping."
    )
    canary_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A canary prediction not answered within this is abandoned (counted as a canary "
        "'timeout' error) and the champion answers: a stuck canary never hangs its callers.",
    )
    instance_ports: tuple[int, int] = Field(
        default=(18150, 18199),
        description="Port range for fresh pre-rollout instances (a free one is picked).",
    )
    docker_image: str = Field(
        default="",
        description="When set and a Docker engine is reachable, the pre-rollout check runs the "
        "candidate in this image (the real serving image) instead of a local subprocess.",
    )
    docker_network: str = Field(
        default="",
        description="Docker network for the pre-rollout container (e.g. the compose network, so "
        "it reaches the tracking server); it is then addressed by container name, not a host port.",
    )
    docker_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment of the pre-rollout container (e.g. MLFLOW_TRACKING_URI "
        "as seen from inside the network).",
    )
    docker_volumes: list[str] = Field(
        default_factory=list,
        description="Volumes of the pre-rollout container, 'source:target[:mode]' (e.g. the "
        "artifact store when it is a shared directory).",
    )
