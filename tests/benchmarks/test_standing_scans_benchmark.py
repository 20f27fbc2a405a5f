"""benchmarks/standing_scans.py at a small size, as a test: both arms write the same pairs,
the bitmap arm plans no plain scan of a GiST index, and the plain arm (what the matcher did
before docs/postgres-gist-bug.md) does. The 1M x 1,000 numbers come from the full run
(benchmarks/RESULTS.md). With fewer than about 100 studies the planner reads
``standing_study`` whole in both arms, and the arms would not differ."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.standing_scans import main
from sqlalchemy.engine import URL

GIST = ("ix_archive_item_footprint_acquired_at", "ix_standing_study_location")


def test_both_arms_write_the_same_pairs_and_differ_in_their_scans(
    postgis_url: URL, tmp_path: Path
) -> None:
    out = tmp_path / "scans.json"
    argv = ["--scenes", "4000", "--studies", "150", "--batch", "500", "--rounds", "2"]
    argv += ["--load-batch", "2000", "--json", str(out)]
    argv += ["--server-url", postgis_url.render_as_string(hide_password=False)]
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["same_pairs"] is True and summary["links_per_round"] > 0
    assert len(summary["seconds"]["bitmap"]) == len(summary["seconds"]["plain"]) == 2
    scans = {arm: {s for plan in plans for s in plan} for arm, plans in summary["plans"].items()}
    plain_gist = {f"Index Scan on {name}" for name in GIST}
    assert not scans["bitmap"] & plain_gist, scans["bitmap"]
    assert scans["plain"] & plain_gist, scans["plain"]
