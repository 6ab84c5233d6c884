"""Where the gate's evidence of one landed file lives (pure layout, no I/O).

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
    key = (settings.dataset.name, batch_id, sha256[:12])
    return GatePaths(
        reports=settings.paths.reports.joinpath("quality", *key),
        data_docs=settings.paths.data_docs.joinpath(*key),
        quarantine=settings.paths.quarantine.joinpath(*key),
    )
