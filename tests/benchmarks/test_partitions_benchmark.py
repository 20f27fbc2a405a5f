"""benchmarks/partitions.py at small sizes, as a test: the partitioned copy holds every row in
yearly partitions, both variants match the same ids (the module raises otherwise), the planner
keeps only the window's years, and the report is produced. No timing is asserted.

It runs on the tests' PostGIS server in databases of its own (dropped afterwards) and must not
touch RESULTS.md.
"""

from __future__ import annotations

import asyncio

from benchmarks.partitions import CASES, RESULTS, report, run, spec_for
from sqlalchemy.engine import URL


def test_archive_growth_in_time_keeps_the_density() -> None:
    first, later = spec_for(5_000_000, 5_000_000, "time"), spec_for(20_000_000, 5_000_000, "time")
    assert later.end == first.end and abs(later.days - 4 * first.days) <= 1
    assert later.start.year == 1998
    assert spec_for(20_000_000, 5_000_000, "density").start == first.start


def test_both_variants_match_the_same_ids_and_the_years_are_pruned(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    sized = asyncio.run(run([10_000, 20_000], 1, "time", url, log=lambda _: None))
    assert [s.size for s in sized] == [10_000, 20_000]
    first, later = sized
    assert first.part.partitions == 7 and later.part.partitions == 14  # 2019-2025, 2012-2025
    for s in sized:
        assert s.build.rows == s.size
        assert [m.case for m in s.measured] == list(CASES)
        scanned = {m.case.key: m.partitions_scanned for m in s.measured}
        # A month and a year lie in 2024 only; five years (2020-2024) in five partitions.
        assert scanned == {"point/1 month": 1, "city/1 year": 1, "country/5 years": 5}, scanned
        country = s.measured[-1]
        assert country.matches > 0
    section = report("cmd", 1, "time", sized, "0.0")
    assert section.count("\n| 10k |") == len(CASES) and "| city/1 year | 20k |" in section
    assert RESULTS.stat().st_mtime_ns == before
