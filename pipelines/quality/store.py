"""File effects of the gate: staged evidence folders swapped in whole, and the validated store.

Evidence (reports, Data Docs, quarantine) is built in hidden sibling folders and swapped in at
once, so a re-run never leaves a mix of two versions; the validated store is written data first,
marker last, so a reader never sees a half-published batch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.core.observability import write_json_atomic
from pipelines.data.landing import LandedBatch, sha256_file
from pipelines.data.validated import MARKER, ValidatedBatch, validated_dir
from pipelines.quality.errors import NothingLostError


def swap_dir(staged: Path, final: Path) -> None:
    """Replace ``final`` by ``staged`` (same filesystem), so a re-run never leaves a mix."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def staging(final: Path, registry: list[Path]) -> Path:
    """A hidden sibling folder to build ``final`` in; registered so a failure can remove it."""
    staged = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    registry.append(staged)
    return staged


def quarantine_file(staged: Path, landed: LandedBatch) -> None:
    """Quarantine an unreadable file byte for byte, and prove the copy is the landed file."""
    copy = staged / landed.path.name
    shutil.copyfile(landed.path, copy)
    if sha256_file(copy) != landed.sha256:
        raise NothingLostError(f"quarantine copy of {landed.path} differs from the landed file")


def quarantine_rows(staged: Path, rows: pd.DataFrame) -> None:
    text_cols = {c: "string" for c in rows.columns if rows[c].dtype == object}
    rows.astype(text_cols).to_parquet(staged / "rows.parquet", index=False)


def write_report(folder: Path, report: dict[str, Any], markdown: str) -> None:
    write_json_atomic(folder / "report.json", report)
    (folder / "report.md").write_text(markdown, encoding="utf-8")


def publish(
    settings: Settings, landed: LandedBatch, accepted: pd.DataFrame, status: str, quarantined: int
) -> ValidatedBatch:
    """Write accepted rows then the marker (last), replacing any earlier version of the batch."""
    folder = validated_dir(settings, landed.batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    marker.unlink(missing_ok=True)  # readers see "not published" rather than a mixed version
    data = folder / "accepted.parquet"
    tmp = folder / f".accepted.parquet.tmp-{os.getpid()}"
    accepted.to_parquet(tmp, index=False)
    tmp.replace(data)
    batch = ValidatedBatch(
        dataset=settings.dataset.name,
        batch_id=landed.batch_id,
        uri=f"file://{data}",
        rows=len(accepted),
        source_sha256=landed.sha256,
        status=status,
        rows_quarantined=quarantined,
    )
    write_json_atomic(marker, batch.to_dict())
    return batch


def withdraw(settings: Settings, batch_id: str) -> None:
    """Unpublish a batch (its data stays; without the marker it does not exist downstream)."""
    (validated_dir(settings, batch_id) / MARKER).unlink(missing_ok=True)
