"""The dataset contract: what makes the template reusable.

Every step reads column names, roles and the target definition from it, so swapping to
another tabular dataset means a new YAML file and an expectation suite, not a code change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.config.base import Section


class JoinSpec(Section):
    """A lookup table joined onto the source rows at landing time (e.g. weather by origin+hour)."""

    path: str = Field(description="File path, or pkg://<package>/<relative path> for package data.")
    keys: list[str] = Field(min_length=1, description="Join keys present in both tables.")
    columns: list[str] = Field(min_length=1, description="Columns brought in from the lookup.")


class SourceSpec(Section):
    """Where the raw rows come from; CSV (optionally zipped) read with pandas."""

    path: str = Field(description="File path, or pkg://<package>/<relative path> for package data.")
    joins: list[JoinSpec] = Field(default_factory=list)


class IdSpec(Section):
    """The entity id; composed from several columns when the source has no single key."""

    column: str
    compose_from: list[str] = Field(
        default_factory=list, description="When set, id = these columns joined with '_'."
    )


class TargetSpec(Section):
    """The label, either a source column or derived from one by a threshold rule."""

    name: str
    task: Literal["classification", "regression"]
    derive_from: str | None = Field(
        default=None, description="Source column the label is computed from (then dropped)."
    )
    derive_op: Literal["gt", "ge", "lt", "le"] | None = None
    derive_threshold: float | None = None

    @model_validator(mode="after")
    def _derivation_complete(self) -> TargetSpec:
        parts = (self.derive_from, self.derive_op, self.derive_threshold)
        if any(p is not None for p in parts) and not all(p is not None for p in parts):
            raise ValueError("target derivation needs derive_from, derive_op and derive_threshold")
        if self.derive_from is not None and self.task != "classification":
            raise ValueError("a threshold-derived target is binary: task must be classification")
        return self


class FeatureRoles(Section):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DatasetContract(Section):
    """Everything the code needs to know about a tabular dataset."""

    name: str
    source: SourceSpec
    id: IdSpec
    event_time: str = Field(description="Timestamp column; batches are cut on it.")
    event_timezone: str = Field(
        default="UTC", description="Zone in which batches and calendar features are cut."
    )
    naive_timestamps: Literal["utc", "local"] = Field(
        default="utc",
        description="How an event time written without a zone is read: 'utc' (an instant in UTC) or "
        "'local' (a wall-clock time in event_timezone; the ambiguous fall-back hour is read as "
        "standard time, a spring-forward gap is shifted forward). With 'local' the source's event "
        "times are landed as UTC instants with an explicit offset, so no later step re-reads them.",
    )
    target: TargetSpec
    features: FeatureRoles
    derived_time_features: dict[
        str, Literal["hour", "dayofweek", "month", "dayofyear", "weekofyear", "days_to_holiday"]
    ] = Field(
        default_factory=dict,
        description="New column name -> calendar part of event_time (local), computed at landing "
        "from the event time alone (known at scheduling time). days_to_holiday: days to the "
        "nearest US federal holiday, capped at 30.",
    )
    drop_columns: list[str] = Field(
        default_factory=list,
        description="Columns removed at landing (e.g. known only after the event: leakage).",
    )
    batch_frequency: Literal["month", "week", "day"] = "month"
    batches: list[str] = Field(
        default_factory=list,
        description="Batch ids to replay in order (e.g. 2013-01..2013-12); empty = all in source.",
    )
    slice_columns: list[str] = Field(
        default_factory=list, description="Columns whose groups must not regress (gate, monitoring)."
    )
    expectation_suite: str = Field(description="Path of the GX suite JSON (relative to the repo).")

    @model_validator(mode="after")
    def _roles_disjoint(self) -> DatasetContract:
        overlap = set(self.features.numeric) & set(self.features.categorical)
        if overlap:
            raise ValueError(f"columns both numeric and categorical: {sorted(overlap)}")
        leaked = set(self.features.all) & set(self.drop_columns)
        if leaked:
            raise ValueError(f"feature columns also listed in drop_columns: {sorted(leaked)}")
        if self.target.name in self.features.all:
            raise ValueError(f"target {self.target.name!r} is also a feature")
        return self

    @property
    def landed_columns(self) -> list[str]:
        """Column order of every landed batch file: id, event time, features, target."""
        return [self.id.column, self.event_time, *self.features.all, self.target.name]
