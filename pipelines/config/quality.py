"""The data quality gate's limits (section ``quality``)."""

from __future__ import annotations

from pydantic import Field

from pipelines.config.base import Section


class QualityConfig(Section):
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
