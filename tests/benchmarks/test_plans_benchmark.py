"""benchmarks/plans_cover.py at a small size, as a test: on the synthetic archive, the plan is
never larger than either hand-written baseline, and it reaches its target.

It runs on the tests' PostGIS server in a database of its own (dropped afterwards) and must
not touch RESULTS.md; the 5M-item figures come from the full run.
"""

from __future__ import annotations

import asyncio

from benchmarks.plans_cover import RESULTS, report, run
from sqlalchemy.engine import URL

CASES = ("city/5 years", "region/5 years", "country/1 year")


def test_the_plan_beats_or_ties_the_baselines_and_reaches_its_target(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    outcomes = asyncio.run(run(20_000, cases=CASES, runs=1, server_url=url, log=lambda _: None))
    assert [o.key for o in outcomes] == list(CASES)
    for o in outcomes:
        assert o.reached, o.key
        assert o.lower_bound <= o.plan, o.key
        for name, taken in o.baselines.items():
            assert o.plan <= len(taken.scenes), (o.key, name)
        assert o.plan > 1  # a real plan, not a single scene covering everything
    section = report(outcomes, 20_000, 1, 0.0)
    assert "never larger than either baseline: 3 of 3 cases (holds)" in section
    assert RESULTS.stat().st_mtime_ns == before
