"""benchmarks/fk_checks.py at a small size, as a test: every arm with checks refuses a lookup row
that names a missing dream, finder or scene, and every arm writes the same rows. The numbers
come from the full run (benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.fk_checks import ARMS, main, render
from sqlalchemy.engine import URL


def test_the_arms_write_the_same_rows_and_refuse_missing_references(
    postgis_url: URL, tmp_path: Path
) -> None:
    out = tmp_path / "fk.json"
    argv = ["--size", "5000", "--runs", "1", "--cases", "city/5 years,point/5 years"]
    argv += ["--json", str(out), "--server-url", postgis_url.render_as_string(hide_password=False)]
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["refuses_missing_references"] is True
    cases = summary["cases"]
    assert set(cases) == {"city/5 years", "point/5 years"}
    for case in cases.values():
        assert case["same_rows"] is True and case["rows"][0] > 0, case
        assert set(case["median_ms"]) == set(ARMS) and len(case["seconds"]["fk"]) == 1
    table = render(summary)
    assert "| city/5 years |" in table and "NOT RAISED" not in table
