"""Landing: a batch arrives as an immutable, content-addressed CSV file with a stable id.

Layout::

    <root>/landing/<dataset>/<batch_id>/<batch_id>.<sha12>.csv   # never rewritten
    <root>/landing/<dataset>/<batch_id>/manifest.json            # which file is current + history

Landing the same content twice is a no-op (idempotent re-runs); landing a corrected
file for the same batch id adds a new file and keeps the old one, so nothing is
ever overwritten or lost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.observability import get_logger, write_json_atomic
from pipelines.core.periods import batch_ids
from pipelines.data.source import load_source

log = get_logger(__name__)


@dataclass(frozen=True)
class LandedBatch:
    """Reference to a landed batch, small enough to pass between tasks (XCom, asset extra)."""

    dataset: str
    batch_id: str
    uri: str
    sha256: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LandedBatch:
        return cls(**{k: d[k] for k in ("dataset", "batch_id", "uri", "sha256", "rows")})

    @property
    def path(self) -> Path:
        return Path(self.uri.removeprefix("file://"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def batch_dir(settings: Settings, batch_id: str) -> Path:
    return settings.paths.landing / settings.dataset.name / batch_id


def _source_cache(settings: Settings) -> pd.DataFrame:
    """The contract-shaped source, cached as parquet so landing 12 batches reads it once."""
    contract = settings.dataset
    key = hashlib.sha256(contract.model_dump_json().encode()).hexdigest()[:16]
    cache = settings.paths.root / "cache" / f"source-{contract.name}-{key}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    df = load_source(contract, base=settings.config_file.parent)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(cache)
    return df


def source_frame(settings: Settings) -> pd.DataFrame:
    """Every source row in the landed schema (read once, then from the landing cache)."""
    return _source_cache(settings)


def available_batches(settings: Settings) -> list[str]:
    """Batch ids to replay: the configured list, or every batch present in the source."""
    if settings.dataset.batches:
        return list(settings.dataset.batches)
    df = _source_cache(settings)
    return sorted(
        batch_ids(
            df[settings.dataset.event_time],
            settings.dataset.batch_frequency,
            settings.dataset.event_timezone,
        )
        .dropna()
        .unique()
    )


@dataclass(frozen=True)
class OutsideRows:
    """Source rows that belong to no configured batch: how many, in which periods, where they went."""

    rows: int
    by_batch: dict[str, int]  # batch id (or "unparseable event time") -> rows
    quarantined: Path | None  # CSV of the rows themselves (None when there are none)
    report: Path | None

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_batch.items()))
        return (
            f"{self.rows} source rows outside every configured batch ({parts}), "
            f"quarantined at {self.quarantined}"
        )


#: Folder (under <quarantine>/<dataset>/) of the rows no configured batch takes; not a batch-id shape.
OUTSIDE_FOLDER = "_outside_batches"
UNPARSEABLE = "unparseable event time"


def outside_batches(settings: Settings, ids: pd.Series | None = None) -> OutsideRows:
    """Count and quarantine the source rows that no configured batch takes; they are never landed.

    The rule: with ``dataset.batches`` listed, a row whose event time falls in an unlisted period
    (e.g. a naive time read in the wrong zone lands on 2010-12-31) or does not parse is written,
    whole, to ``<quarantine>/<dataset>/_outside_batches/rows.<source key>.csv`` beside a
    ``report.json`` counting them per period; with no list, every period is a batch and only
    unparseable event times are outside. Landing logs the count on every batch it lands and
    ``mlops config check`` reports it, so no row disappears without a trace.
    """
    contract = settings.dataset
    df = _source_cache(settings)
    if ids is None:
        ids = batch_ids(df[contract.event_time], contract.batch_frequency, contract.event_timezone)
    outside = ids.isna()
    if contract.batches:
        outside |= ~ids.isin(contract.batches)
    if not outside.any():
        return OutsideRows(0, {}, None, None)
    counts = ids[outside].fillna(UNPARSEABLE).value_counts()
    by_batch = {str(k): int(v) for k, v in counts.items()}
    folder = settings.paths.quarantine / contract.name / OUTSIDE_FOLDER
    key = hashlib.sha256(contract.model_dump_json().encode()).hexdigest()[:16]
    rows_path, report_path = folder / f"rows.{key}.csv", folder / "report.json"
    if not rows_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = rows_path.with_suffix(".partial")
        df[outside].to_csv(tmp, index=False)
        tmp.replace(rows_path)
    report = {
        "dataset": contract.name,
        "rule": "rows whose event time falls in no configured batch (dataset.batches) or does not "
        "parse are quarantined here and never landed",
        "batch_frequency": contract.batch_frequency,
        "event_timezone": contract.event_timezone,
        "naive_timestamps": contract.naive_timestamps,
        "rows": int(outside.sum()),
        "by_batch": by_batch,
        "file": str(rows_path),
    }
    write_json_atomic(report_path, report)
    return OutsideRows(int(outside.sum()), by_batch, rows_path, report_path)


def land_batch(settings: Settings, batch_id: str) -> LandedBatch:
    """Cut one batch out of the source and land it (no-op if identical content is landed).

    Source rows no configured batch takes are quarantined and counted (:func:`outside_batches`).

    Raises:
        InvalidInputError: the source has no rows for that batch id (no retry makes one appear).
    """
    contract = settings.dataset
    df = _source_cache(settings)
    ids = batch_ids(df[contract.event_time], contract.batch_frequency, contract.event_timezone)
    outside = outside_batches(settings, ids)
    if outside.rows:
        log.warning(
            "source rows outside every configured batch",
            rows=outside.rows,
            by_batch=outside.by_batch,
            quarantined=str(outside.quarantined),
            report=str(outside.report),
        )
    batch = df[ids == batch_id]
    if batch.empty:
        raise InvalidInputError(f"source has no rows for batch {batch_id!r} ({contract.batch_frequency})")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "batch.csv"
        batch.to_csv(staged, index=False)
        return land_file(settings, batch_id, staged, origin=contract.source.path)


def land_file(settings: Settings, batch_id: str, file: Path, origin: str) -> LandedBatch:
    """Land a file as the current version of ``batch_id`` (used by replay of corrected batches)."""
    digest = sha256_file(file)
    folder = batch_dir(settings, batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{batch_id}.{digest[:12]}.csv"
    if not target.exists():
        tmp = target.with_suffix(".partial")
        shutil.copyfile(file, tmp)
        tmp.replace(target)  # atomic: readers never see a half-written batch
        target.chmod(0o444)
    rows = _count_rows(target)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"history": []}
    if manifest.get("current", {}).get("sha256") != digest:
        entry = {
            "file": target.name,
            "sha256": digest,
            "rows": rows,
            "origin": origin,
            "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        manifest["current"] = entry
        manifest["history"].append(entry)
        write_json_atomic(manifest_path, manifest)
        log.info("batch landed", batch_id=batch_id, file=str(target), rows=rows, sha256=digest[:12])
    else:
        log.info("batch already landed, unchanged", batch_id=batch_id, file=str(target))
    return LandedBatch(settings.dataset.name, batch_id, f"file://{target}", digest, rows)


def current_landed(settings: Settings, batch_id: str) -> LandedBatch:
    """The current landed version of a batch; raises if it was never landed."""
    folder = batch_dir(settings, batch_id)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"batch {batch_id!r} was never landed (no {manifest_path})")
    cur = json.loads(manifest_path.read_text())["current"]
    return LandedBatch(
        settings.dataset.name, batch_id, f"file://{folder / cur['file']}", cur["sha256"], cur["rows"]
    )


def _count_rows(path: Path) -> int:
    """Data lines in a CSV (raw byte count of newlines; garbled files are still countable)."""
    with path.open("rb") as fh:
        lines = sum(1 for _ in fh)
    return max(lines - 1, 0)
