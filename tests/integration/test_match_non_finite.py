"""The match predicate on footprints GEOS cannot test (noctis.repositories.geo.intersects), on a
real PostGIS: a footprint with an Infinity or NaN coordinate makes ``ST_Intersects`` raise
(``orientationIndex encountered NaN/Inf numbers``) against any AOI that is not a rectangle; the
match rule decides it by its bounding box instead, and every other footprint exactly as
``ST_Intersects`` does."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from noctis.repositories.geo import intersects

HEXAGON = "POLYGON((10 44.3, 10.3 44, 10.7 44, 11 44.3, 10.7 44.9, 10.3 44.9, 10 44.3))"
TRIANGLE = "MULTIPOLYGON(((10 44, 10.6 44, 10.3 44.6, 10 44)))"
RECTANGLE = "POLYGON((10 44, 10.6 44, 10.6 44.6, 10 44.6, 10 44))"
FAR = "POLYGON((20 50, 21 50, 21 51, 20 51, 20 50))"


def _geom(wkt: str) -> ColumnElement[Any]:
    return func.ST_GeomFromText(wkt, 4326)


def _non_finite(value: str) -> ColumnElement[Any]:
    """A quadrilateral near (10.1..10.4, 44.1..44.4) whose third vertex has x = ``value``."""
    points = [
        func.ST_MakePoint(10.1, 44.1),
        func.ST_MakePoint(10.4, 44.1),
        func.ST_MakePoint(float(value), 44.4),
        func.ST_MakePoint(10.1, 44.4),
        func.ST_MakePoint(10.1, 44.1),
    ]
    return func.ST_SetSRID(func.ST_MakePolygon(func.ST_MakeLine(array(points))), 4326)


async def _value(session: AsyncSession, expr: ColumnElement[Any]) -> Any:
    return (await session.execute(select(expr))).scalar_one()


@pytest.mark.parametrize("aoi", [HEXAGON, TRIANGLE], ids=["hexagon", "multipolygon"])
@pytest.mark.parametrize("x", ["Infinity", "NaN", "-Infinity"])
async def test_st_intersects_raises_where_the_match_rule_answers(
    session: AsyncSession, aoi: str, x: str
) -> None:
    footprint = _non_finite(x)
    with pytest.raises(DBAPIError, match="NaN/Inf"):  # why the rule does not ask GEOS
        await _value(session, func.ST_Intersects(footprint, _geom(aoi)))
    await session.rollback()
    boxes_meet = await _value(session, footprint.bool_op("&&")(_geom(aoi)))
    assert await _value(session, intersects(footprint, _geom(aoi))) is boxes_meet
    assert await _value(session, intersects(footprint, _geom(FAR))) is False


@pytest.mark.parametrize(
    ("footprint", "expected"),
    [
        ("POLYGON((10.2 44.2, 10.4 44.2, 10.4 44.4, 10.2 44.4, 10.2 44.2))", True),  # inside
        ("POLYGON((9 43, 12 43, 12 46, 9 46, 9 43))", True),  # covers the AOI
        ("POLYGON((11 44.3, 11.5 44.3, 11.5 44.6, 11 44.6, 11 44.3))", True),  # touches a vertex
        # The boxes meet, the shapes do not: only the exact predicate says no.
        ("POLYGON((10.85 44.75, 11.2 44.75, 11.2 45, 10.85 45, 10.85 44.75))", False),
        ("POLYGON((12 44, 13 44, 13 45, 12 45, 12 44))", False),  # apart
        ("POLYGON((10 44, 11 45, 11 44, 10 45, 10 44))", True),  # a bow-tie: invalid, finite
    ],
    ids=["inside", "covers", "touches", "boxes-only", "apart", "bow-tie"],
)
async def test_a_finite_footprint_is_matched_as_st_intersects_matches_it(
    session: AsyncSession, footprint: str, expected: bool
) -> None:
    for aoi in (HEXAGON, RECTANGLE):
        exact = await _value(session, func.ST_Intersects(_geom(footprint), _geom(aoi)))
        ours = await _value(session, intersects(_geom(footprint), _geom(aoi)))
        assert ours is exact, (footprint, aoi)
    assert await _value(session, intersects(_geom(footprint), _geom(HEXAGON))) is expected
