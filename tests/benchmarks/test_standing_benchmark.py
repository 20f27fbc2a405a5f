"""benchmarks/standing.py at a small size, as a test: scenes loaded in batches while the
product's matcher runs are all matched, every pair the rule gives is linked exactly once, and
each study's notifications reach the loopback Augur. The 1M x 1,000 numbers come from the full
run (benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.standing import main
from sqlalchemy.engine import URL


def test_the_standing_benchmark_links_every_pair_once(postgis_url: URL, tmp_path: Path) -> None:
    out = tmp_path / "standing.json"
    argv = ["--scenes", "3000", "--studies", "20", "--load-batch", "1000", "--match-batch", "500"]
    argv += ["--baseline-studies", "2", "--json", str(out)]
    argv += ["--server-url", postgis_url.render_as_string(hide_password=False)]
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["matched_scenes"] == 3000
    assert summary["rows_equal_rule"] is True
    assert summary["lookup_rows"] > 0 and summary["notifications"] > 0
    assert summary["lag_p50_s"] > 0 and summary["baseline_study_s"] > 0
