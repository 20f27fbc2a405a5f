"""Standing studies at scale: scenes loaded in batches against N standing studies.

    uv run python -m benchmarks.standing --scenes 1M --studies 1000     # the issue's size
    uv run python -m benchmarks.standing --scenes 100k --studies 1000 --json out.json

A loader commits batches of ``--load-batch`` scenes (one INSERT … SELECT each, so the trigger
queues them as any writer's would); the standing matcher (the product's
:func:`noctis.standing.match_batch` and delivery through the outbox, as ``standing-match``
runs them) works concurrently; a loopback Augur records when each notification arrives.
Reported:

- throughput: scenes matched per second of the matcher's time (and over the wall clock);
- lag: from a load batch's COMMIT to the arrival at Augur of the last ``updated`` that covers
  its scenes (p50 / p95 / max over the batches);
- the baseline, in the same run: rerunning the full study (the link step over the whole
  archive) for every standing study after a load batch, timed on ``--baseline-studies`` of
  them at the final archive size and scaled to all of them.

Scenes are ~1° tiles (0.2..1.2°) over lon -10..30, lat 35..60; AOIs squares of 0.2..1°;
every study open-ended. The loader waits for the queue to drain before its next batch when
``--pace drain`` (lag of an idle system), or loads back to back with ``--pace none``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg

from benchmarks.db import create_database, drop_database, parse_size, server
from noctis import migrate, standing
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.devtools.localdb import free_port
from noctis.runtime import open_runtime
from noctis.settings import Settings
from noctis.study import check_study, link_study
from noctis.unit_of_work import UnitOfWork

GRACE = timedelta(days=30)
LOAD_SQL = """
INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover, gsd)
SELECT $1 || '-' || g, 'sentinel-2-l2a',
       ST_MakeEnvelope(x, y, x + s, y + s, 4326),
       timestamptz '2024-01-01' + random() * interval '365 days',
       (random() * 100)::real, 10
FROM (SELECT g, -10 + random() * 40 AS x, 35 + random() * 25 AS y, 0.2 + random() AS s
      FROM generate_series(1, $2) AS g) AS t
RETURNING id
"""
FINDERS_SQL = """
INSERT INTO imagery_finder (name, location, start_date)
SELECT 'standing ' || g, ST_MakeEnvelope(x, y, x + s, y + s, 4326), date '2024-01-01'
FROM (SELECT g, -10 + random() * 40 AS x, 35 + random() * 25 AS y, 0.2 + random() * 0.8 AS s
      FROM generate_series(1, $1) AS g) AS t
RETURNING id
"""


QUEUED_SQL = "SELECT count(*) FROM standing_change"
# The match rule written independently of the product (the studies here: open-ended windows
# from 2024-01-01, no filters), over the whole archive, against what the matcher linked.
RULE_SQL = """
SELECT s.dream_id, a.id FROM standing_study s
JOIN imagery_finder f ON f.id = s.imagery_finder_id
JOIN archive_item a ON ST_Intersects(a.footprint, f.location)
 AND a.acquired_at >= (f.start_date::timestamp AT TIME ZONE 'UTC')
"""
LINKED_SQL = "SELECT dream_id, archive_item_id FROM archive_lookup_item"


async def _drained(conn: asyncpg.Connection) -> None:
    """Wait until the matcher has taken every queued scene (polls the database)."""
    while True:
        if not await conn.fetchval(QUEUED_SQL):
            return
        await asyncio.sleep(0.02)


class _Augur:
    """A loopback Augur that answers 200 and records when each key arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived.setdefault(self.headers.get("Idempotency-Key", ""), time.time())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@dataclass
class Run:
    scenes: int
    studies: int
    load_batch: int
    match_batch: int
    pace: str
    origin: str = ""
    setup_s: float = 0.0
    wall_s: float = 0.0
    matcher_busy_s: float = 0.0
    deliver_s: float = 0.0
    rows_equal_rule: bool | None = None
    matched_scenes: int = 0
    lookup_rows: int = 0
    notifications: int = 0
    lags: list[float] = field(default_factory=list)
    baseline_study_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lags = sorted(self.lags)
        per_study = statistics.mean(self.baseline_study_s) if self.baseline_study_s else 0.0
        baseline_batch_s = per_study * self.studies
        return {
            "scenes": self.scenes, "studies": self.studies, "load_batch": self.load_batch,
            "match_batch": self.match_batch, "pace": self.pace, "server": self.origin,
            "setup_s": round(self.setup_s, 1), "wall_s": round(self.wall_s, 1),
            "matched_scenes": self.matched_scenes, "lookup_rows": self.lookup_rows,
            "notifications": self.notifications,
            "rows_equal_rule": self.rows_equal_rule,
            "deliver_s": round(self.deliver_s, 1),
            "match_s": round(self.matcher_busy_s - self.deliver_s, 1),
            "scenes_per_s_matcher": round(self.matched_scenes / self.matcher_busy_s, 1),
            "scenes_per_s_wall": round(self.matched_scenes / self.wall_s, 1),
            "lag_p50_s": round(_pct(lags, 0.50), 3), "lag_p95_s": round(_pct(lags, 0.95), 3),
            "lag_max_s": round(lags[-1], 3) if lags else None,
            "baseline_study_s": round(per_study, 4),
            "baseline_batch_s": round(baseline_batch_s, 1),
            "baseline_scenes_per_s": round(self.load_batch / baseline_batch_s, 1)
            if baseline_batch_s else None,
        }  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def _setup(settings: Settings, n: int) -> list[tuple[int, int]]:
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_url))
    try:
        finders = [r[0] for r in await conn.fetch(FINDERS_SQL, n)]
        dreams = [r[0] for r in await conn.fetch(
            "INSERT INTO dream (name) SELECT 'd' || g FROM generate_series(1, $1) g RETURNING id", n
        )]  # fmt: skip
    finally:
        await conn.close()
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    try:
        for finder, dream in zip(finders, dreams, strict=True):
            async with UnitOfWork(factory) as uow:
                study = await check_study(uow, finder_id=finder, dream_id=dream)
                await link_study(uow, study, standing_grace=GRACE)
    finally:
        await engine.dispose()
    return list(zip(finders, dreams, strict=True))


async def _run(settings: Settings, run: Run, augur: _Augur, baseline_studies: int) -> None:
    started = time.monotonic()
    studies = await _setup(settings, run.studies)
    run.setup_s = time.monotonic() - started
    loaded: list[tuple[int, int, float]] = []  # (first id, last id, commit wall time)
    batches: list[tuple[tuple[int, ...], list[str]]] = []
    done = asyncio.Event()

    async def matcher() -> None:
        async with open_runtime(settings) as runtime:
            assert runtime.augur is not None
            while True:
                t0 = time.monotonic()
                async with runtime.unit_of_work() as uow:
                    got = await standing.match_batch(
                        uow, batch=run.match_batch, grace=GRACE, pass_id=f"bench-{uuid.uuid4()}"
                    )
                if got is not None:
                    t1 = time.monotonic()
                    await standing.deliver_batch(
                        runtime.unit_of_work, runtime.augur, got.messages, by="benchmark",
                        give_up_after=timedelta(hours=1),
                    )  # fmt: skip
                    run.deliver_s += time.monotonic() - t1
                    run.matcher_busy_s += time.monotonic() - t0
                    run.matched_scenes += len(got.items)
                    batches.append((got.items, [m.key for m in got.messages]))
                elif done.is_set():
                    return
                else:
                    await asyncio.sleep(0.02)

    conn = await asyncpg.connect(libpq_dsn(settings.atlas_url))
    task = asyncio.create_task(matcher())
    wall = time.monotonic()
    try:
        for b in range(run.scenes // run.load_batch):
            ids = [r[0] for r in await conn.fetch(LOAD_SQL, f"b{b}", run.load_batch)]
            loaded.append((min(ids), max(ids), time.time()))  # autocommit: committed
            if run.pace == "drain":
                await _drained(conn)
            print(
                f"[standing] batch {b + 1}/{run.scenes // run.load_batch}: "
                f"{run.matched_scenes:,} scenes matched, {time.monotonic() - wall:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        done.set()
        await task
        run.wall_s = time.monotonic() - wall
        run.lookup_rows = await conn.fetchval("SELECT count(*) FROM archive_lookup_item")
        expected = set(map(tuple, await conn.fetch(RULE_SQL)))
        got_pairs = set(map(tuple, await conn.fetch(LINKED_SQL)))
        run.rows_equal_rule = expected == got_pairs and len(got_pairs) == run.lookup_rows
    finally:
        await conn.close()
    run.notifications = sum(len(keys) for _, keys in batches)
    for first, last, committed in loaded:
        arrivals = [
            augur.arrived[k]
            for items, keys in batches
            if items and items[0] <= last and items[-1] >= first
            and any(first <= i <= last for i in items)
            for k in keys
        ]  # fmt: skip
        if arrivals:
            run.lags.append(max(arrivals) - committed)
    engine = make_engine(settings)
    try:
        factory = make_session_factory(engine)
        for finder, dream in studies[:baseline_studies]:
            async with UnitOfWork(factory) as uow:
                study = await check_study(uow, finder_id=finder, dream_id=dream)
                t0 = time.monotonic()
                await link_study(uow, study, standing_grace=GRACE)
                run.baseline_study_s.append(time.monotonic() - t0)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standing")
    parser.add_argument("--scenes", type=parse_size, default=1_000_000)
    parser.add_argument("--studies", type=int, default=1_000)
    parser.add_argument("--load-batch", type=int, default=10_000)
    parser.add_argument("--match-batch", type=int, default=2_000)
    parser.add_argument("--pace", choices=["drain", "none"], default="drain")
    parser.add_argument("--baseline-studies", type=int, default=100)
    parser.add_argument("--server-url", help="an admin URL of a PostGIS to use (default: private)")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    run = Run(args.scenes, args.studies, args.load_batch, args.match_batch, args.pace)
    augur = _Augur()
    with server(args.server_url, durable=True) as srv:
        run.origin = srv.origin
        name = f"standing_{uuid.uuid4().hex[:8]}"
        url = asyncio.run(create_database(srv.admin_url, name))
        try:
            settings = Settings(
                atlas_db_url=url.render_as_string(hide_password=False),
                noctis_augur_api_url=augur.url,
                _env_file=None,
            )
            migrate.upgrade(settings)
            asyncio.run(_run(settings, run, augur, args.baseline_studies))
        finally:
            asyncio.run(drop_database(srv.admin_url, name))
    augur.server.shutdown()
    summary = run.summary()
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
