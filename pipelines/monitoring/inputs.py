"""A window's evidence from the prediction log: served features, predictions, matured labels.

Read through the prediction-log store's queries (``pipelines.core.predlog``), which own
the schema, and written to the window's folder as parquet (:func:`collect_window`), so the
tasks after it pass file references, not rows. Rows are checked here rather than trusted: an
unreadable features JSON, a feature value of the wrong type, or a missing prediction makes a
row *corrupt*; corrupt rows are counted and quoted (request ids), never silently dropped, and
more than ``monitoring.max_corrupt_rows`` of them make the window undecidable. Labels count
only once matured: ``available_at`` before the as-of time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, log_context
from pipelines.core.periods import Window, as_of_iso
from pipelines.core.predlog import log_url, read_labelled, read_predictions, to_utc_iso
from pipelines.monitoring.contracts import CollectedWindow
from pipelines.monitoring.records import window_dir, window_of

log = get_logger(__name__)


@dataclass
class WindowData:
    """Served rows of one window (one per entity) and the champion's matured labels."""

    window: Window
    as_of: str
    log_url: str
    served: pd.DataFrame  # contract features + prediction, model_version, variant, entity_id
    labelled: pd.DataFrame  # entity_id, prediction, label, model_version (matured, champion only)
    champion_version: str | None
    n_logged: int = 0
    n_errors: int = 0
    n_corrupt: int = 0
    n_duplicates: int = 0
    n_labels_immature: int = 0
    corrupt_examples: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)

    def collected(self, served_uri: str, labelled_uri: str) -> CollectedWindow:
        """References and counts only: what travels between tasks."""
        return CollectedWindow(
            window=self.window.id,
            start=self.window.start,
            end=self.window.end,
            as_of=self.as_of,
            prediction_log=_redact(self.log_url),
            rows_logged=self.n_logged,
            rows_served=len(self.served),
            rows_error=self.n_errors,
            rows_corrupt=self.n_corrupt,
            rows_duplicate=self.n_duplicates,
            corrupt_examples=tuple(self.corrupt_examples),
            model_versions=dict(self.versions),
            champion_version=self.champion_version,
            labels_mature=len(self.labelled),
            labels_immature=self.n_labels_immature,
            served_uri=served_uri,
            labelled_uri=labelled_uri,
        )


def _redact(url: str) -> str:
    """A log URL without its password, safe for records and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _parse_features(
    df: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Expand the features JSON; return (frame, corrupt mask, reason per corrupt row)."""
    records: list[dict[str, Any]] = []
    reasons: list[str] = []
    for raw in df["features"].tolist():
        try:
            rec = json.loads(raw) if isinstance(raw, str) else None
        except (TypeError, ValueError) as exc:
            records.append({})
            reasons.append(f"features JSON unreadable ({type(exc).__name__})")
            continue
        if not isinstance(rec, dict):
            records.append({})
            reasons.append("features is not a JSON object")
            continue
        missing = [c for c in (*numeric, *categorical) if c not in rec]
        records.append(rec)
        reasons.append(f"features lack {missing[:3]}" if missing else "")
    feats = pd.DataFrame.from_records(records, index=df.index, columns=[*numeric, *categorical])
    why = pd.Series(reasons, index=df.index, dtype="object")
    for col in numeric:
        raw_col = feats[col]
        num = pd.to_numeric(raw_col, errors="coerce")
        bad = raw_col.notna() & num.isna()
        why = why.mask(bad & (why == ""), f"non-numeric value in {col}")
        feats[col] = num.astype("float64")
    for col in categorical:
        raw_col = feats[col]
        feats[col] = raw_col.where(raw_col.isna(), raw_col.astype(str))
    pred = pd.to_numeric(df["prediction"], errors="coerce").to_numpy(dtype="float64")
    no_pred = pd.Series(~np.isfinite(pred), index=df.index)
    why = why.mask(no_pred & (why == ""), "no finite prediction")
    return feats, why != "", why


def collect(settings: Settings, window: Window, as_of: str) -> WindowData:
    """Read the window's served rows and its matured labels from the prediction log.

    Served = logged without an error. When an entity was served more than once (a client
    retry), its latest row counts once. The *champion version* is the model version that
    answered most ``champion``-variant rows; prediction drift and performance are judged
    on its rows only (canary rows belong to the canary analysis).
    """
    contract = settings.dataset
    numeric, categorical = contract.features.numeric, contract.features.categorical
    url = log_url(settings)
    as_of = to_utc_iso(as_of) or window.end
    raw = read_predictions(settings, event_from=window.start, event_to=window.end, include_errors=True)
    n_logged = len(raw)
    errors = raw["error"].notna()
    ok = raw[~errors]
    feats, corrupt, why = (
        _parse_features(ok, numeric, categorical)
        if len(ok)
        else (
            pd.DataFrame(columns=[*numeric, *categorical]),
            pd.Series(dtype=bool),
            pd.Series(dtype=object),
        )
    )
    examples = [
        f"{rid}: {reason}" for rid, reason in zip(ok.loc[corrupt, "request_id"], why[corrupt], strict=True)
    ]
    served = pd.concat(
        [
            ok[["request_id", "entity_id", "event_time", "ts", "variant", "model_version"]],
            feats,
            pd.to_numeric(ok["prediction"], errors="coerce").rename("prediction"),
        ],
        axis=1,
    )[~corrupt]
    keyed = served["entity_id"].notna()
    dup = keyed & served.duplicated(subset=["entity_id"], keep="last")
    served = served[~dup].reset_index(drop=True)

    champ_rows = served[served["variant"] == "champion"]
    versions = served["model_version"].fillna("unknown").value_counts().to_dict()
    champion = (
        str(champ_rows["model_version"].value_counts().idxmax())
        if len(champ_rows) and champ_rows["model_version"].notna().any()
        else None
    )

    labelled = pd.DataFrame(columns=["entity_id", "prediction", "label", "model_version"])
    n_immature = 0
    if champion is not None:
        everything = read_labelled(
            settings, event_from=window.start, event_to=window.end, variant="champion", model_version=champion
        )
        if len(everything):
            everything = everything.drop_duplicates(subset=["entity_id"], keep="last")
            mature = everything["available_at"].notna() & (everything["available_at"] < as_of)
            labelled = everything.loc[
                mature, ["entity_id", "prediction", "label", "model_version"]
            ].reset_index(drop=True)
            n_immature = int((~mature).sum())
    return WindowData(
        window=window,
        as_of=as_of,
        log_url=url,
        served=served,
        labelled=labelled,
        champion_version=champion,
        n_logged=n_logged,
        n_errors=int(errors.sum()),
        n_corrupt=int(corrupt.sum()),
        n_duplicates=int(dup.sum()),
        n_labels_immature=n_immature,
        corrupt_examples=examples[:5],
        versions={str(k): int(v) for k, v in versions.items()},
    )


def collect_window(settings: Settings, window_id: str, as_of: str | None = None) -> CollectedWindow:
    """Read the window's served rows and matured labels; persist them; return references and counts."""
    window = window_of(settings, window_id)
    cutoff = as_of_iso(as_of, window)
    out_dir = window_dir(settings, window.id)
    with log_context(window=window.id):
        data = collect(settings, window, cutoff)
        out_dir.mkdir(parents=True, exist_ok=True)
        served_path, labelled_path = out_dir / "served.parquet", out_dir / "labelled.parquet"
        for frame, path in ((data.served, served_path), (data.labelled, labelled_path)):
            tmp = path.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
        collected = data.collected(str(served_path), str(labelled_path))
        log.info(
            "window collected",
            rows=collected.rows_served,
            corrupt=data.n_corrupt,
            labels=collected.labels_mature,
            champion_version=data.champion_version,
        )
        return collected
