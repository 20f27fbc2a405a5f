"""The area and coverage expressions (noctis.repositories.geo), compared with plain PostGIS on
a real database."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.models import ArchiveItem
from noctis.repositories.geo import clipped_area, spheroid_area
from tests.support.studies import seed_grid


async def _one(session: AsyncSession, expr: object) -> float:
    return float((await session.execute(select(expr))).scalar_one())


def _geom(wkt: str) -> object:
    return func.ST_GeomFromText(wkt, 4326)


@pytest.mark.parametrize(
    "wkt",
    [
        "POLYGON((10 44.5, 11 44.5, 11 45.5, 10 45.5, 10 44.5))",
        "POLYGON((-60 -40, 100 -40, 100 70, -60 70, -60 -40))",  # 160° wide
        "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)), ((5 5, 6 5, 6 6, 5 6, 5 5)))",
    ],
    ids=["box", "160-degrees", "multipolygon"],
)
async def test_spheroid_area_is_the_geography_area_below_180_degrees(
    session: AsyncSession, wkt: str
) -> None:
    geography = func.ST_Area(func.geography(_geom(wkt)))
    assert await _one(session, spheroid_area(_geom(wkt))) == await _one(session, geography)


async def test_spheroid_area_of_the_world_is_the_wgs84_surface(session: AsyncSession) -> None:
    world = _geom("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))")
    assert await _one(session, spheroid_area(world)) == pytest.approx(510_065_621.7e6, rel=1e-6)


async def test_geography_alone_fails_on_the_world(session: AsyncSession) -> None:
    world = _geom("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))")
    with pytest.raises(DBAPIError, match="Antipodal"):
        await _one(session, func.ST_Area(func.geography(world)))


async def test_clipped_area_equals_the_plain_expression_on_valid_footprints(
    session: AsyncSession, admin: psycopg.AsyncConnection
) -> None:
    await seed_grid(admin, n=400)
    aoi = _geom("POLYGON((10.2 44.3, 11.1 44.3, 11.4 45.6, 10.1 45.2, 10.2 44.3))")
    footprint = ArchiveItem.footprint
    plain = func.ST_Area(func.geography(func.ST_Intersection(footprint, aoi)))
    stmt = select(func.max(func.abs(clipped_area(footprint, aoi) - plain)), func.count()).where(
        func.ST_Intersects(footprint, aoi)
    )
    difference, matches = (await session.execute(stmt)).one()
    assert matches > 100
    assert difference == 0.0


async def test_clipped_area_of_an_invalid_footprint_is_its_repair(session: AsyncSession) -> None:
    bow_tie = _geom("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")
    aoi = _geom("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))")
    with pytest.raises(DBAPIError, match="TopologyException"):
        await _one(session, func.ST_Area(func.geography(func.ST_Intersection(bow_tie, aoi))))
    await session.rollback()
    area = await _one(session, clipped_area(bow_tie, aoi))
    square = await _one(session, func.ST_Area(func.geography(aoi)))
    assert area == pytest.approx(square / 2, rel=1e-3)  # two triangles, half the square


async def test_clipped_area_shortcuts_agree_with_the_overlay(
    session: AsyncSession, admin: psycopg.AsyncConnection
) -> None:
    """With the AOI's area, ST_Covers skips the overlay; the areas must not change."""
    await seed_grid(admin, n=400)
    wkt = "POLYGON((10.2 44.3, 11.1 44.3, 11.4 45.6, 10.1 45.2, 10.2 44.3))"
    aoi = _geom(wkt)
    aoi_area = float(await _one(session, func.ST_Area(func.geography(aoi))))
    footprint = ArchiveItem.footprint
    plain = func.ST_Area(func.geography(func.ST_Intersection(footprint, aoi)))
    shortcut = clipped_area(footprint, aoi, aoi_area=aoi_area)
    stmt = select(
        func.max(func.abs(shortcut - plain) / aoi_area),
        func.count(),
        func.count().filter(func.ST_Covers(aoi, footprint)),
    ).where(func.ST_Intersects(footprint, aoi))
    difference, matches, inside = (await session.execute(stmt)).one()
    assert matches > 100
    assert inside > 0, "no footprint inside the AOI: the shortcut was not exercised"
    assert difference < 1e-9
