"""The data gate's decision as a pure function: what failed and how many rows -> a verdict.

:func:`decide` takes what the effects found (the structural failures of the file, the failures GX
reported with their severities and offending row positions, the row counts) and returns a frozen
:class:`DataVerdict`: the status, the failures in report order, and which rows are published and
which quarantined. It reads no file and writes none, so every rule of the gate can be checked with
inline data; :mod:`pipelines.quality.gate` does the reading, writing and recording around it.

The rules (the same words as the report):

* ``passed`` -- every rule held; all rows are published.
* ``passed_with_warnings`` -- only row-level rules failed, on at most ``row_level_max_share`` of
  the rows; those rows are quarantined, the rest published.
* ``rejected`` -- a critical rule failed, the file is structurally broken, or too many rows failed
  row-level rules; every row is quarantined and nothing is published.

They are expressed as the kernel's gate criteria (:mod:`pipelines.core.gates`): one required
criterion for the critical rules, one for the row-level share, and one non-required (warning)
criterion per row-level rule that flagged rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from pipelines.core.gates import Criterion, Outcome, Verdict
from pipelines.quality.errors import NothingLostError
from pipelines.quality.results import STRUCTURAL, Failure

PASSED = "passed"
PASSED_WITH_WARNINGS = "passed_with_warnings"
REJECTED = "rejected"
#: Label of the critical failure added when too many rows fail row-level rules.
ROW_SHARE_RULE = "quality.row_level_max_share"


class Publication(Enum):
    """What happens to the validated store once the verdict is known."""

    PUBLISH = "publish"  # accepted rows replace any earlier version of the batch
    KEEP_PREVIOUS = "keep_previous"  # rejected; an older, different version stays published
    WITHDRAW = "withdraw"  # rejected; this very file was published before (older suite): unpublish
    NOTHING = "nothing"  # rejected; nothing was published, nothing to withdraw


@dataclass(frozen=True)
class RowRule:
    """A row-level rule that failed, with the (0-based) positions of the rows it flagged."""

    label: str
    positions: frozenset[int]


@dataclass(frozen=True)
class DataVerdict:
    """The gate's decision on one landed file, with the accepted/quarantined split as positions.

    ``table_rows`` is None when the file never became a table: then it is quarantined byte for
    byte (``quarantined`` is None) and ``rows_in`` counts its lines.
    """

    gate: Verdict
    status: str
    failures: tuple[Failure, ...]  # ranked: critical first, causes before consequences
    rows_in: int
    table_rows: int | None
    row_rules: tuple[RowRule, ...]
    flagged: frozenset[int]  # rows that failed at least one row-level rule
    row_level_max_share: float

    @property
    def rejected(self) -> bool:
        return self.status == REJECTED

    @property
    def accepted(self) -> tuple[int, ...]:
        """Positions of the rows to publish, in file order."""
        if self.rejected or self.table_rows is None:
            return ()
        return tuple(i for i in range(self.table_rows) if i not in self.flagged)

    @property
    def quarantined(self) -> tuple[int, ...] | None:
        """Positions of the rows to quarantine, in file order (None: the whole file as is)."""
        if self.table_rows is None:
            return None
        if self.rejected:
            return tuple(range(self.table_rows))
        return tuple(sorted(self.flagged))

    @property
    def rows_accepted(self) -> int:
        return len(self.accepted)

    @property
    def rows_quarantined(self) -> int:
        quarantined = self.quarantined
        return self.rows_in if quarantined is None else len(quarantined)

    @property
    def has_quarantine(self) -> bool:
        """Whether the file leaves evidence in quarantine (a rejection always does)."""
        return bool(self.rows_quarantined) or self.rejected

    @property
    def row_level_share(self) -> float | None:
        """Share of the table's rows that failed row-level rules, as reported (None: no rows)."""
        if not self.table_rows:
            return None
        return round(len(self.flagged) / self.table_rows, 6)

    @property
    def failed_expectations(self) -> list[str]:
        return [f.expectation for f in self.failures]


def failure_rank(f: Failure) -> tuple[int, int, str]:
    """Critical before row-level; within them causes before consequences (a file with no rows also
    fails every completeness rule, but the row count is what the reader needs to see first)."""
    kind = f.type
    order = (
        0 if kind.startswith(STRUCTURAL)
        else 1 if kind.startswith("expect_table_")
        else 2 if kind == "expect_column_values_to_be_in_type_list"
        else 4 if kind.startswith("quality.")
        else 3
    )  # fmt: skip
    return (f.severity != "critical", order, f.expectation)


def _row_share_failure(
    flagged: int, rows: int, share: float, limit: float, rules: Sequence[RowRule]
) -> Failure:
    worst = sorted(rules, key=lambda r: -len(r.positions))[:3]
    return Failure(
        expectation=ROW_SHARE_RULE,
        type=ROW_SHARE_RULE,
        severity="critical",
        message=(
            f"{flagged} of {rows} rows ({share:.1%}) failed row-level rules, "
            f"above the {limit:.0%} limit; most rows: "
            + ", ".join(f"{r.label} ({len(r.positions)})" for r in worst)
        ),
        why="a batch where this many rows are bad is a broken extract, not a few bad rows",
        observed_value=share,
    )


def _criteria(
    failures: Sequence[Failure],
    rules: Sequence[RowRule],
    flagged: int,
    table_rows: int | None,
    share: float,
    limit: float,
) -> tuple[Criterion, ...]:
    # the share rule is judged by its own criterion below
    critical = [
        f.expectation for f in failures if f.severity == "critical" and f.expectation != ROW_SHARE_RULE
    ]
    rows_figures = {"rows_flagged": flagged, "rows": table_rows, "share": share, "limit": limit}
    if table_rows is None:
        share_outcome, share_detail = Outcome.INCONCLUSIVE, "the file never became a table"
    elif share > limit:
        share_outcome, share_detail = Outcome.FAIL, f"{share:.1%} of the rows failed row-level rules"
    else:
        share_outcome, share_detail = Outcome.PASS, f"{share:.1%} of the rows failed row-level rules"
    return (
        Criterion(
            kind="critical",
            name="critical_rules",
            outcome=Outcome.FAIL if critical else Outcome.PASS,
            detail=f"{len(critical)} critical failure(s)" if critical else "every critical rule held",
            figures={"failed": tuple(critical)},
        ),
        Criterion(
            kind="row",
            name="row_level_max_share",
            outcome=share_outcome,
            detail=share_detail,
            figures=rows_figures,
        ),
        *(
            Criterion(
                kind="row",
                name=r.label,
                outcome=Outcome.FAIL,
                detail=f"{len(r.positions)} row(s) quarantined",
                figures={"rows": len(r.positions)},
                required=False,
            )
            for r in rules
        ),
    )


def decide(
    structural: Sequence[Failure],
    gx_failures: Sequence[Failure],
    row_positions: Mapping[str, Sequence[int]],
    *,
    rows_in: int,
    table_rows: int | None,
    row_level_max_share: float,
) -> DataVerdict:
    """The verdict on one file (pure: the failures are read, never changed).

    Args:
        structural: failures found before GX could see a table (the file's own checks).
        gx_failures: failures GX reported, each with its severity (``critical`` or ``row``).
        row_positions: label of each failed row-wise rule -> positions of its offending rows.
        rows_in: records in the file (its line count when it never became a table).
        table_rows: rows of the table GX validated; None when the file never became one.
        row_level_max_share: above this share of flagged rows the batch is rejected.
    """
    found = [*structural, *gx_failures]
    rules: list[RowRule] = []
    if table_rows is not None:
        for failure in found:
            positions = row_positions.get(failure.expectation)
            if positions is not None and failure.severity == "row":
                rules.append(RowRule(failure.expectation, frozenset(int(p) for p in positions)))
    flagged = frozenset().union(*(r.positions for r in rules))
    share = len(flagged) / table_rows if table_rows else 0.0
    if table_rows is not None and share > row_level_max_share:
        found.append(_row_share_failure(len(flagged), table_rows, share, row_level_max_share, rules))
    failures = tuple(sorted(found, key=failure_rank))
    gate = Verdict(_criteria(failures, rules, len(flagged), table_rows, share, row_level_max_share))
    status = REJECTED if gate.outcome is not Outcome.PASS else (PASSED_WITH_WARNINGS if flagged else PASSED)
    return DataVerdict(
        gate=gate,
        status=status,
        failures=failures,
        rows_in=rows_in,
        table_rows=table_rows,
        row_rules=tuple(rules),
        flagged=flagged,
        row_level_max_share=row_level_max_share,
    )


def publication(verdict: DataVerdict, landed_sha256: str, published_sha256: str | None) -> Publication:
    """What the verdict does to the store, given the version published now (if any)."""
    if not verdict.rejected:
        return Publication.PUBLISH
    if published_sha256 is None:
        return Publication.NOTHING
    return Publication.KEEP_PREVIOUS if published_sha256 != landed_sha256 else Publication.WITHDRAW


def check_nothing_lost(batch_id: str, rows_in: int, accepted: int, quarantined: int) -> None:
    """Rows in must equal rows accepted + quarantined, counted on what is about to be written."""
    if accepted + quarantined != rows_in:
        raise NothingLostError(
            f"batch {batch_id}: {rows_in} rows in but {accepted} accepted + "
            f"{quarantined} quarantined; nothing was published"
        )
