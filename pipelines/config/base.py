"""The base of every config section (its own module so each section module can share it)."""

from __future__ import annotations

from pydantic import BaseModel


class Section(BaseModel):
    """Sections reject unknown keys so a typo in the YAML fails loudly, not silently."""

    model_config = {"extra": "forbid"}
