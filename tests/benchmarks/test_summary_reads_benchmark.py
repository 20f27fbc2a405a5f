"""benchmarks/summary_reads.py at a small size, as a test: both forms of the suspect count give
the non-finite items each case matched (the benchmark asserts it on every run), and the report is
produced. No timing is asserted; RESULTS.md is not touched."""

from __future__ import annotations

import asyncio

from benchmarks.sections import RESULTS
from benchmarks.summary_reads import CASES, report, run
from sqlalchemy.engine import URL


def test_both_suspect_counts_find_the_non_finite_items(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    measured = asyncio.run(run(20_000, 1, url, log=lambda _: None))
    assert [m.case for m in measured] == list(CASES)
    for m in measured:
        assert m.suspects >= 2, m.case  # the case's own two, at least
        assert m.rows > m.suspects, m.case
    section = report(20_000, 1, measured)
    assert section.count("\n| ") == 1 + len(CASES)
    assert RESULTS.stat().st_mtime_ns == before
