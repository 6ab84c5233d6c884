"""What the gate found, in plain data (no GX objects), so reports and events can be written
and read back without importing Great Expectations."""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from pipelines.quality.suite import Severity

STRUCTURAL = "structure"  # prefix of checks made before GX can see a table


@dataclass
class Failure:
    """One failed rule: a GX expectation, or a structural check GX cannot express on a file."""

    expectation: str  # stable label, e.g. "expect_column_values_to_be_between(distance)"
    type: str
    severity: Severity
    message: str
    column: str | None = None
    why: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    sample_values: list[Any] = field(default_factory=list)
    errored: bool = False  # GX could not evaluate it (e.g. the column is missing)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))  # type: ignore[no-any-return]


def jsonable(value: Any) -> Any:
    """Plain-JSON version of GX/numpy/pandas values (non-finite floats become strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()  # numpy scalar
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, list | dict) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
    except (TypeError, ValueError):
        pass
    return str(value)
