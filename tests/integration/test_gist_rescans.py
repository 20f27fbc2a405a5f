"""A PostgreSQL GiST bug and how the standing matcher stays clear of it (docs/postgres-gist-bug.md).

A plain GiST index scan remembers the entries whose rows it found dead, to mark them "known
dead" (LP_DEAD) when it leaves their leaf page. Two gaps (PostgreSQL 15.18; master reads the
same): a rescan (each outer row of a nested loop) keeps what the previous scan remembered, and
a scan that starts at a root page which is a leaf never records which page that was, so what
it remembers there is never applied. After another session splits the root, the next rescan
applies the remembered offsets to the first leaf it leaves, where they now name other, live
entries. Every index scan skips those entries from then on: the rows are still in the table,
but no query through the index finds them, bitmap scans included, until a REINDEX.

The out-of-order standing test found it: scenes vanished from ``archive_item``'s GiST while
the matcher's joins (one GiST scan of ``archive_item`` per standing study) ran beside writers,
so a study's link step (and the reference) no longer saw them. Bitmap index scans never mark
entries; the matcher's joins run with plain index scans off
(:data:`noctis.repositories.standing.BITMAP_SCANS`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from noctis import standing
from noctis.settings import Settings
from noctis.study import check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, square
from tests.support.gist_bug import Recipe, run_recipe
from tests.support.studies import admin_dsn, column, scalar

GRACE = timedelta(days=30)


async def _lost_by_the_index(conn: psycopg.AsyncConnection) -> list[int]:
    """Rows of ``gist_probe`` that a search through its GiST for their own box does not find."""
    await conn.execute("SET enable_seqscan = off")
    cur = await conn.execute("SELECT id, b::text FROM gist_probe ORDER BY id")
    boxes = await cur.fetchall()
    lost = []
    for row_id, bx in boxes:
        found = await scalar(
            conn, "SELECT count(*) FROM gist_probe WHERE b && %s::box AND id + 0 = %s", (bx, row_id)
        )
        if found != 1:
            lost.append(int(row_id))
    await conn.execute("RESET enable_seqscan")
    return lost


BOXES = Recipe(
    index="gist_probe_b",
    setup=(
        "DROP TABLE IF EXISTS gist_probe, gist_outer",
        "CREATE TABLE gist_probe (id int PRIMARY KEY, b box)",
        "CREATE INDEX gist_probe_b ON gist_probe USING gist (b)",
        # Out of key order, so that the root's split moves entries to other offsets.
        "INSERT INTO gist_probe SELECT i, box(point(i, 0), point(i + 0.5, 0.5)) "
        "FROM generate_series(1, 100) AS i ORDER BY (i * 37) % 101",
        "DELETE FROM gist_probe WHERE id % 3 = 0",  # dead to everyone
        "CREATE TABLE gist_outer (id int, b box)",
        "INSERT INTO gist_outer SELECT g, box(point(0, 0), point(200, 1)) "
        "FROM generate_series(1, 3) AS g",
    ),
    loop="SELECT o.id, p.id FROM gist_outer o JOIN gist_probe p ON p.b && o.b",
    first=67,
    add=lambda k: (
        "INSERT INTO gist_probe VALUES (%s, box(point(%s, 0), point(%s, 0.5)))",
        (1000 + k, (k * 7.3) % 100, (k * 7.3) % 100 + 0.5),
    ),
)


async def test_postgres_gist_rescans_lose_live_entries_and_bitmap_scans_do_not(
    atlas_settings: Settings,
) -> None:
    dsn = admin_dsn(atlas_settings)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await run_recipe(dsn, BOXES, plain_index_scans=True)
        lost = await _lost_by_the_index(conn)
        # If this fails, the server no longer has the bug (check its release notes), and
        # BITMAP_SCANS in noctis.repositories.standing is no longer needed.
        assert lost, "plain GiST rescans across a root split lost no entry on this server"
        await run_recipe(dsn, BOXES, plain_index_scans=False)
        assert await _lost_by_the_index(conn) == []


# ------------------------------------------------------------------ the matcher's statements


def _plain_index_scans(plan: dict[str, Any]) -> Iterator[str]:
    if plan.get("Node Type") in ("Index Scan", "Index Only Scan"):
        yield str(plan["Index Name"])
    for child in plan.get("Plans", []):
        yield from _plain_index_scans(child)


async def test_the_matcher_joins_use_no_plain_gist_scan(
    atlas_settings: Settings,
    engine: AsyncEngine,
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    admin: psycopg.AsyncConnection,
) -> None:
    """Every statement of a match batch, replayed under EXPLAIN in its transaction's settings:
    none reads a GiST index with a plain (or index-only) scan. On this data the planner's
    choice without :data:`BITMAP_SCANS` is a nested loop over the standing studies with a plain
    GiST scan of ``archive_item`` inside (checked by hand: this test fails without it)."""
    for i in range(8):
        dream = await add_dream(session, f"dream {i}")
        finder = await add_finder(session, square(10 + i % 4, 45, 0.6))
        await session.commit()
        async with UnitOfWork(session_factory) as uow:
            study = await check_study(uow, finder_id=finder.id, dream_id=dream.id)
            await link_study(uow, study, announce_as=str(uuid.uuid4()), standing_grace=GRACE)
    await admin.execute(
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover) "
        "SELECT 's' || g, 'sentinel-2-l2a', ST_MakeEnvelope(9 + (g % 50) * 0.1, 44.5, "
        "9.2 + (g % 50) * 0.1, 44.7, 4326), '2024-06-01T10:00Z', 10 FROM generate_series(1, 400) g"
    )
    await admin.execute("ANALYZE archive_item; ANALYZE standing_study")
    gist = set(
        await column(admin, "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")
    )
    assert {"ix_archive_item_footprint_acquired_at", "ix_standing_study_location"} <= gist

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with UnitOfWork(session_factory) as uow:
            done = await standing.match_batch(uow, batch=1000, grace=GRACE, pass_id=None)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert done is not None and len(done.items) == 400 and done.updates

    explained = 0
    async with engine.connect() as conn:
        transaction = await conn.begin()
        for statement, parameters in statements:
            if "set_config(" in statement:  # the transaction's settings, as the batch ran
                await conn.exec_driver_sql(statement, parameters)
                continue
            result = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
            raw = result.scalar_one()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            plain = set(_plain_index_scans(plan)) & gist
            assert not plain, (plain, statement[:200])
            explained += 1
        await transaction.rollback()
    assert explained >= 4  # take, lock, unlink, link, totals
