"""benchmarks/frames.py at a small size, as a test: every reader reads every row.

It runs on the tests' PostGIS server in a database of its own (dropped afterwards) and must
not touch RESULTS.md; the 40,000 and 400,000-row numbers come from the full run.
"""

from __future__ import annotations

from benchmarks.frames import RESULTS, run
from sqlalchemy.engine import URL


def test_the_frames_benchmark_runs_every_reader(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    section = run([2_000], runs=1, server_url=postgis_url)
    assert RESULTS.stat().st_mtime_ns == before
    rows = [line for line in section.splitlines() if line.startswith("| ") and "2,000" in line]
    readers = [row.split(" | ")[0].removeprefix("| ").split(" (")[0] for row in rows]
    assert readers == [
        "connectorx", "asyncpg", "orm",
        "export parquet", "export csv", "export geojson", "export stac",
    ]  # fmt: skip
    assert "export parquet, 2,000 rows: 0:" in section
