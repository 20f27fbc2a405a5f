"""noctis.frames: a study and a finder's matches as Polars frames (connectorx on PostGIS)."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime

import polars as pl
import psycopg
import pytest
import shapely

from noctis.errors import DatabaseError, DatabaseUnavailable, DreamNotFound, FinderNotFound
from noctis.frames import (
    _frame,
    matches_frame,
    read_matches,
    read_study,
    study_frame,
    to_geopandas,
)
from noctis.settings import Settings
from tests.support.frames import EVIL, database_rows, parsed, same_real, seed_study
from tests.support.studies import admin_dsn, reference_ids

STUDY_COLUMNS = [
    "archive_item_id", "external_id", "collection", "acquired_at", "cloud_cover", "gsd",
    "coverage", "properties", "footprint",
]  # fmt: skip


async def test_a_study_frame_holds_the_database_rows(atlas_settings: Settings) -> None:
    seeded = await seed_study(atlas_settings)
    frame = await read_study(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    expected = database_rows(atlas_settings, seeded)

    assert frame.columns == STUDY_COLUMNS
    assert frame.schema["acquired_at"] == pl.Datetime("us", "UTC")
    assert frame.schema["footprint"] == pl.Binary
    assert frame.height == len(expected) == 3
    for got, want in zip(frame.iter_rows(named=True), expected, strict=True):
        assert got["archive_item_id"] == want["archive_item_id"]
        assert got["external_id"] == want["external_id"]
        assert got["collection"] == want["collection"]
        assert got["acquired_at"] == want["acquired_at"]
        assert same_real(got["cloud_cover"], want["cloud_cover"])
        assert same_real(got["gsd"], want["gsd"])
        assert got["coverage"] == want["coverage"]
        assert parsed(got["properties"]) == want["properties"]
        assert shapely.equals_exact(shapely.from_wkb(got["footprint"]), want["footprint"], 0)


async def test_real_columns_hold_their_shortest_decimal(atlas_settings: Settings) -> None:
    seeded = await seed_study(atlas_settings)
    frame = await read_study(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    east = frame.filter(pl.col("external_id") == "east").row(0, named=True)
    assert east["cloud_cover"] == 10.1  # stored as REAL; not 10.100000381469727


async def test_the_antimeridian_footprint_stays_split(atlas_settings: Settings) -> None:
    seeded = await seed_study(atlas_settings)
    frame = await read_study(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    split = shapely.from_wkb(frame.filter(pl.col("external_id") == "split")["footprint"][0])
    assert split.geom_type == "MultiPolygon"
    assert len(split.geoms) == 2
    assert shapely.bounds(split).tolist() == [-180.0, -1.0, 180.0, 1.0]


async def test_the_sync_path_works_inside_a_running_loop_like_jupyter(
    atlas_settings: Settings,
) -> None:
    seeded = await seed_study(atlas_settings)
    assert asyncio.get_running_loop() is not None
    frame = study_frame(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    assert frame["external_id"].to_list() == [
        r["external_id"] for r in database_rows(atlas_settings, seeded)
    ]


def test_the_sync_path_works_in_plain_python(atlas_settings: Settings) -> None:
    seeded = asyncio.run(seed_study(atlas_settings))
    frame = study_frame(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    assert frame.height == 3


async def test_matches_follow_the_match_rule(atlas_settings: Settings) -> None:
    seeded = await seed_study(atlas_settings, link=False)
    frame = await read_matches(seeded.finder_id, settings=atlas_settings)
    async with await psycopg.AsyncConnection.connect(admin_dsn(atlas_settings)) as conn:
        expected = await reference_ids(conn, seeded.finder_id)
    assert sorted(frame["archive_item_id"].to_list()) == expected
    assert "coverage" not in frame.columns
    assert frame["acquired_at"].to_list() == sorted(frame["acquired_at"].to_list(), reverse=True)


async def test_filters_with_quotes_are_values_not_sql(atlas_settings: Settings) -> None:
    """The collection filter travels as hex, so a name full of SQL is only a name."""
    seeded = await seed_study(atlas_settings, link=False)
    async with await psycopg.AsyncConnection.connect(
        admin_dsn(atlas_settings), autocommit=True
    ) as conn:
        await conn.execute(
            "UPDATE imagery_finder SET collections = %s, max_cloud_cover = 50 WHERE id = %s",
            ([EVIL], seeded.finder_id),
        )
        expected = await reference_ids(conn, seeded.finder_id)
    frame = matches_frame(seeded.finder_id, settings=atlas_settings)
    # "west" is in that collection, but has no cloud cover: max_cloud_cover excludes it.
    assert frame.height == 0 and expected == []
    async with await psycopg.AsyncConnection.connect(
        admin_dsn(atlas_settings), autocommit=True
    ) as conn:
        await conn.execute(
            "UPDATE imagery_finder SET max_cloud_cover = NULL WHERE id = %s", (seeded.finder_id,)
        )
        assert await reference_ids(conn, seeded.finder_id) == (
            matches_frame(seeded.finder_id, settings=atlas_settings)["archive_item_id"].to_list()
        )
        dreams = await (await conn.execute("SELECT count(*) FROM dream")).fetchone()
    assert matches_frame(seeded.finder_id, settings=atlas_settings)["collection"].to_list() == [
        EVIL
    ]
    assert dreams == (1,)


async def test_to_geopandas_gives_footprints_in_epsg_4326(atlas_settings: Settings) -> None:
    seeded = await seed_study(atlas_settings)
    frame = await read_study(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    gdf = to_geopandas(frame)
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf["external_id"]) == frame["external_id"].to_list()
    for geom, want in zip(gdf.geometry, database_rows(atlas_settings, seeded), strict=True):
        assert geom.equals(want["footprint"])
    assert str(gdf["acquired_at"].dt.tz) == "UTC"


async def test_an_empty_study_is_an_empty_frame_with_the_columns(
    atlas_settings: Settings,
) -> None:
    seeded = await seed_study(atlas_settings, link=False)
    frame = await read_study(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    assert frame.height == 0
    assert frame.columns == STUDY_COLUMNS


async def test_unknown_finder_and_dream_are_named(atlas_settings: Settings) -> None:
    seeded = await seed_study(atlas_settings)
    with pytest.raises(FinderNotFound, match=r"^ImageryFinder 999 does not exist$"):
        await read_study(999, seeded.dream_id, settings=atlas_settings)
    with pytest.raises(DreamNotFound, match=r"^Dream 999 does not exist$"):
        study_frame(seeded.finder_id, 999, settings=atlas_settings)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_fails_fast_without_the_password() -> None:
    settings = Settings(
        atlas_db_url=f"postgresql://noctis:s3cret-pw@127.0.0.1:{_closed_port()}/atlas",
        atlas_db_connect_timeout=2,
        _env_file=None,
    )
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught:
        study_frame(1, 1, settings=settings)
    assert time.monotonic() - started < 10  # connectorx alone retries for ~30 s
    assert "s3cret-pw" not in str(caught.value)


async def test_connectorx_panics_become_database_errors(atlas_settings: Settings) -> None:
    """connectorx raises PanicException (a BaseException) on a geometry column."""
    await seed_study(atlas_settings)
    with pytest.raises(DatabaseError, match="connectorx cannot read the result") as caught:
        _frame(atlas_settings, "SELECT footprint FROM archive_item", "reading footprints")
    assert "while reading footprints" in str(caught.value)


async def test_sql_errors_become_database_errors(atlas_settings: Settings) -> None:
    with pytest.raises(DatabaseError, match=r"while dividing .*division by zero"):
        _frame(atlas_settings, "SELECT 1 / 0 AS x", "dividing")


def test_dates_are_utc(atlas_settings: Settings) -> None:
    seeded = asyncio.run(seed_study(atlas_settings))
    frame = study_frame(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    west = frame.filter(pl.col("external_id") == "west").row(0, named=True)
    assert west["acquired_at"] == datetime(2024, 6, 3, 10, 30, 0, 250, tzinfo=UTC)
    assert west["cloud_cover"] is None and west["gsd"] is None and west["coverage"] is not None
