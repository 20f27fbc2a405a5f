"""The synthetic archive COPYed into a real, migrated Atlas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from noctis.db import libpq_dsn
from noctis.devtools.synthetic import (
    ArchiveBatch,
    ArchiveSpec,
    generate,
    load_archive,
    load_archive_url,
)
from noctis.settings import Settings

SPEC = ArchiveSpec(size=5_000, seed=11)


@pytest.fixture
async def conn(atlas_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_dsn(atlas_settings.atlas_url))
    try:
        yield connection
    finally:
        await connection.close()


async def test_load_5000_items_with_copy(
    atlas_settings: Settings, conn: asyncpg.Connection
) -> None:
    seen: list[tuple[int, int]] = []
    url = atlas_settings.atlas_url.render_as_string(hide_password=False)  # +asyncpg is fine
    written = await load_archive_url(
        url, SPEC, progress=lambda done, total: seen.append((done, total)), batch_size=2_000
    )

    assert written == 5_000
    assert seen == [(2_000, 5_000), (4_000, 5_000), (5_000, 5_000)]
    stats = await conn.fetchrow(
        """
        SELECT count(*) AS n,
               count(DISTINCT external_id) AS ids,
               bool_and(ST_IsValid(footprint)) AS valid,
               bool_and(ST_SRID(footprint) = 4326) AS srid,
               count(*) FILTER (WHERE GeometryType(footprint) = 'MULTIPOLYGON') AS multi,
               min(ST_XMin(footprint)) AS x0, max(ST_XMax(footprint)) AS x1,
               count(*) FILTER (WHERE cloud_cover IS NULL) AS no_cloud,
               min(acquired_at) AS first, max(acquired_at) AS last
        FROM archive_item
        """
    )
    assert stats is not None
    assert stats["n"] == stats["ids"] == 5_000
    assert stats["valid"] is True and stats["srid"] is True
    assert stats["multi"] > 0
    assert stats["x0"] >= -180.0 and stats["x1"] <= 180.0

    generated = ArchiveBatch.concat(generate(SPEC))
    rows = {r[0]: r for r in generated.rows()}
    assert stats["no_cloud"] == sum(r[4] is None for r in rows.values())
    stored = await conn.fetch(
        "SELECT external_id, collection, ST_AsEWKB(footprint) AS ewkb, acquired_at, "
        "cloud_cover, gsd, properties::text AS props FROM archive_item"
    )
    assert {r["external_id"] for r in stored} == set(rows)
    for r in stored[::50]:
        _, collection, footprint, acquired_at, cloud, gsd, _ = rows[r["external_id"]]
        assert r["collection"] == collection
        assert r["ewkb"].hex().upper() == footprint
        assert r["acquired_at"] == acquired_at
        assert r["cloud_cover"] == cloud and r["gsd"] == gsd


async def test_load_over_an_open_connection_is_all_or_nothing(conn: asyncpg.Connection) -> None:
    spec = ArchiveSpec(size=1_500, seed=5)
    assert await load_archive(conn, spec, batch_size=400) == 1_500
    with pytest.raises(asyncpg.UniqueViolationError):
        await load_archive(conn, spec, batch_size=400)  # the same external_ids again
    assert await conn.fetchval("SELECT count(*) FROM archive_item") == 1_500
    assert await load_archive(conn, ArchiveSpec(size=0)) == 0


async def test_load_archive_url_takes_a_sqlalchemy_url(
    atlas_settings: Settings, conn: asyncpg.Connection
) -> None:
    assert await load_archive_url(atlas_settings.atlas_url, ArchiveSpec(size=300, seed=2)) == 300
    assert await conn.fetchval("SELECT count(*) FROM archive_item") == 300
