"""The data gate's verdict as a pure function: inline failures and row counts, no file, no GX."""

from __future__ import annotations

import pytest

from pipelines.core.gates import Outcome
from pipelines.quality import PASSED, PASSED_WITH_WARNINGS, REJECTED, NothingLostError, decide
from pipelines.quality.results import Failure
from pipelines.quality.verdict import Publication, check_nothing_lost, publication


def _failure(label: str, severity: str = "row", kind: str | None = None) -> Failure:
    return Failure(expectation=label, type=kind or label.split("(")[0], severity=severity, message="bad")  # type: ignore[arg-type]


NULLS = "expect_column_values_to_not_be_null(is_late)"
RANGE = "expect_column_values_to_be_between(distance)"
COLUMNS = "expect_table_columns_to_match_ordered_list"


def test_no_failure_passes_and_publishes_every_row() -> None:
    v = decide([], [], {}, rows_in=10, table_rows=10, row_level_max_share=0.2)
    assert v.status == PASSED and v.gate.outcome is Outcome.PASS
    assert v.accepted == tuple(range(10)) and v.quarantined == ()
    assert (v.rows_accepted, v.rows_quarantined, v.row_level_share) == (10, 0, 0.0)
    assert not v.has_quarantine


def test_row_level_failures_quarantine_only_their_rows() -> None:
    v = decide(
        [],
        [_failure(NULLS), _failure(RANGE)],
        {NULLS: [1, 3], RANGE: [3, 7]},
        rows_in=10,
        table_rows=10,
        row_level_max_share=0.5,
    )
    assert v.status == PASSED_WITH_WARNINGS and v.gate.passed
    assert v.quarantined == (1, 3, 7) and v.accepted == (0, 2, 4, 5, 6, 8, 9)
    assert v.rows_accepted + v.rows_quarantined == v.rows_in
    assert v.row_level_share == 0.3
    assert [r.label for r in v.row_rules] == [NULLS, RANGE]
    assert [c.label for c in v.gate.criteria if not c.required] == [f"row:{NULLS}", f"row:{RANGE}"]


def test_too_many_flagged_rows_reject_the_batch_with_a_named_failure() -> None:
    v = decide([], [_failure(NULLS)], {NULLS: [0, 1, 2]}, rows_in=10, table_rows=10, row_level_max_share=0.2)
    assert v.status == REJECTED
    assert v.failed_expectations == ["quality.row_level_max_share", NULLS]  # critical first
    share = v.failures[0]
    assert share.severity == "critical" and share.observed_value == 0.3
    assert share.message.startswith("3 of 10 rows (30.0%) failed row-level rules, above the 20% limit")
    assert v.gate.failed_criteria == ["row:row_level_max_share"]
    assert v.accepted == () and v.quarantined == tuple(range(10))


def test_a_critical_failure_rejects_and_ranks_causes_first() -> None:
    v = decide(
        [],
        [_failure(NULLS), _failure(COLUMNS, "critical")],
        {NULLS: [2]},
        rows_in=5,
        table_rows=5,
        row_level_max_share=0.5,
    )
    assert v.status == REJECTED and v.failed_expectations == [COLUMNS, NULLS]
    assert v.gate.failed_criteria == ["critical:critical_rules"]
    assert (v.rows_accepted, v.rows_quarantined) == (0, 5)


def test_an_unreadable_file_is_rejected_and_quarantined_whole() -> None:
    broken = _failure("structure:file_is_utf8", "critical", "structure:file_is_utf8")
    v = decide([broken], [], {}, rows_in=42, table_rows=None, row_level_max_share=0.2)
    assert v.status == REJECTED and v.quarantined is None and v.accepted == ()
    assert (v.rows_quarantined, v.row_level_share) == (42, None)
    assert v.gate.outcome is Outcome.FAIL


def test_publication_follows_the_status_and_the_published_version() -> None:
    ok = decide([], [], {}, rows_in=1, table_rows=1, row_level_max_share=0.2)
    bad = decide(
        [_failure("structure:x", "critical", "structure:x")],
        [],
        {},
        rows_in=1,
        table_rows=None,
        row_level_max_share=0.2,
    )
    assert publication(ok, "a", "b") is Publication.PUBLISH
    assert publication(bad, "a", None) is Publication.NOTHING
    assert publication(bad, "a", "b") is Publication.KEEP_PREVIOUS
    assert publication(bad, "a", "a") is Publication.WITHDRAW


def test_nothing_lost_is_checked_on_counts() -> None:
    check_nothing_lost("2013-01", 10, 7, 3)
    with pytest.raises(NothingLostError, match="10 rows in but 7 accepted \\+ 2 quarantined"):
        check_nothing_lost("2013-01", 10, 7, 2)
