"""benchmarks/coverage.py at a small size, as a test: within each family every variant reads
the same matches and gives nearly the same value, and the report is produced. No timing is
asserted.

It runs on the tests' PostGIS server in a database of its own (dropped afterwards) and must
not touch RESULTS.md.
"""

from __future__ import annotations

import asyncio

from benchmarks.coverage import CASES, FAMILIES, report, run
from benchmarks.sections import RESULTS
from sqlalchemy.engine import URL


def test_every_variant_gives_the_same_coverage(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    measured = asyncio.run(run(20_000, 1, url, log=lambda _: None))
    assert [(m.family, m.case) for m in measured] == [(f.key, c) for f in FAMILIES for c in CASES]
    for m in measured:
        family = next(f for f in FAMILIES if f.key == m.family)
        assert set(m.seconds) == set(m.values) == set(family.variants), m.case
        if m.case.aoi == "country":
            assert m.matches > 0 and m.values[next(iter(family.variants))] > 0, m.case
        ref = m.values[next(iter(family.variants))]
        for name, value in m.values.items():
            # Pieces add vertices on the AOI's edges, which the 0.25° chords of the areas
            # meet at other points, and a union's floating point depends on its order.
            assert abs(value - ref) <= 1e-3 * ref, (m.family, m.case, name, value, ref)
    section = report(20_000, 1, measured)
    assert section.count("\n| ") == len(FAMILIES) * (1 + len(CASES))
    assert RESULTS.stat().st_mtime_ns == before
