"""The outbox's chaos run, reduced for the suite (``python -m tests.chaos`` is the full one).

Real processes throughout (tests/chaos/stack.py): a Prefect server on PostgreSQL, the
deployments and automations ``noctis deploy`` registers, a process worker, the loopback Augur.
Scaled down: 12 studies instead of 200, faults every 4 to 10 s instead of 10 to 30 (one worker
kill instead of four), Augur's fault episodes 10 to 25 s instead of 1 to 3 minutes, the
dispatcher every 10 s instead of 60, and a 30 s Augur outage instead of 10 minutes. The zombie
window stays 90 s (3 heartbeats: Prefect's heartbeat cannot be shorter than 30 s). No timing is
asserted except the outage's delivery, against generous bounds; every figure is printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.chaos.faults import Pace
from tests.chaos.run import Config, chaos_run, report

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.chaos]

SUITE = Config(
    studies=12,
    dispatch_seconds=10,
    pace=Pace(gap=(4, 10), augur_up=(5, 15), augur_down=(10, 25), augur_timeout=3, worker_kills=1),
    outage_seconds=30,
    outage_studies=3,
    worker_limit=4,
    chaos_timeout=600,
)


def test_every_committed_study_is_announced_once_and_every_dead_run_failed(
    postgis_url: URL, tmp_path: Path
) -> None:
    outcome = chaos_run(SUITE, postgis_url, tmp_path, print)
    print(report(outcome))
    verdict = outcome.verdict
    assert outcome.driver_errors == []
    assert verdict.violations == []
    assert sum(verdict.states.values()) == SUITE.studies + SUITE.outage_studies
    assert verdict.committed + verdict.failed_announced == SUITE.studies + SUITE.outage_studies
    assert sum(outcome.hits.values()) > 0  # faults struck
    # Augur down: every notification pending at its return is taken within one dispatcher
    # period, plus a pass' start-up (a flow-run process) on a loaded machine.
    assert outcome.outage_pending > 0
    assert outcome.outage_delay is not None
    assert outcome.outage_delay < SUITE.dispatch_seconds + 60
