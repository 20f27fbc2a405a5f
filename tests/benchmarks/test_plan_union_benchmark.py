"""benchmarks/plan_union.py at a small size, as a test: both forms give the same union area on
every case, the report is produced, RESULTS.md is not touched. No timing is asserted."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.plan_union import CASES, FORMS, RESULTS, candidates, measure, render


def test_both_forms_give_the_same_union_on_every_case() -> None:
    before = RESULTS.stat().st_mtime_ns
    studies = candidates(50_000)
    assert [s.key for s in studies] == list(CASES)
    assert all(s.footprints for s in studies if s.key.startswith("country"))
    rows = [measure(s, 1) for s in studies]
    for row in rows:
        assert set(row.medians) == set(FORMS), row.key
        assert row.difference <= 1e-9, row.key
    section = render(50_000, 1, rows, datetime.now(UTC))
    assert section.count("\n| ") == 1 + len(CASES)
    assert RESULTS.stat().st_mtime_ns == before
