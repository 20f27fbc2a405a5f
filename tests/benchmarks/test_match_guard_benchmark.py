"""benchmarks/match_guard.py at a small size, as a test: the guarded match and ST_Intersects
count the same matches on every case (the benchmark asserts it), the plans are reported, and
RESULTS.md is not touched. No timing is asserted."""

from __future__ import annotations

import asyncio

from benchmarks.match_guard import CASES, FORMS, report, run
from benchmarks.sections import RESULTS
from sqlalchemy.engine import URL


def test_the_guarded_match_counts_what_st_intersects_counts(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    measured = asyncio.run(run(20_000, 1, url, log=lambda _: None))
    assert [m.case for m in measured] == list(CASES)
    assert any(m.matches > 0 for m in measured)
    for m in measured:
        assert set(m.plans) == set(m.seconds) == set(FORMS), m.case
        assert all("archive_item" in p or "Scan" in p for p in m.plans.values()), m.plans
    section = report(20_000, 1, measured)
    assert section.count("\n| ") == 1 + len(CASES)
    assert RESULTS.stat().st_mtime_ns == before
