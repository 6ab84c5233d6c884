"""Test environment for monitoring: real published months, a real registered champion, a real log.

Built once per session (``build_env``) on the months the quality-gate fixture publishes
(2013-01..04, real GX validation):

* a quick scikit-learn pipeline trained on a sample of 2013-01+02, logged with MLflow
  into a store of its own, registered, tagged like ``pipelines/training/registry.py`` tags
  a version (``data.train_batches``, ``data.holdout_batch``, ``metric.roc_auc`` measured on
  the 2013-03 holdout) and given the ``@champion`` alias;
* ``scenario(name)``: Settings with a fresh runtime root (own prediction log, events, Evidently
  workspace) sharing the published batches and the MLflow store, so scenarios do not see each
  other's policy history.

Windows are written into the prediction log with the serving component's own row format
(``LoggedRequest.rows``); windows later than 2013 are real 2013 rows moved in business time
(``serve(..., as_window=...)``), with entity ids prefixed by the window so labels stay unique.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRAIN = ["2013-01", "2013-02"]
HOLDOUT = "2013-03"


@dataclass
class MonitoringEnv:
    base: Any  # Settings of the session (published batches live under its root)
    root: Path
    tracking_uri: str
    model: Any
    version: str
    holdout_auc: float
    months: dict[str, pd.DataFrame] = field(default_factory=dict)

    def scenario(self, name: str, **monitoring: Any) -> Any:
        """Settings with a fresh runtime root; ``monitoring`` overrides fields of that section."""
        from pipelines.config import PathsConfig

        # A new folder on every call, never a wiped and re-used one: the prediction log's engine is
        # cached per URL for the process (pipelines.core.predlog.engine_for), and a cached engine
        # on a deleted SQLite file would keep writing to the unlinked file.
        root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        src = self.base.paths.validated / self.base.dataset.name
        shutil.copytree(src, root / "validated" / self.base.dataset.name)
        mon = self.base.monitoring.model_copy(update=monitoring)
        mlf = self.base.mlflow.model_copy(update={"tracking_uri": self.tracking_uri})
        settings = self.base.model_copy(
            update={"paths": PathsConfig(root=root), "monitoring": mon, "mlflow": mlf}
        )
        settings._config_file = self.base.config_file
        return settings

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        contract = self.base.dataset
        return np.asarray(self.model.predict_proba(frame[contract.features.all])[:, 1], dtype="float64")


def _train(frame: pd.DataFrame, contract: Any, seed: int = 0) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    cat = contract.features.categorical
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    pre = make_column_transformer((enc, cat), remainder="passthrough")
    clf = HistGradientBoostingClassifier(
        max_iter=60, learning_rate=0.1, categorical_features=list(range(len(cat))), random_state=seed
    )
    labelled = frame[frame[contract.target.name].notna()]
    model = make_pipeline(pre, clf)
    model.fit(labelled[contract.features.all], labelled[contract.target.name].astype(int))
    return model


def _register(env_root: Path, settings: Any, model: Any, example: pd.DataFrame, tags: dict[str, str]) -> str:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    uri = f"sqlite:///{env_root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # An explicit artifact location: SQLite stores otherwise default to ./mlruns in the cwd.
    client = MlflowClient(tracking_uri=uri)
    exp_obj = client.get_experiment_by_name("monitoring-tests")
    if exp_obj is None:
        client.create_experiment("monitoring-tests", artifact_location=(env_root / "mlartifacts").as_uri())
    exp = mlflow.set_experiment("monitoring-tests")
    name = settings.mlflow.registered_model
    sig = infer_signature(example, model.predict_proba(example))
    with mlflow.start_run(experiment_id=exp.experiment_id):
        import sklearn
        import skops.io

        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=sig,
            input_example=example.head(3),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            pyfunc_predict_fn="predict_proba",
            registered_model_name=name,
            # As training logs it: skops, trusting exactly the types of this model.
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, "champion", version)
    return version


_BUILT: dict[str, MonitoringEnv] = {}


def _build(base: Any) -> MonitoringEnv:
    from sklearn.metrics import roc_auc_score

    from pipelines.data.validated import load_batches

    contract = base.dataset
    root = Path(tempfile.mkdtemp(prefix="monitoring-env-", dir=base.paths.root.parent))
    months = {b: load_batches(base, [b]) for b in [*TRAIN, HOLDOUT, "2013-04"]}
    train = pd.concat([months[b] for b in TRAIN], ignore_index=True).sample(16000, random_state=0)
    model = _train(train, contract)
    hold = months[HOLDOUT][months[HOLDOUT][contract.target.name].notna()]
    auc = float(
        roc_auc_score(
            hold[contract.target.name].astype(int), model.predict_proba(hold[contract.features.all])[:, 1]
        )
    )
    tags = {
        "data.train_batches": ",".join(TRAIN),
        "data.holdout_batch": HOLDOUT,
        "metric.roc_auc": f"{auc:.6g}",
        "gate.verdict": "passed",
    }
    version = _register(root, base, model, train[contract.features.all].head(50), tags)
    return MonitoringEnv(base, root, f"sqlite:///{root / 'mlflow.db'}", model, version, auc, months)


def build_env(settings: Any, published_batches: list[dict]) -> MonitoringEnv:
    """Once per session root (several test modules share it)."""
    assert [b["batch_id"] for b in published_batches][:4] == [*TRAIN, HOLDOUT, "2013-04"]
    key = str(settings.paths.root)
    if key not in _BUILT:
        _BUILT[key] = _build(settings)
    return _BUILT[key]


def move_to_window(frame: pd.DataFrame, contract: Any, source: str, target: str) -> pd.DataFrame:
    """Shift rows of batch ``source`` in business time so they fall in batch ``target``."""
    from pipelines.core.periods import parse_window

    src = parse_window(source, contract.batch_frequency, contract.event_timezone)
    dst = parse_window(target, contract.batch_frequency, contract.event_timezone)
    local = pd.to_datetime(frame[contract.event_time], utc=True).dt.tz_convert(contract.event_timezone)
    offset = dst.start_ts.tz_convert(contract.event_timezone).tz_localize(None) - src.start_ts.tz_convert(
        contract.event_timezone
    ).tz_localize(None)
    moved = (local.dt.tz_localize(None) + offset).dt.tz_localize(
        contract.event_timezone, ambiguous="NaT", nonexistent="shift_forward"
    )
    out = frame.assign(**{contract.event_time: moved.dt.tz_convert("UTC")})
    out = out[out[contract.event_time].notna()]
    inside = (out[contract.event_time] >= dst.start_ts) & (out[contract.event_time] < dst.end_ts)
    out = out[inside].copy()
    out[contract.id.column] = target + ":" + out[contract.id.column].astype(str)
    return out


def serve(
    settings: Any,
    env: MonitoringEnv,
    frame: pd.DataFrame,
    *,
    version: str | None = None,
    variant: str = "champion",
    labels: bool = True,
    label_delay_days: float | None = None,
    chunk: int = 2000,
) -> int:
    """Write the rows as served predictions of the champion, and their labels (delayed)."""
    from pipelines.core.predlog import (
        PREDICTIONS,
        LoggedRequest,
        engine_for,
        log_url,
        record_labels,
    )

    contract = settings.dataset
    preds = env.scores(frame)
    cols = contract.features.all
    rows: list[dict[str, Any]] = []
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start : start + chunk]
        req = LoggedRequest(
            request_id=f"{part[contract.id.column].iloc[0]}#{start}",
            ts="2026-01-01T00:00:00+00:00",
            variant=variant,
            model_version=version or env.version,
            columns=cols,
            values=[part[c].to_numpy() for c in cols],
            n_rows=len(part),
            predictions=preds[start : start + chunk],
            latency_ms=1.0,
            entity_ids=part[contract.id.column].tolist(),
            event_times=[pd.Timestamp(t).isoformat() for t in part[contract.event_time]],
        )
        rows.extend(req.rows())
    with engine_for(log_url(settings)).begin() as conn:
        conn.execute(PREDICTIONS.insert(), rows)
    if labels:
        lab = frame[frame[contract.target.name].notna()]
        delay = settings.monitoring.label_delay_days if label_delay_days is None else label_delay_days
        et = pd.to_datetime(lab[contract.event_time], utc=True)
        record_labels(
            settings,
            pd.DataFrame(
                {
                    "entity_id": lab[contract.id.column].astype(str).to_numpy(),
                    "label": lab[contract.target.name].astype(float).to_numpy(),
                    "event_time": [t.isoformat() for t in et],
                    "available_at": [(t + pd.Timedelta(days=delay)).isoformat() for t in et],
                }
            ),
        )
    return len(rows)


def resample(frame: pd.DataFrame, seed: int, share: float = 0.6) -> pd.DataFrame:
    """A random subset of the month's rows (without replacement: entity ids stay unique)."""
    return frame.sample(frac=share, random_state=seed).sort_index()


@dataclass(frozen=True)
class StableRun:
    """The retrain policy's decisions on resampled windows of the month the champion was validated on."""

    violations: list[bool]
    actions: list[str]
    aucs: list[float]

    @property
    def violation_rate(self) -> float:
        """Windows where any check fired: a false alarm, nothing changed."""
        return sum(self.violations) / len(self.violations)

    @property
    def retrain_rate(self) -> float:
        return sum(a == "retrain" for a in self.actions) / len(self.actions)


def stable_windows(env: MonitoringEnv, n: int = 20, scenario: str = "fpr") -> StableRun:
    """``n`` resamples (half the rows each) of the holdout month judged as consecutive windows.

    The holdout month (2013-03) is what the champion was validated on: its prediction and
    performance references are that month itself; features are compared with the training
    window (Jan-Feb), whose natural month-to-month variation is part of "stable". The windows
    are judged by the monitoring component's own ``evaluate_frames`` and ``decide`` (the policy
    with its history), as the monitoring DAG would; the test and the decision benchmark share it.
    """
    from pipelines.monitoring.evidence import WindowResult
    from pipelines.monitoring.monitor import evaluate_frames
    from pipelines.monitoring.policy import PolicyHistory, decide
    from pipelines.monitoring.records import window_of
    from pipelines.monitoring.reference import reference_frame, resolve_reference

    settings = env.scenario(scenario)
    ref = resolve_reference(settings)
    assert ref.model_version == env.version and ref.batches == TRAIN
    reference = reference_frame(settings, ref)  # scored by the registered model, loaded from MLflow
    assert reference["prediction"].notna().sum() > 10_000

    contract, cfg = settings.dataset, settings.monitoring
    history = PolicyHistory()
    violations, actions, aucs = [], [], []
    for i in range(n):
        wid = f"{2015 + i // 12}-{(i % 12) + 1:02d}"
        frame = resample(env.months[HOLDOUT], seed=100 + i, share=0.5)
        served = frame[contract.features.all].assign(prediction=env.scores(frame), model_version=env.version)
        labelled = pd.DataFrame(
            {
                "entity_id": frame[contract.id.column],
                "prediction": served["prediction"],
                "label": frame[contract.target.name],
            }
        )
        window = window_of(settings, wid)
        result = WindowResult(wid, window.ordinal, window.end, "ok", model_version=env.version)
        evaluate_frames(settings, window, result, served, labelled, ref, reference, quality=False)
        d = decide(history, result, cfg)
        history = PolicyHistory((*history.windows, d.as_past()))
        assert d.action != "no_decision", d.reasons  # every check was evaluated
        violations.append(bool(d.violated))
        actions.append(d.action)
        assert result.performance is not None and result.performance.value is not None
        aucs.append(result.performance.value)
    return StableRun(violations, actions, aucs)
