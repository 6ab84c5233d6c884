"""Where the gate's evidence of one landed file lives (layout only: nothing is read or written).

Everything is keyed by the landed file's content hash, so a corrected replay never overwrites the
evidence of an earlier rejection and re-validating the same file rewrites the same paths::

    reports/quality/<dataset>/<batch>/<sha12>/{gx_result.json, report.json, report.md}
    reports/data_docs/<dataset>/<batch>/<sha12>/index.html        (GX Data Docs)
    quarantine/<dataset>/<batch>/<sha12>/{rows.parquet | <raw file>, report.json, report.md}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Settings
from pipelines.core.errors import InvalidInputError
from pipelines.core.period_ids import check_batch_id, check_under


@dataclass(frozen=True)
class GatePaths:
    reports: Path
    data_docs: Path
    quarantine: Path

    @property
    def report_json(self) -> Path:
        return self.reports / "report.json"

    @property
    def report_md(self) -> Path:
        return self.reports / "report.md"

    @property
    def gx_result(self) -> Path:
        return self.reports / "gx_result.json"

    @property
    def data_docs_index(self) -> Path:
        return self.data_docs / "index.html"


def gate_paths(settings: Settings, batch_id: str, sha256: str) -> GatePaths:
    """The evidence folders of one file; the batch id and every folder are checked first.

    Raises:
        InvalidInputError: the id is not a batch id of the contract's frequency, the hash is not
            hex, or a folder would resolve outside the runtime root.
    """
    bid = check_batch_id(batch_id, settings.dataset.batch_frequency)
    sha = sha256[:12]
    if len(sha) != 12 or any(ch not in "0123456789abcdef" for ch in sha):
        raise InvalidInputError(f"file hash {sha256[:16]!r} is not a sha256 hex digest")
    key = (settings.dataset.name, bid, sha)
    root = settings.paths.root
    return GatePaths(
        reports=check_under(root, settings.paths.reports.joinpath("quality", *key)),
        data_docs=check_under(root, settings.paths.data_docs.joinpath(*key)),
        quarantine=check_under(root, settings.paths.quarantine.joinpath(*key)),
    )
