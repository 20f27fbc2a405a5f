"""The standing matcher's joins with bitmap index scans (as shipped) against plain index scans
(before docs/postgres-gist-bug.md), taking turns on the same batches in one run.

    uv run python -m benchmarks.standing_scans --scenes 1M --studies 1000 --batch 10000

The archive (``benchmarks.standing``'s tiles) and the open-ended standing studies are built
once, then the change queue is emptied. Each round takes ``--batch`` scene ids, and each arm in
turn (the first arm alternating by round) deletes those scenes' lookup rows, queues them, and
times one :func:`noctis.standing.match_batch` (fence, take, lock, unlink, link with coverage,
totals, commit; no delivery). The arms must write the same (study, scene) pairs. The plain arm
runs with :data:`noctis.repositories.standing.BITMAP_SCANS` replaced by a statement that
changes nothing. Each arm's statements are then EXPLAINed in their transaction's settings,
reporting how they read the GiST indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
from sqlalchemy import event, text

from benchmarks.db import create_database, drop_database, parse_size, server
from benchmarks.standing import GRACE, LOAD_SQL, _setup
from noctis import migrate, standing
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.repositories import standing as standing_repo
from noctis.settings import Settings
from noctis.unit_of_work import UnitOfWork

ARMS = ("bitmap", "plain")
PAIRS_SQL = (
    "SELECT imagery_finder_id, dream_id, archive_item_id FROM archive_lookup_item "
    "WHERE archive_item_id = ANY($1::bigint[])"
)


def _scans(plan: dict[str, Any]) -> Iterator[str]:
    if "Index Name" in plan:
        yield f"{plan['Node Type']} on {plan['Index Name']}"
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def _build(settings: Settings, scenes: int, studies: int, load: int) -> None:
    await _setup(settings, studies)  # on the empty archive: every study stands, nothing linked
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_url))
    try:
        for b in range(scenes // load):
            await conn.execute(LOAD_SQL.replace("RETURNING id", ""), f"s{b}", load)
            print(f"[scans] loaded {(b + 1) * load:,} scenes", file=sys.stderr, flush=True)
        await conn.execute("DELETE FROM standing_change")
        await conn.execute("VACUUM ANALYZE archive_item")
        await conn.execute("VACUUM ANALYZE standing_study")
    finally:
        await conn.close()


async def _measure(settings: Settings, rounds: int, batch: int) -> dict[str, Any]:
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_url))
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    shipped = standing_repo.BITMAP_SCANS
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    statements: dict[str, list[tuple[str, Any]]] = {arm: [] for arm in ARMS}
    capture: list[tuple[str, Any]] | None = None

    def on_execute(_c: Any, _cur: Any, statement: str, parameters: Any, *_a: Any) -> None:
        if capture is not None:
            capture.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    same_pairs = True
    links = 0
    try:
        top = await conn.fetchval("SELECT max(id) FROM archive_item")
        for r in range(rounds):
            first = 1 + (r * 7919 * batch) % max(1, top - batch)
            ids = list(range(first, first + batch))
            written: dict[str, set[tuple[int, int, int]]] = {}
            for arm in ARMS if r % 2 == 0 else ARMS[::-1]:
                await conn.execute(
                    "DELETE FROM archive_lookup_item WHERE archive_item_id = ANY($1::bigint[])", ids
                )
                await conn.execute(
                    "INSERT INTO standing_change (archive_item_id) SELECT unnest($1::bigint[])", ids
                )
                standing_repo.BITMAP_SCANS = shipped if arm == "bitmap" else text("SELECT 1")
                capture = statements[arm] if r == 0 else None
                try:
                    t0 = time.monotonic()
                    async with UnitOfWork(factory) as uow:
                        got = await standing.match_batch(
                            uow, batch=batch, grace=GRACE, pass_id=None
                        )
                    seconds[arm].append(time.monotonic() - t0)
                finally:
                    standing_repo.BITMAP_SCANS = shipped
                    capture = None
                assert got is not None and len(got.items) == batch
                written[arm] = {tuple(row) for row in await conn.fetch(PAIRS_SQL, ids)}
                print(
                    f"[scans] round {r + 1}/{rounds} {arm}: {seconds[arm][-1]:.2f} s, "
                    f"{len(written[arm]):,} links",
                    file=sys.stderr,
                    flush=True,
                )
            same_pairs = same_pairs and written["bitmap"] == written["plain"]
            links += len(written["bitmap"])
        plans: dict[str, list[list[str]]] = {}
        async with engine.connect() as sa:
            for arm in ARMS:
                plans[arm] = []
                transaction = await sa.begin()
                for statement, parameters in statements[arm]:
                    if "set_config(" in statement or statement.strip() == "SELECT 1":
                        await sa.exec_driver_sql(statement, parameters)
                        continue
                    raw = (
                        await sa.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
                    ).scalar_one()
                    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
                    plans[arm].append(sorted(set(_scans(plan))))
                await transaction.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
        await engine.dispose()
        await conn.close()
    med = {arm: statistics.median(seconds[arm]) for arm in ARMS}
    return {
        "rounds": rounds,
        "batch": batch,
        "same_pairs": same_pairs,
        "links_per_round": round(links / rounds),
        "seconds": {arm: [round(s, 3) for s in seconds[arm]] for arm in ARMS},
        "median_s": {arm: round(med[arm], 3) for arm in ARMS},
        "bitmap_over_plain": round(med["bitmap"] / med["plain"], 3),
        "plans": plans,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standing_scans")
    parser.add_argument("--scenes", type=parse_size, default=1_000_000)
    parser.add_argument("--studies", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--load-batch", type=int, default=50_000)
    parser.add_argument("--server-url", help="an admin URL of a PostGIS to use (default: private)")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    with server(args.server_url, durable=True) as srv:
        name = f"scans_{uuid.uuid4().hex[:8]}"
        url = asyncio.run(create_database(srv.admin_url, name))
        try:
            settings = Settings(
                atlas_db_url=url.render_as_string(hide_password=False),
                _env_file=None,
            )
            migrate.upgrade(settings)
            started = time.monotonic()
            asyncio.run(_build(settings, args.scenes, args.studies, args.load_batch))
            build_s = time.monotonic() - started
            summary = asyncio.run(_measure(settings, args.rounds, args.batch))
        finally:
            asyncio.run(drop_database(srv.admin_url, name))
    summary = {
        "scenes": args.scenes, "studies": args.studies, "server": srv.origin,
        "build_s": round(build_s, 1), **summary,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=2)
    if not summary["same_pairs"]:
        print("[scans] the arms wrote different pairs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
