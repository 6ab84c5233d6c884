"""The pipeline's one typed configuration.

Values come, in rising priority, from the field defaults below, one YAML file
(``config/pipeline.yaml``, or the file named by ``MLOPS_CONFIG``) and environment
variables prefixed ``MLOPS__`` with ``__`` between levels, e.g.
``MLOPS__TRAINING__WINDOW_MONTHS=6``.  Secrets (tokens, passwords, webhook URLs)
are never read from the YAML: they live in :class:`Secrets`, which reads the
environment only, so a committed config file can never leak one.

The :class:`DatasetContract` is what makes the template reusable: every step
reads column names, roles and the target definition from it, so swapping to
another tabular dataset means a new YAML file and an expectation suite, not a
code change.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "pipeline.yaml"
_CONFIG_FILE_VAR: ContextVar[Path | None] = ContextVar("mlops_config_file", default=None)


def config_file_in_use() -> Path:
    """The YAML file settings are read from: explicit argument > MLOPS_CONFIG > default."""
    explicit = _CONFIG_FILE_VAR.get()
    if explicit is not None:
        return explicit
    return Path(os.environ.get("MLOPS_CONFIG", DEFAULT_CONFIG_FILE)).resolve()


class _Section(BaseModel):
    """Sections reject unknown keys so a typo in the YAML fails loudly, not silently."""

    model_config = {"extra": "forbid"}


# --------------------------------------------------------------------------- dataset contract
class JoinSpec(_Section):
    """A lookup table joined onto the source rows at landing time (e.g. weather by origin+hour)."""

    path: str = Field(description="File path, or pkg://<package>/<relative path> for package data.")
    keys: list[str] = Field(min_length=1, description="Join keys present in both tables.")
    columns: list[str] = Field(min_length=1, description="Columns brought in from the lookup.")


class SourceSpec(_Section):
    """Where the raw rows come from; CSV (optionally zipped) read with pandas."""

    path: str = Field(description="File path, or pkg://<package>/<relative path> for package data.")
    joins: list[JoinSpec] = Field(default_factory=list)


class IdSpec(_Section):
    """The entity id; composed from several columns when the source has no single key."""

    column: str
    compose_from: list[str] = Field(
        default_factory=list, description="When set, id = these columns joined with '_'."
    )


class TargetSpec(_Section):
    """The label, either a source column or derived from one by a threshold rule."""

    name: str
    task: Literal["classification", "regression"]
    derive_from: str | None = Field(
        default=None, description="Source column the label is computed from (then dropped)."
    )
    derive_op: Literal["gt", "ge", "lt", "le"] | None = None
    derive_threshold: float | None = None

    @model_validator(mode="after")
    def _derivation_complete(self) -> TargetSpec:
        parts = (self.derive_from, self.derive_op, self.derive_threshold)
        if any(p is not None for p in parts) and not all(p is not None for p in parts):
            raise ValueError("target derivation needs derive_from, derive_op and derive_threshold")
        if self.derive_from is not None and self.task != "classification":
            raise ValueError("a threshold-derived target is binary: task must be classification")
        return self


class FeatureRoles(_Section):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DatasetContract(_Section):
    """Everything the code needs to know about a tabular dataset."""

    name: str
    source: SourceSpec
    id: IdSpec
    event_time: str = Field(description="Timestamp column; batches are cut on it.")
    event_timezone: str = Field(
        default="UTC", description="Zone in which batches and calendar features are cut."
    )
    target: TargetSpec
    features: FeatureRoles
    derived_time_features: dict[str, Literal["hour", "dayofweek", "month", "dayofyear"]] = Field(
        default_factory=dict,
        description="New column name -> calendar part of event_time, computed at landing.",
    )
    drop_columns: list[str] = Field(
        default_factory=list,
        description="Columns removed at landing (e.g. known only after the event: leakage).",
    )
    batch_frequency: Literal["month", "week", "day"] = "month"
    batches: list[str] = Field(
        default_factory=list,
        description="Batch ids to replay in order (e.g. 2013-01..2013-12); empty = all in source.",
    )
    slice_columns: list[str] = Field(
        default_factory=list, description="Columns whose groups must not regress (gate, monitoring)."
    )
    expectation_suite: str = Field(description="Path of the GX suite JSON (relative to the repo).")

    @model_validator(mode="after")
    def _roles_disjoint(self) -> DatasetContract:
        overlap = set(self.features.numeric) & set(self.features.categorical)
        if overlap:
            raise ValueError(f"columns both numeric and categorical: {sorted(overlap)}")
        leaked = set(self.features.all) & set(self.drop_columns)
        if leaked:
            raise ValueError(f"feature columns also listed in drop_columns: {sorted(leaked)}")
        if self.target.name in self.features.all:
            raise ValueError(f"target {self.target.name!r} is also a feature")
        return self

    @property
    def landed_columns(self) -> list[str]:
        """Column order of every landed batch file: id, event time, features, target."""
        return [self.id.column, self.event_time, *self.features.all, self.target.name]


# --------------------------------------------------------------------------- runtime sections
class PathsConfig(_Section):
    """Runtime state; all under one root so a demo is wiped by deleting one folder."""

    root: Path = Field(default=REPO_ROOT / "var")

    @field_validator("root")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v if v.is_absolute() else (REPO_ROOT / v).resolve()

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def validated(self) -> Path:
        return self.root / "validated"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def data_docs(self) -> Path:
        return self.root / "reports" / "data_docs"

    @property
    def serving(self) -> Path:
        return self.root / "serving"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def events(self) -> Path:
        """Append-only JSONL records of pipeline events (gates, releases, decisions)."""
        return self.root / "events"


class QualityConfig(_Section):
    """Gate-wide limits; the rules themselves and their severities live in the expectation suite."""

    sample_bad_values: int = Field(
        default=5, ge=1, description="Distinct bad values quoted per failed rule in the report."
    )
    row_level_max_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="If row-level failures hit more than this share of rows, fail the batch.",
    )


class MlflowConfig(_Section):
    tracking_uri: str = Field(
        default="", description="Empty = sqlite:///<paths.root>/mlflow.db (embedded default)."
    )
    experiment: str = "flight-delay"
    registered_model: str = "flight_delay_clf"
    artifact_root: str = Field(
        default="",
        description="Artifact location of a new experiment. Empty: <paths.root>/mlartifacts for a "
        "local (sqlite) tracking store, the server's own default for an http(s) tracking URI.",
    )
    connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Reachability probe of an http(s) tracking server before any work starts; "
        "MLflow's own retries would otherwise stall a task for minutes.",
    )
    serialization: Literal["skops", "cloudpickle"] = Field(
        default="skops",
        description="sklearn model format. skops loads only the types recorded as trusted at "
        "logging time (the types of the model this pipeline trained itself).",
    )


class TrainingConfig(_Section):
    # FIXME::TEMPLATE: swap the model here (any scikit-learn estimator class, by dotted path).
    estimator: str | None = Field(
        default=None,
        description="Dotted path of a scikit-learn estimator class. Empty: "
        "HistGradientBoostingClassifier or ...Regressor, following dataset.target.task.",
    )
    estimator_params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the estimator (seed added if accepted)."
    )
    window_batches: int = Field(
        default=3, ge=1, description="Train on the last N validated batches before the holdout."
    )
    min_rows: int = Field(default=1000, ge=1, description="Fewer labelled training rows: refuse.")
    min_class_rows: int = Field(
        default=50,
        ge=1,
        description="Classification: each class needs this many training rows (single class: refuse).",
    )
    min_holdout_rows: int = Field(default=50, ge=1, description="Fewer labelled holdout rows: refuse.")
    seed: int = 42
    categorical_encoding: Literal["ordinal", "onehot"] = Field(
        default="ordinal",
        description="ordinal: native categorical splits when the estimator supports them "
        "(HistGradientBoosting*); onehot: for linear models.",
    )
    max_categories: int = Field(
        default=200,
        ge=2,
        le=254,
        description="Per categorical column; rarer levels are grouped (HistGradientBoosting "
        "caps native categories at 255 bins).",
    )
    retrain_on_every_batch: bool = Field(
        default=False,
        description="Asset-triggered runs train on every validated batch. Off: only to bootstrap "
        "(no champion and no challenger yet); monitoring or a person asks for the others.",
    )
    importance_rows: int = Field(
        default=2000, ge=100, description="Holdout rows sampled for permutation importance."
    )
    importance_repeats: int = Field(default=3, ge=1)
    threads: int = Field(
        default=1,
        ge=0,
        description="OpenMP/BLAS threads while fitting and scoring (0 = all cores). On a shared "
        "host, more threads than free cores makes OpenMP spin: a 3-month fit took 5 s on 1 thread "
        "and 14-52 s on 2 under load.",
    )


class TaskGate(_Section):
    """Absolute thresholds for one kind of target (the gate picks the contract's task)."""

    primary_metric: str = Field(description="Compared with the champion, overall and per slice.")
    absolute: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> bound: a minimum for higher-is-better metrics (roc_auc, r2...), "
        "a maximum for lower-is-better ones (log_loss, rmse...).",
    )


class BehaviouralCheck(_Section):
    """A model behaviour test: perturb one feature on holdout rows, measure the prediction shift.

    invariance: mean |shift| must stay <= tolerance (a change that should not matter);
    directional: the mean shift must go the ``expect`` way, allowing ``tolerance`` against it.
    """

    name: str
    kind: Literal["invariance", "directional"]
    column: str = Field(description="A feature of the dataset contract.")
    op: Literal["add", "multiply", "set"]
    value: float | str
    expect: Literal["increase", "decrease"] | None = Field(
        default=None, description="Directional checks only."
    )
    tolerance: float = Field(default=0.01, ge=0, description="In prediction units (probability).")
    sample_rows: int = Field(default=2000, ge=50)

    @model_validator(mode="after")
    def _expect_matches_kind(self) -> BehaviouralCheck:
        if self.kind == "directional" and self.expect is None:
            raise ValueError(f"directional check {self.name!r} needs expect: increase|decrease")
        if self.kind == "invariance" and self.expect is not None:
            raise ValueError(f"invariance check {self.name!r} takes no expect")
        return self


class GateConfig(_Section):
    classification: TaskGate = Field(
        default_factory=lambda: TaskGate(primary_metric="roc_auc", absolute={"roc_auc": 0.60})
    )
    regression: TaskGate = Field(default_factory=lambda: TaskGate(primary_metric="r2", absolute={"r2": 0.05}))
    max_regression: float = Field(
        default=0.01,
        ge=0,
        description="Candidate may trail the champion by at most this on the primary metric.",
    )
    slice_tolerance: float = Field(
        default=0.03, ge=0, description="Per slice: max loss of the primary metric vs the champion."
    )
    slice_min_rows: int = Field(
        default=300, ge=1, description="Smaller slices of the holdout are reported, not gated."
    )
    behavioural: list[BehaviouralCheck] = Field(default_factory=list)
    min_behavioural_checks: int = Field(
        default=0, ge=0, description="Fewer configured behavioural checks fail the gate."
    )

    def for_task(self, task: str) -> TaskGate:
        return self.classification if task == "classification" else self.regression


class ServingConfig(_Section):
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
    prediction_log_url: str = Field(
        default="",
        description="SQLAlchemy URL of the prediction log. Empty = "
        "sqlite:///<paths.root>/serving/prediction_log.db (see pipelines.core.predlog).",
    )
    log_flush_ms: int = Field(
        default=200, ge=1, description="The background log writer flushes at least this often."
    )
    prediction_buckets: list[float] = Field(
        default_factory=lambda: [round(0.05 * i, 2) for i in range(1, 20)],
        description="Histogram buckets of the served predictions (/metrics); the default suits "
        "probabilities, set value ranges for a regression target.",
    )
    start_timeout_s: float = Field(
        default=120, gt=0, description="How long a launched gateway may take to answer /ping."
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


class CanaryConfig(_Section):
    """Progressive delivery of a challenger: traffic steps, the analysis that judges each, fail-safes."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Canary traffic percentages, in order; the last should be 100.",
    )
    min_requests: int = Field(
        default=200, ge=1, description="Canary requests a step needs before it can be judged."
    )
    step_window_s: float = Field(
        default=60, ge=0, description="Minimum time each step is held before it is judged."
    )
    step_timeout_s: float = Field(
        default=900,
        gt=0,
        description="A step still inconclusive after this long fails safe (rollback).",
    )
    analysis_interval_s: float = Field(
        default=5, gt=0, description="Pause between re-analyses of an inconclusive step."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Canary request error rate above which it fails."
    )
    latency_p99_slo_ms: float = Field(
        default=50, gt=0, description="Server-side p99 latency SLO per request of the canary."
    )
    latency_min_samples: int = Field(
        default=50, ge=1, description="Canary requests needed before the p99 is judged."
    )
    latency_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="An SLO breach fails the canary only if its share of requests over the SLO is "
        "significantly above the champion's (one-sided z-test): a slow host is not its fault.",
    )
    latency_max_ratio: float = Field(
        default=1.5,
        ge=1,
        description="An SLO breach is the canary's fault only if its p99 is also more than this many "
        "times the champion's (the minority variant has a heavier tail on a busy host).",
    )
    shift_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Significance of the two-sample KS test, canary vs champion predictions.",
    )
    shift_max_statistic: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="KS distance the canary's predictions may differ by (a significant but "
        "smaller shift is reported, not failed: large samples make tiny shifts significant).",
    )
    shift_quality_margin: float = Field(
        default=0.1,
        ge=0,
        description="A material prediction shift is accepted once labelled quality rules out a "
        "loss larger than this (AUC points; relative MAE for regression) at quality_alpha.",
    )
    quality_min_labels: int = Field(
        default=200,
        ge=10,
        description="Labelled predictions per variant before model quality is compared.",
    )
    quality_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Significance of the quality comparison (strict: a step is re-analysed many times).",
    )
    quality_max_drop: float = Field(
        default=0.02,
        ge=0,
        description="Tolerated quality loss vs the champion: AUC points for classification, "
        "relative MAE increase for regression.",
    )
    quality_required: bool = Field(
        default=False,
        description="Hold a step (inconclusive) until quality can be judged; otherwise too few "
        "labels only means quality is reported as insufficient.",
    )
    seed: int = 42
    precheck_rows: int = Field(
        default=200, ge=1, description="Rows of the newest published batch sent by the pre-rollout check."
    )
    replay_traffic: bool = Field(
        default=False,
        description="Drive each step with replayed traffic from the newest published batch "
        "(demo and tests); in production real callers supply it.",
    )
    replay_rate: float = Field(default=300, gt=0, description="Replay requests per second.")
    replay_concurrency: int = Field(default=4, ge=1)
    replay_label_delay_s: float = Field(
        default=0,
        ge=0,
        description="Wall-clock delay before replayed labels are fed back (the business-time "
        "delay is monitoring.label_delay_days).",
    )


class DriftTest(_Section):
    """One Evidently drift method with the threshold at which it reports drift."""

    method: str = Field(
        description="Evidently stattest name (wasserstein, jensenshannon, psi, ks, chisquare, ...)."
    )
    threshold: float = Field(
        gt=0,
        description="Distance methods: drift when score >= threshold; p-value methods: when p < it.",
    )


class MonitoringConfig(_Section):
    """Drift/performance monitoring per window and the retrain policy (pipelines/monitoring).

    Defaults are distance-based drift tests: on tens of thousands of rows a p-value test
    flags every harmless wiggle, while a distance with a threshold measures *how much* a
    distribution moved (Wasserstein in reference standard deviations; Jensen-Shannon).
    """

    label_delay_days: int = Field(
        default=7,
        ge=0,
        description="Business days after the event before its label is known (replay writes "
        "labels with available_at = event_time + this).",
    )
    # --- drift computation (Evidently) -------------------------------------------------------
    reference_batches: list[str] = Field(
        default_factory=list,
        description="Fallback reference when the champion has no training-window tag (and no "
        "reference is passed in).",
    )
    reference_sample_rows: int = Field(
        default=20_000, ge=1000, description="Reference rows sampled (fixed seed) for drift tests."
    )
    current_sample_rows: int = Field(
        default=20_000, ge=1000, description="Window rows sampled (fixed seed) for drift tests."
    )
    sample_seed: int = 42
    numerical_test: DriftTest = Field(
        default_factory=lambda: DriftTest(method="wasserstein", threshold=0.1),
        description="Numerical features: normed Wasserstein >= 0.1 = a shift of 0.1 reference std.",
    )
    categorical_test: DriftTest = Field(
        default_factory=lambda: DriftTest(method="jensenshannon", threshold=0.1)
    )
    column_tests: dict[str, DriftTest] = Field(
        default_factory=dict,
        description="Per-feature overrides (e.g. a small-integer code compared as categories).",
    )
    prediction_test: DriftTest = Field(
        default_factory=lambda: DriftTest(method="wasserstein", threshold=0.1),
        description="Drift of the served prediction against the champion's scores on its reference.",
    )
    # --- retrain policy ---------------------------------------------------------------------
    important_features: list[str] = Field(
        default_factory=list,
        description="Features whose drift can trigger a retrain. Empty: the champion's top "
        "important_top_k by permutation importance (its evaluation artifact); else all features.",
    )
    important_top_k: int = Field(default=5, ge=1)
    min_important_drifted: int = Field(
        default=1, ge=1, description="Drifted important features needed for a drift violation."
    )
    prediction_drift_violates: bool = Field(
        default=True, description="Prediction drift alone counts as a violation (labels lag)."
    )
    min_window_rows: int = Field(
        default=1000, ge=1, description="Fewer served predictions in a window: no decision."
    )
    min_mature_labels: int = Field(
        default=500, ge=1, description="Fewer matured labels: no performance judgement."
    )
    performance_metric: str = Field(
        default="",
        description="Empty: the gate's primary metric for the task (roc_auc / r2). Compared "
        "with the champion's holdout figure (model version tag metric.<name>).",
    )
    max_performance_drop: float = Field(
        default=0.05, ge=0, description="Tolerated loss vs the champion's holdout figure (absolute)."
    )
    hysteresis_n: int = Field(default=2, ge=1, description="Retrain when >= N of the last M ...")
    hysteresis_m: int = Field(
        default=3, ge=1, description="... evaluated windows (same champion) violate, the latest included."
    )
    severe_drift_factor: float = Field(
        default=2.5,
        gt=1,
        description="An important feature (or the prediction) with a distance score >= this x its "
        "threshold skips hysteresis: a jump that large is not noise.",
    )
    severe_performance_drop: float = Field(
        default=0.10, ge=0, description="A drop this large skips hysteresis."
    )
    cooldown_windows: int = Field(
        default=1, ge=0, description="Windows after a retrain during which no retrain fires."
    )
    max_retrains_per_period: int = Field(default=2, ge=1)
    period_windows: int = Field(
        default=6, ge=1, description="The period of max_retrains_per_period, in windows."
    )
    retrain_lock_ttl_hours: float = Field(
        default=6,
        gt=0,
        description="A triggered retrain blocks others until a training run is recorded after it, "
        "or this many wall-clock hours pass (a crashed training run must not block forever).",
    )
    max_corrupt_rows: int = Field(
        default=0,
        ge=0,
        description="Prediction-log rows with unreadable features tolerated in a window; more: no "
        "decision (the evidence itself is damaged).",
    )
    workspace_project: str = Field(
        default="", description="Evidently project name; empty: '<dataset> / <registered model>'."
    )

    @model_validator(mode="after")
    def _hysteresis_consistent(self) -> MonitoringConfig:
        if self.hysteresis_n > self.hysteresis_m:
            raise ValueError(
                f"hysteresis_n ({self.hysteresis_n}) must be <= hysteresis_m ({self.hysteresis_m})"
            )
        return self


class SearchDim(_Section):
    """One tuned hyperparameter: an int/float range (optionally log-scaled) or a list of choices."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> SearchDim:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search dimension needs choices")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} search dimension needs low < high")
        return self


def _default_search_space() -> dict[str, SearchDim]:
    # Parameters shared by HistGradientBoostingClassifier and ...Regressor (the default estimator
    # for both tasks); a different training.estimator needs its own space.
    return {
        "learning_rate": SearchDim(type="float", low=0.02, high=0.3, log=True),
        "max_leaf_nodes": SearchDim(type="int", low=15, high=127, log=True),
        "min_samples_leaf": SearchDim(type="int", low=10, high=200, log=True),
        "l2_regularization": SearchDim(type="float", low=1e-4, high=10.0, log=True),
    }


class ModelFamily(_Section):
    """A candidate model family for the latency/cost-aware model choice."""

    name: str
    task: Literal["classification", "regression"] = Field(
        description="Families whose task differs from dataset.target.task are not evaluated."
    )
    estimator: str = Field(description="Dotted path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)
    categorical_encoding: Literal["ordinal", "onehot"] | None = Field(
        default=None, description="Overrides training.categorical_encoding (linear models want onehot)."
    )


def _default_families() -> list[ModelFamily]:
    clf, reg = "classification", "regression"
    return [
        ModelFamily(
            name="hist_gradient_boosting",
            task=clf,
            estimator="sklearn.ensemble.HistGradientBoostingClassifier",
            params={"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31},
        ),
        ModelFamily(
            name="logistic_regression",
            task=clf,
            estimator="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 1000},
            categorical_encoding="onehot",
        ),
        ModelFamily(
            name="random_forest_small",
            task=clf,
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_estimators": 50, "max_depth": 12, "min_samples_leaf": 20, "n_jobs": 1},
        ),
        ModelFamily(
            name="hist_gradient_boosting",
            task=reg,
            estimator="sklearn.ensemble.HistGradientBoostingRegressor",
            params={"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31},
        ),
        ModelFamily(
            name="ridge",
            task=reg,
            estimator="sklearn.linear_model.Ridge",
            params={},
            categorical_encoding="onehot",
        ),
        ModelFamily(
            name="random_forest_small",
            task=reg,
            estimator="sklearn.ensemble.RandomForestRegressor",
            params={"n_estimators": 50, "max_depth": 12, "min_samples_leaf": 20, "n_jobs": 1},
        ),
    ]


class ModelChoiceConfig(_Section):
    """Which families compete and the policy that picks one (see pipelines/optimize/pareto.py)."""

    # FIXME::TEMPLATE: the model families to compare for your dataset.
    families: list[ModelFamily] = Field(default_factory=_default_families)
    policy: Literal["best_quality_within_latency_budget", "fastest_within_quality_tolerance"] = (
        "best_quality_within_latency_budget"
    )
    latency_budget_ms: float = Field(
        default=50.0, gt=0, description="p99 single-row latency budget through the serving code path."
    )
    quality_tolerance: float = Field(
        default=0.005, ge=0, description="fastest_within_quality_tolerance: allowed quality shortfall."
    )
    latency_requests: int = Field(default=300, ge=20, description="Timed single-row requests per family.")
    warmup_requests: int = Field(default=20, ge=0, description="Untimed requests first (caches, lazy init).")


class CapacityConfig(_Section):
    """Forecast of the hourly request rate and the replica recommendation."""

    season_hours: int = Field(default=168, ge=2, description="Seasonal period (168 = weekly, incl. daily).")
    horizon_hours: int = Field(default=168, ge=1, description="How far ahead the plan looks.")
    holdout_hours: int = Field(default=168, ge=1, description="Back-test window (the last hours seen).")
    max_gap_hours: int = Field(
        default=12,
        ge=1,
        description="A longer stretch without any request means the log does not cover it (e.g. a "
        "replay that skipped days): only the newest stretch without such a gap is forecast.",
    )
    tie_tolerance: float = Field(
        default=0.05,
        ge=0,
        description="Holt-Winters counts as tying the naive seasonal baseline when its holdout MAE is "
        "within this relative margin; beyond it the baseline drives the plan.",
    )
    headroom: float = Field(
        default=0.5, ge=0, description="Capacity above the forecast peak (bursts, forecast error)."
    )
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=8, ge=1)
    load_test_seconds: float = Field(default=5.0, gt=0, le=120, description="Bounded load-test duration.")
    load_test_concurrency: int = Field(default=4, ge=1, le=64)
    load_test_port: int = Field(default=18471, ge=1024, le=65535, description="127.0.0.1 port used.")
    compose_project: str = Field(default="mlops", description="docker-compose project of the stack.")
    compose_service: str = Field(default="gateway", description="Service scaled by `apply`.")
    docker_base_url: str | None = Field(
        default=None, description="Docker engine URL; empty = the environment (DOCKER_HOST / socket)."
    )


class CostConfig(_Section):
    country_iso_code: str = Field(
        default="USA", min_length=3, max_length=3, description="Carbon intensity used by CodeCarbon."
    )
    predictions: int = Field(
        default=1000, ge=100, description="Single-row predictions measured per model version."
    )


class OptimizeConfig(_Section):
    tuning_budget_seconds: float = Field(
        default=120, ge=0, description="Optuna wall-clock budget (timeout=); 0 skips tuning."
    )
    tuning_max_trials: int = Field(default=30, ge=1, description="Upper bound on trials within the budget.")
    # FIXME::TEMPLATE: the search space belongs to training.estimator.
    tuning_search_space: dict[str, SearchDim] = Field(default_factory=_default_search_space)
    threads: int = Field(
        default=1,
        ge=1,
        description="OpenMP/BLAS threads for the fits and predictions these steps time (threadpoolctl). "
        "More threads than free cores makes OpenMP spin: measured 75 s instead of 7 s for one fit on a "
        "busy 2-core host.",
    )
    model_choice: ModelChoiceConfig = Field(default_factory=ModelChoiceConfig)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    airflow_db_url: str = Field(
        default="",
        description="Airflow metadata DB read by the scorecard (DAG runs, read-only). Empty: "
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, else <paths.root>/airflow/airflow.db when it exists.",
    )


class Settings(BaseSettings):
    """Root configuration object; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="MLOPS__", env_nested_delimiter="__", extra="forbid")

    dataset: DatasetContract
    paths: PathsConfig = Field(default_factory=PathsConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    _config_file: Path = PrivateAttr(default=DEFAULT_CONFIG_FILE)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = config_file_in_use()
        if not yaml_file.is_file():
            raise FileNotFoundError(f"pipeline config not found: {yaml_file} (set MLOPS_CONFIG)")
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file, deep_merge=True),
        )

    @property
    def config_file(self) -> Path:
        return self._config_file

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.paths.root / 'mlflow.db'}"

    def resolve(self, path: str | Path) -> Path:
        """Resolve a repo-relative path (suite files, fixtures) against the repo root."""
        p = Path(path)
        if p.is_absolute():
            return p
        # Relative paths are tried beside the config file first (a test dataset ships its own
        # suite next to its YAML), then against the repo root.
        beside = self._config_file.parent / p
        return beside if beside.exists() else REPO_ROOT / p


class Secrets(BaseSettings):
    """Secrets, from the environment only (never from YAML, never with a default value)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    gateway_admin_token: SecretStr | None = None
    alert_webhook_url: SecretStr | None = None


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Build settings from the YAML file (argument > MLOPS_CONFIG > default) and the environment."""
    token = _CONFIG_FILE_VAR.set(Path(config_file).resolve() if config_file is not None else None)
    try:
        path = config_file_in_use()
        settings = Settings()  # type: ignore[call-arg]  # dataset comes from the YAML source
    finally:
        _CONFIG_FILE_VAR.reset(token)
    settings._config_file = path
    return settings


@lru_cache(maxsize=1)
def cached_settings() -> Settings:
    """Settings for long-lived processes (the gateway); steps call :func:`load_settings`."""
    return load_settings()


def load_secrets() -> Secrets:
    return Secrets()
