"""The chaos run's phases: seed, trigger, inject faults, settle, a long Augur outage, check.

1. **Chaos.** ``studies`` studies (each its own finder over a shared archive, a handful of
   dreams) are triggered through the study's deployment as Augur triggers them; the driver
   (``faults``) injects faults until every run has ended.
2. **Settle.** The driver stops and Augur is back; the scheduled dispatcher (every
   ``dispatch_seconds``) and the crash automation deliver what is left.
3. **Outage** (``outage_seconds`` > 0). Augur refuses every connection while
   ``outage_studies`` more studies run and commit; it comes back, and the time until the last
   pending notification is taken is measured against one dispatcher period.
4. **Check** (``check.verdict``) over every study of both phases.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from noctis.devtools.reference import reference_match_sql
from tests.chaos.check import FINAL, Study, Verdict, describe, verdict
from tests.chaos.faults import Driver, Pace
from tests.chaos.stack import Stack, chaos_stack

ARCHIVE_ITEMS = 2_000
FULL_PACE = Pace(
    gap=(10, 30), augur_up=(30, 90), augur_down=(60, 180), augur_timeout=3, worker_kills=4
)
DREAMS = 8


@dataclass(frozen=True)
class Config:
    studies: int = 200
    dispatch_seconds: int = 60
    zombie_seconds: int = 90
    pace: Pace = FULL_PACE
    outage_seconds: float = 600
    outage_studies: int = 20
    worker_limit: int = 4
    chaos_timeout: float = 3600
    seed: int = 12


@dataclass
class Outcome:
    config: Config
    verdict: Verdict
    tries: dict[str, int]
    hits: dict[str, int]
    augur_seconds: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    outage_delay: float | None = None  # Augur back -> the last pending notification taken
    outage_pending: int = 0  # notifications pending when Augur came back
    load: str = ""
    driver_errors: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def augur_env(config: Config) -> dict[str, str]:
    """The worker's Augur retry policy: quick enough that faults come and go within a run."""
    return {
        "NOCTIS_AUGUR_TIMEOUT": str(config.pace.augur_timeout),
        "NOCTIS_AUGUR_CONNECT_TIMEOUT": "2",
        "NOCTIS_AUGUR_MAX_ATTEMPTS": "4",
        "NOCTIS_AUGUR_MAX_RETRY_SECONDS": "20",
        "NOCTIS_AUGUR_BACKOFF_BASE": "0.5",
        "NOCTIS_AUGUR_BACKOFF_MAX": "5",
    }


def seed(stack: Stack, count: int, rng: random.Random, *, first: bool) -> list[Study]:
    """``count`` studies, each a finder of its own (boxes of 0.2 to 0.8 degrees, some with a
    window or a cloud limit) over the grid archive of tests/support/studies.py."""
    studies = []
    with psycopg.connect(stack.atlas_dsn, autocommit=True) as conn:
        if first:
            from tests.support.studies import seed_grid

            async_seed = seed_grid  # the async helper, run on an async connection below
            import asyncio

            async def grid() -> None:
                async with await psycopg.AsyncConnection.connect(
                    stack.atlas_dsn, autocommit=True
                ) as aconn:
                    await async_seed(aconn, n=ARCHIVE_ITEMS)

            asyncio.run(grid())
            for i in range(DREAMS):
                conn.execute("INSERT INTO dream (name) VALUES (%s)", (f"chaos {i}",))
        dreams = [row[0] for row in conn.execute("SELECT id FROM dream ORDER BY id")]
        for i in range(count):
            lon, lat = rng.uniform(10, 12), rng.uniform(44, 46)
            size = rng.uniform(0.2, 0.8)
            window = rng.choice([(None, None), ("2024-01-10", "2024-02-20"), (None, "2024-02-01")])
            cloud = rng.choice([None, None, 50.0])
            row = conn.execute(
                "INSERT INTO imagery_finder (name, location, start_date, end_date, "
                "max_cloud_cover) VALUES (%s, ST_MakeEnvelope(%s, %s, %s, %s, 4326), %s, %s, %s) "
                "RETURNING id",
                (f"chaos {i}", lon, lat, lon + size, lat + size, *window, cloud),
            ).fetchone()
            assert row is not None
            finder = int(row[0])
            expected = [r[0] for r in conn.execute(reference_match_sql("%s"), (finder,))]
            studies.append(Study(finder, dreams[i % len(dreams)], expected))
    return studies


def trigger(stack: Stack, studies: list[Study]) -> list[Study]:
    deployment = stack.deployment_id()
    return [Study(s.finder, s.dream, s.expected, stack.trigger(deployment, s.finder, s.dream))
            for s in studies]  # fmt: skip


def runs(stack: Stack) -> dict[str, dict[str, Any]]:
    return {run["id"]: run for run in stack.flow_runs(stack.deployment_id())}


def wait(condition: Callable[[], bool], timeout: float, every: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def ended(stack: Stack, studies: list[Study]) -> bool:
    now = runs(stack)
    return all((now.get(s.run_id, {}).get("state") or {}).get("type") in FINAL for s in studies)


def settled(stack: Stack, studies: list[Study]) -> bool:
    """Every run ended, nothing pending, and every run without a ``completed`` announced."""
    if not ended(stack, studies):
        return False
    with psycopg.connect(stack.atlas_dsn) as conn:
        rows = conn.execute("SELECT flow_run_id, state FROM notification_outbox").fetchall()
    if any(state == "pending" for _, state in rows):
        return False
    return {s.run_id for s in studies} <= {run for run, _ in rows}


def pending(stack: Stack) -> int:
    with psycopg.connect(stack.atlas_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM notification_outbox WHERE state = 'pending'"
        ).fetchone()
    return int(row[0]) if row else 0


def chaos_run(config: Config, admin_url: URL, workdir: Path, say: Callable[[str], None]) -> Outcome:
    rng = random.Random(config.seed)
    began = time.monotonic()
    with chaos_stack(
        admin_url,
        workdir,
        dispatch_every=timedelta(seconds=config.dispatch_seconds),
        zombie_after=timedelta(seconds=config.zombie_seconds),
        augur_env=augur_env(config),
        worker_limit=config.worker_limit,
    ) as stack:
        seeded = seed(stack, config.studies, rng, first=True)
        say(f"{len(seeded)} studies seeded ({time.monotonic() - began:.0f} s)")
        seconds: dict[str, float] = {}
        mark = time.monotonic()
        with Driver(stack, config.pace, rng, say) as driver:  # faults from the first run on
            studies = trigger(stack, seeded)
            say(f"{len(studies)} studies triggered ({time.monotonic() - began:.0f} s)")
            # A driver that failed stops the chaos at once (its error is in the report; the
            # worker it may have left dead is restarted below, so the rest still settles).
            wait(lambda: bool(driver.errors) or ended(stack, studies), config.chaos_timeout, 5)
        seconds["chaos"] = time.monotonic() - mark
        say(f"chaos over after {seconds['chaos']:.0f} s: {dict(driver.hits)}")
        if stack.worker is None or stack.worker.process.poll() is not None:
            stack.start_worker()
        mark = time.monotonic()
        settle_for = 2 * config.zombie_seconds + 4 * config.dispatch_seconds + 120
        wait(lambda: settled(stack, studies), settle_for)
        seconds["settle"] = time.monotonic() - mark
        say(f"settled after {seconds['settle']:.0f} s")
        outcome = Outcome(config, Verdict(), dict(driver.tries), dict(driver.hits),
                          dict(driver.augur_seconds), seconds, log=driver.log,
                          driver_errors=[repr(e) for e in driver.errors])  # fmt: skip
        if config.outage_seconds > 0:
            studies += outage(stack, config, rng, outcome, say)
        outcome.verdict = verdict(stack, studies, runs(stack))
        outcome.seconds["total"] = time.monotonic() - began
        outcome.load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        return outcome


def outage(
    stack: Stack, config: Config, rng: random.Random, outcome: Outcome, say: Callable[[str], None]
) -> list[Study]:
    """Augur refuses connections for ``outage_seconds`` (and until the studies have ended)
    while studies commit; then it is back."""
    mark = time.monotonic()
    stack.augur.stop()
    studies = trigger(stack, seed(stack, config.outage_studies, rng, first=False))
    say(f"Augur down; {len(studies)} more studies triggered")
    # Down for outage_seconds at least, and until the studies have ended: each committed, or
    # died, while Augur was away (a flow-run process may take a minute to start under load).
    wait(lambda: ended(stack, studies), config.chaos_timeout, every=5)
    time.sleep(max(0.0, config.outage_seconds - (time.monotonic() - mark)))
    outcome.outage_pending = pending(stack)
    back = time.time()
    stack.augur.start()
    say(f"Augur back after {time.monotonic() - mark:.0f} s, {outcome.outage_pending} pending")
    wait(lambda: pending(stack) == 0, 4 * config.dispatch_seconds + 120, every=0.5)
    taken = [r.wall for r in stack.augur.accepted() if r.wall >= back]
    outcome.outage_delay = (max(taken) - back) if taken else None
    wait(lambda: settled(stack, studies), 2 * config.dispatch_seconds + 60)
    outcome.seconds["outage"] = time.monotonic() - mark
    return studies


def report(outcome: Outcome) -> str:
    v, c = outcome.verdict, outcome.config
    lines = [
        f"studies: {c.studies} + {c.outage_studies if c.outage_seconds else 0} (outage phase); "
        f"final states {v.states}",
        f"committed: {v.committed}; announced failed: {v.failed_announced}",
        "faults (hit/tried): "
        + ", ".join(
            f"{k} {outcome.hits.get(k, 0)}/{outcome.tries.get(k, 0)}" for k in sorted(outcome.tries)
        ),
        f"Augur fault seconds: {outcome.augur_seconds}",
        f"Augur requests: {v.requests}, of which resent under a key already taken: {v.resent}",
        f"delivery latency (committed -> taken by Augur): {v.latency()}",
        f"crash notices (run ended Crashed or Cancelled -> its failed in the outbox): "
        f"{describe(v.notices)} over {len(v.notices)} runs (the issue's bound: 120 s)",
        f"outage: {c.outage_seconds:.0f} s, {outcome.outage_pending} pending at the return, the "
        f"last taken {outcome.outage_delay if outcome.outage_delay is not None else 'n/a'} s "
        f"after (dispatcher period {c.dispatch_seconds} s)",
        "seconds: " + ", ".join(f"{k} {s:.0f}" for k, s in outcome.seconds.items()),
        f"load average at the end: {outcome.load} ({os.cpu_count()} cores)",
        f"violations: {len(v.violations)}",
        *(f"  - {line}" for line in v.violations[:50]),
        *(f"driver error: {e}" for e in outcome.driver_errors),
    ]
    return "\n".join(lines)
