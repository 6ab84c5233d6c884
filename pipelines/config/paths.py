"""Where the repository is and where runtime state goes.

``REPO_ROOT`` anchors every repo-relative path (the default YAML, expectation suites, the
runtime root), so it is computed from this file's place: ``pipelines/config/paths.py``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from pipelines.config.base import Section

# pipelines/config/paths.py -> pipelines/config -> pipelines -> the repository
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "pipeline.yaml"


class PathsConfig(Section):
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
