"""benchmarks/subdivide.py at a small size, as a test: every variant sums the coverage of the
same matches to nearly the same area, and the report is produced. No timing is asserted.

It runs on the tests' PostGIS server in a database of its own (dropped afterwards) and must
not touch RESULTS.md.
"""

from __future__ import annotations

import asyncio

from benchmarks.subdivide import CASES, RESULTS, VARIANTS, report, run
from sqlalchemy.engine import URL


def test_every_variant_measures_the_same_coverage(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    measured = asyncio.run(run(20_000, 1, url, log=lambda _: None))
    assert [case for case, *_ in measured] == list(CASES)
    for case, rows, seconds, sums in measured:
        assert set(seconds) == set(VARIANTS) and set(sums) == set(VARIANTS), case
        if case.aoi == "country":
            assert rows > 0, case  # the large AOI finds scenes at this size
        base = sums[next(iter(VARIANTS))]
        for name, value in sums.items():
            # Pieces add vertices on the AOI's edges; the areas read edges as great circles.
            assert abs(value - base) <= 1e-3 * base, (case, name, value, base)
    section = report(20_000, 1, measured)
    assert section.count("\n| ") == 1 + len(CASES)
    assert RESULTS.stat().st_mtime_ns == before
