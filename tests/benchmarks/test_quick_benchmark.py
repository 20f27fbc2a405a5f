"""The benchmarks' quick mode (``python -m benchmarks run --quick``) as a test.

100k items, three cases, three runs: it checks that every approach records the
same rows and that the ratios stay within loose bounds; the targets themselves
are judged by the full run (benchmarks/RESULTS.md). It runs on the tests'
PostGIS server (tests/support/postgis.py) in a database of its own, writes under a
temporary directory, and must not touch RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.cli import quick_config
from benchmarks.results import RESULTS_MD
from benchmarks.runner import run
from benchmarks.targets import flow_peak_mb, link_ratios, per_row_speedups, speedup
from sqlalchemy.engine import URL

# Loose bounds: tripwires for regressions, not the targets (see the module docstring).
# Ratios within one run only: no absolute time is asserted (the machine may be busy).
LINK_OVER_FLOOR_MAX = 2.0  # at >= 1,000 matches, fresh and rerun
SMALL_LINK_OVER_FLOOR_MAX = 8.0  # below 1,000 matches the fixed cost (lock, settings) weighs more
PER_ROW_MIN_SPEEDUP = 3.0  # at >= 1,000 matches (coverage, which both pay, caps it near 4-5x)
FLOW_RSS_MAX_MB = 400.0


async def test_quick_benchmark(postgis_url: URL, tmp_path: Path) -> None:
    results_md_before = RESULTS_MD.stat().st_mtime_ns if RESULTS_MD.exists() else None
    config = quick_config(
        out_dir=tmp_path, server_url=postgis_url.render_as_string(hide_password=False)
    )
    results = await run(config, log=print)

    assert (tmp_path / "RESULTS-quick.md").exists()
    assert (tmp_path / "results-quick.json").exists()
    after = RESULTS_MD.stat().st_mtime_ns if RESULTS_MD.exists() else None
    assert after == results_md_before, "quick mode must not write benchmarks/RESULTS.md"

    # Every approach recorded the rows the link recorded (count, ids, coverage).
    mismatches = [
        f"{m.case} {m.approach}: {m.note}" for m in results.measurements if "MISMATCH" in m.note
    ]
    assert not mismatches, mismatches
    checked = [m for m in results.measurements if "checksum" in m.extra]
    assert len(checked) >= 10

    big = max(results.matches["100000"].items(), key=lambda kv: kv[1])
    assert big[1] >= 1_000, f"no quick case reaches 1,000 matches: {results.matches}"

    for mode in ("fresh", "rerun"):
        for r in link_ratios(results, mode):
            bound = LINK_OVER_FLOOR_MAX if r.matches >= 1_000 else SMALL_LINK_OVER_FLOOR_MAX
            assert r.value <= bound, f"{r.case} {mode}: {r.value:.2f}x the floor"

    speedups = per_row_speedups(results)
    assert speedups, "no case with >= 1,000 matches measured the per-row approach"
    for r in speedups:
        assert speedup(r) >= PER_ROW_MIN_SPEEDUP, (
            f"{r.case}: link only {speedup(r):.1f}x faster than one INSERT per row"
        )

    assert results.flow is not None and results.flow.cases
    for c in results.flow.cases:
        assert c.matched == [c.matches]
        assert flow_peak_mb(results.flow, c) < FLOW_RSS_MAX_MB
        # The link statement is timed inside link_study (the flow overhead is measured over it).
        assert 0 < c.step("link") < c.step("link_study"), c.steps
