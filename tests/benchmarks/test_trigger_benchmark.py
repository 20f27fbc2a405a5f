"""benchmarks/trigger.py at its smallest, as a test: one round, one timed trigger per worker
type, on a real Prefect server and real workers (``--type process`` and ``--type noctis``).
The report names both worker types, every latency is positive, and the ratio is there. No
timing is asserted; the figures come from the full run.

It runs on the tests' PostGIS server in a database of its own (dropped afterwards) and must
not touch RESULTS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.trigger import PHASES, RESULTS, WORKER_TYPES, main
from sqlalchemy.engine import URL

pytestmark = pytest.mark.e2e


def test_the_trigger_benchmark_times_both_workers(
    postgis_url: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = RESULTS.stat().st_mtime_ns
    out = tmp_path / "trigger.json"
    url = postgis_url.render_as_string(hide_password=False)
    argv = ["--rounds", "1", "--triggers", "1", "--json", str(out), "--server-url", url]
    assert main(argv) == 0
    assert RESULTS.stat().st_mtime_ns == before

    section = capsys.readouterr().out
    assert "noctis / process:" in section
    for worker in WORKER_TYPES:
        assert f"| {worker} (`--type {worker}`) | 1 |" in section

    result = json.loads(out.read_text())
    assert [(r["worker"], r["index"]) for r in result["runs"]] == [
        ("process", 0), ("process", 1), ("noctis", 0), ("noctis", 1),
    ]  # fmt: skip
    for r in result["runs"]:
        assert r["latency_s"] > 0, r
        assert set(r["phases"]) == set(PHASES), r  # every state was found
        assert r["phases"]["start"] > 0 and r["phases"]["flow"] > 0, r
    for worker in WORKER_TYPES:
        summary = result["workers"][worker]
        assert summary["timed_runs"] == 1
        assert summary["latency_median_s"] > 0
        assert 0 < summary["worker_registered_median_s"] <= summary["worker_ready_median_s"]
    assert result["ratio_noctis_to_process"] > 0
    assert result["report"] in section
