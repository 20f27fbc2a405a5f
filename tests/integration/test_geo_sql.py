"""The area and coverage expressions (noctis.repositories.geo), on a real database, against
plain PostGIS and pyproj's geodesic areas."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import shapely
from pyproj import Geod
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from noctis.models import ArchiveItem
from noctis.repositories.geo import clean_footprint, clipped_share, spheroid_area, suspect
from tests.support.studies import seed_grid


async def _one(session: AsyncSession, expr: ColumnElement[Any]) -> float:
    return float((await session.execute(select(expr))).scalar_one())


def _geom(wkt: str) -> ColumnElement[Any]:
    return func.ST_GeomFromText(wkt, 4326)


def _geodesic_area(wkt: str) -> float:
    """pyproj's geodesic area of the shape with its edges straight in lon/lat (densified to
    0.01°, so that each geodesic is a chord of the lon/lat edge): an independent reference."""
    geod = Geod(ellps="WGS84")
    area, _ = geod.geometry_area_perimeter(shapely.segmentize(shapely.from_wkt(wkt), 0.01))
    return abs(area)


@pytest.mark.parametrize(
    "wkt",
    [
        "POLYGON((10 44.5, 11 44.5, 11 45.5, 10 45.5, 10 44.5))",
        "POLYGON((-60 -40, 100 -40, 100 70, -60 70, -60 -40))",  # 160° wide
        "POLYGON((30 50, 180 50, 180 75, 30 75, 30 50))",  # geography: a quarter of it
        "POLYGON((0 80, 170 80, 170 90, 0 90, 0 80))",  # to the pole
        "POLYGON((10.2 44.3, 11.1 44.3, 11.4 45.6, 10.1 45.2, 10.2 44.3))",  # slanted edges
        "POLYGON((-20 -30, 40 10, 10 60, -20 -30))",  # long slanted edges
        "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)), ((5 5, 6 5, 6 6, 5 6, 5 5)))",
        "MULTIPOLYGON(((150 55, 180 55, 180 72, 150 72, 150 55)),"
        " ((-180 55, -150 55, -150 72, -180 72, -180 55)))",  # split at the antimeridian
    ],
    ids=["box", "160-degrees", "russia", "polar", "slanted", "triangle", "multi", "split"],
)
async def test_spheroid_area_reads_edges_as_the_match_rule_does(
    session: AsyncSession, wkt: str
) -> None:
    """Straight in lon/lat, the shape ST_Intersects matched (geography reads great circles:
    the 150° x 25° box measured 5.4 of its 21.4 million km² that way; found by a review)."""
    area = await _one(session, spheroid_area(_geom(wkt)))
    assert area == pytest.approx(_geodesic_area(wkt), rel=1e-4)


async def test_the_coverages_of_disjoint_scenes_that_tile_a_large_aoi_sum_to_one(
    session: AsyncSession,
) -> None:
    """Europe (50° x 35°) tiled by 70 disjoint 5° boxes: with geography areas they summed to
    1.053, and the union said 1.0 of a southern strip that was 41% of a larger AOI."""
    aoi = _geom("POLYGON((-10 35, 40 35, 40 70, -10 70, -10 35))")
    aoi_area = await _one(session, spheroid_area(aoi))
    shares = [
        await _one(
            session,
            clipped_share(func.ST_MakeEnvelope(x, y, x + 5, y + 5, 4326), aoi, aoi_area=aoi_area),
        )
        for x in range(-10, 40, 5)
        for y in range(35, 70, 5)
    ]
    assert len(shares) == 70 and sum(shares) == pytest.approx(1.0, abs=1e-9)
    south = "POLYGON((30 50, 180 50, 180 58, 30 58, 30 50))"
    large = "POLYGON((30 50, 180 50, 180 75, 30 75, 30 50))"
    share = await _one(
        session,
        clipped_share(
            _geom(south), _geom(large), aoi_area=await _one(session, spheroid_area(_geom(large)))
        ),
    )
    assert share == pytest.approx(_geodesic_area(south) / _geodesic_area(large), rel=1e-4)


async def test_spheroid_area_of_the_world_is_the_wgs84_surface(session: AsyncSession) -> None:
    world = _geom("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))")
    assert await _one(session, spheroid_area(world)) == pytest.approx(510_065_621.7e6, rel=1e-6)


async def test_geography_alone_fails_on_the_world(session: AsyncSession) -> None:
    world = _geom("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))")
    with pytest.raises(DBAPIError, match="Antipodal"):
        await _one(session, func.ST_Area(func.geography(world)))


AOI = "POLYGON((10.2 44.3, 11.1 44.3, 11.4 45.6, 10.1 45.2, 10.2 44.3))"


async def test_clipped_share_is_the_plain_share_on_valid_footprints(
    session: AsyncSession, admin: psycopg.AsyncConnection
) -> None:
    """The shortcuts (ST_Covers both ways) and the guards change no valid footprint's share."""
    await seed_grid(admin, n=400)
    aoi = _geom(AOI)
    aoi_area = float(await _one(session, spheroid_area(aoi)))
    footprint = ArchiveItem.footprint
    plain = spheroid_area(func.ST_Intersection(footprint, aoi)) / aoi_area
    stmt = select(
        func.max(func.abs(clipped_share(footprint, aoi, aoi_area=aoi_area) - plain)),
        func.count(),
        func.count().filter(func.ST_Covers(aoi, footprint)),
    ).where(func.ST_Intersects(footprint, aoi))
    difference, matches, inside = (await session.execute(stmt)).one()
    assert matches > 100
    assert inside > 0, "no footprint inside the AOI: the shortcut was not exercised"
    assert difference < 1e-12


async def test_the_share_of_an_invalid_footprint_is_that_of_its_repair(
    session: AsyncSession,
) -> None:
    bow_tie = _geom("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")
    aoi = _geom("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))")
    with pytest.raises(DBAPIError, match="TopologyException"):
        await _one(session, func.ST_Area(func.geography(func.ST_Intersection(bow_tie, aoi))))
    await session.rollback()
    aoi_area = await _one(session, spheroid_area(aoi))
    share = await _one(session, clipped_share(bow_tie, aoi, aoi_area=aoi_area))
    assert share == pytest.approx(0.5, rel=1e-3)  # two triangles, half the square


def _with_vertex(x: str) -> object:
    """A square footprint over (0, 0)..(1, 1) whose third vertex has longitude ``x``."""
    points = [
        func.ST_MakePoint(0, 0),
        func.ST_MakePoint(1, 0),
        func.ST_MakePoint(float(x), 1),
        func.ST_MakePoint(0, 1),
        func.ST_MakePoint(0, 0),
    ]
    return func.ST_SetSRID(func.ST_MakePolygon(func.ST_MakeLine(array(points))), 4326)


@pytest.mark.parametrize("x", ["Infinity", "-Infinity", "NaN"])
async def test_a_non_finite_footprint_gets_no_share_and_counts_as_suspect(
    session: AsyncSession, x: str
) -> None:
    """Never a made-up number: ST_MakeValid gives NULL for Infinity and a wrong triangle for
    NaN, and LEAST(1, NULL) would be 1."""
    footprint = _with_vertex(x)
    aoi = _geom("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))")
    aoi_area = await _one(session, spheroid_area(aoi))
    share, is_suspect, clean, hits = (
        await session.execute(
            select(
                clipped_share(footprint, aoi, aoi_area=aoi_area),
                suspect(footprint),
                clean_footprint(footprint),
                func.ST_Intersects(footprint, aoi),
            )
        )
    ).one()
    assert share is None
    assert is_suspect is True
    assert clean is None
    assert hits is True  # it still matches: the match rule is ST_Intersects, unchanged


async def test_valid_and_repairable_footprints_are_not_suspect(session: AsyncSession) -> None:
    for wkt in ("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))"):
        assert (await session.execute(select(suspect(_geom(wkt))))).scalar_one() is False
