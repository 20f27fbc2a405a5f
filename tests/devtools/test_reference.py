"""The reference formulation of the match rule (noctis.devtools.reference), on a real PostGIS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import libpq_dsn
from noctis.devtools.reference import (
    REFERENCE_MATCH_SQL,
    check_against_reference,
    reference_match_ids,
    reference_match_sql,
)
from noctis.settings import Settings

JAN = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
# The finder: the unit square, January 2024, cloud <= 30, two collections.
# Items: (name, footprint, acquired_at, cloud_cover, collection); True = it matches.
ITEMS: list[tuple[str, str, datetime, float | None, str, bool]] = [
    ("inside", "0.2 0.2, 0.8 0.8", JAN, 10.0, "sentinel-2-l2a", True),
    ("touching", "1 0, 2 1", JAN, 10.0, "sentinel-2-l2a", True),
    ("elsewhere", "5 5, 6 6", JAN, 10.0, "sentinel-2-l2a", False),
    ("first instant", "0 0, 1 1", datetime(2024, 1, 1, tzinfo=UTC), 10.0, "maxar-wv3", True),
    ("just before", "0 0, 1 1", datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC), 10.0,
     "maxar-wv3", False),
    ("last day", "0 0, 1 1", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC), 10.0,
     "maxar-wv3", True),
    ("day after", "0 0, 1 1", datetime(2024, 2, 1, tzinfo=UTC), 10.0, "maxar-wv3", False),
    ("at the cloud limit", "0 0, 1 1", JAN, 30.0, "sentinel-2-l2a", True),
    ("cloudier", "0 0, 1 1", JAN, 30.5, "sentinel-2-l2a", False),
    ("unknown cloud", "0 0, 1 1", JAN, None, "sentinel-2-l2a", False),
    ("other collection", "0 0, 1 1", JAN, 10.0, "planet-skysat", False),
]  # fmt: skip


def _box(corners: str) -> str:
    (x0, y0), (x1, y1) = (map(float, c.split()) for c in corners.split(","))
    return f"SRID=4326;POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


@pytest.fixture
async def conn(atlas_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_dsn(atlas_settings.atlas_url))
    try:
        yield connection
    finally:
        await connection.close()


async def _seed(conn: asyncpg.Connection) -> tuple[int, int, int, dict[str, int]]:
    """(the finder above, a finder with nothing set over the same square, a dream, item ids)."""
    ids = {}
    for name, corners, acquired_at, cloud, collection, _ in ITEMS:
        ids[name] = await conn.fetchval(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at,"
            " cloud_cover) VALUES ($1, $2, ST_GeomFromEWKT($3), $4, $5) RETURNING id",
            name, collection, _box(corners), acquired_at, cloud,
        )  # fmt: skip
    finder = await conn.fetchval(
        "INSERT INTO imagery_finder (location, start_date, end_date, max_cloud_cover, collections)"
        " VALUES (ST_GeomFromEWKT($1), $2, $3, 30, $4) RETURNING id",
        _box("0 0, 1 1"), date(2024, 1, 1), date(2024, 1, 31), ["sentinel-2-l2a", "maxar-wv3"],
    )  # fmt: skip
    open_finder = await conn.fetchval(
        "INSERT INTO imagery_finder (location) VALUES (ST_GeomFromEWKT($1)) RETURNING id",
        _box("0 0, 1 1"),
    )
    dream = await conn.fetchval("INSERT INTO dream (name) VALUES ('reference') RETURNING id")
    return finder, open_finder, dream, ids


async def test_reference_applies_each_clause_of_the_rule(conn: asyncpg.Connection) -> None:
    finder, open_finder, _, ids = await _seed(conn)

    assert await reference_match_ids(conn, finder) == {ids[i[0]] for i in ITEMS if i[5]}
    # Nothing set: every intersecting item, whatever its date, cloud cover or collection.
    assert await reference_match_ids(conn, open_finder) == set(ids.values()) - {ids["elsewhere"]}


async def test_the_sql_reads_alike_through_asyncpg_sqlalchemy_and_psycopg(
    atlas_settings: Settings, conn: asyncpg.Connection, session: AsyncSession
) -> None:
    finder, *_ = await _seed(conn)
    through_asyncpg = [r[0] for r in await conn.fetch(REFERENCE_MATCH_SQL, finder)]
    statement = text(reference_match_sql(":finder"))
    through_sqlalchemy = list(await session.scalars(statement, {"finder": finder}))
    dsn = libpq_dsn(atlas_settings.atlas_url)
    async with await psycopg.AsyncConnection.connect(dsn) as pconn:
        cur = await pconn.execute(reference_match_sql("%(finder)s"), {"finder": finder})
        through_psycopg = [r[0] for r in await cur.fetchall()]

    assert len(through_asyncpg) == 5
    assert through_asyncpg == sorted(through_asyncpg)  # ordered by id
    assert through_sqlalchemy == through_asyncpg == through_psycopg


async def test_check_names_missing_and_unexpected_lookup_rows(conn: asyncpg.Connection) -> None:
    finder, _, dream, ids = await _seed(conn)
    expected = await reference_match_ids(conn, finder)
    left_out, extra = ids["inside"], ids["elsewhere"]
    await conn.executemany(
        "INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id)"
        " VALUES ($1, $2, $3)",
        [(dream, finder, item) for item in (expected - {left_out}) | {extra}],
    )

    check = await check_against_reference(conn, finder, dream)
    assert (check.matched, check.missing, check.unexpected) == (
        5,
        frozenset({left_out}),
        frozenset({extra}),
    )
    assert not check.agrees

    await conn.execute("DELETE FROM archive_lookup_item WHERE archive_item_id = $1", extra)
    await conn.execute(
        "INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id)"
        " VALUES ($1, $2, $3)",
        dream, finder, left_out,
    )  # fmt: skip
    assert (await check_against_reference(conn, finder, dream)).agrees
